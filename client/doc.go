// Package client is the Go client of auditq, the audit-trail service: it
// publishes audit events to NATS JetStream and asks the service for
// reports, events and their tamper-evidence proofs.
//
// Three lines publish an event:
//
//	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
//	c, err := client.New(nc, client.Options{})
//	id, err := c.Publish(ctx, client.Event{UserID: "u-1", Action: "user.login", ResourceType: "user", ResourceID: "u-1"})
//
// Publish checks the event with the service's own rules before it sends
// anything, so a mistake fails at once, in the caller's code, as a
// *ValidationError naming the field and the rule in the service's words;
// never later in the service's poison stream. It then retries through
// reconnects and leader changes until JetStream acknowledges the event or
// the context ends; from then on the service stores it exactly once.
// PublishBulk does the same for up to 1,000 events in one job and returns
// the job's result.
//
// The requests (Report, GetReport, Reports, Query, GetEvent, Proof,
// PublicKeys, WriteCheckpoint, Schemas, Schema, Streams) call the
// service's request subjects; an error answer is a *RequestError with the
// contract's code. Reports and Query return iterators over every page.
// Export writes a whole export (NDJSON or CSV) to an io.Writer as it
// arrives, with flow control; a failure is an *ExportError holding the
// cursor that resumes it.
// VerifyProof checks an event's proof locally against the signing keys.
//
// The package needs only nats.go. The contract it speaks is
// docs/contract.md in the auditq repository; docs/client.md shows every
// call.
package client
