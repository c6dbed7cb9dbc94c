package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/nats-io/nats.go"
)

// The request subjects of auditq's micro service (docs/contract.md,
// "Requests").
const (
	subjectReport          = "audit.report"
	subjectReportGet       = "audit.report.get"
	subjectReportList      = "audit.report.list"
	subjectQuery           = "audit.query"
	subjectEventGet        = "audit.event.get"
	subjectEventProof      = "audit.event.proof"
	subjectPubKey          = "audit.pubkey"
	subjectCheckpointWrite = "audit.checkpoint.write"
	subjectSchema          = "audit.schema"
	subjectExport          = "audit.export"
	subjectStreams         = "audit.streams"
)

// ErrNotFound is matched (errors.Is) by the *RequestError of a request
// for an event, a proof, a report or a schema that does not exist.
var ErrNotFound = errors.New("not found")

// RequestError is an error answer of the service: Code is the contract's
// code ("400" a bad request, naming Field; "404" not found; "501" tamper
// evidence off; "503" shutting down; "504" timed out; "500" internal; see
// docs/contract.md, "Errors"), Message its text.
type RequestError struct {
	Subject string
	Code    string
	Message string
	Field   string // the request field a 400 names
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("%s answered %s: %s", e.Subject, e.Code, e.Message)
}

// Is reports whether target is ErrNotFound and the answer a 404.
func (e *RequestError) Is(target error) bool { return target == ErrNotFound && e.Code == "404" }

// request sends body (JSON) to subject and decodes the answer into out.
func (c *Client) request(ctx context.Context, subject string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	m := nats.NewMsg(subject)
	m.Data = data
	if c.opts.Requester != "" {
		m.Header.Set(headerRequester, c.opts.Requester)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	reply, err := c.nc.RequestMsgWithContext(ctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%s: no auditq service answers (nats: no responders): %w", subject, err)
	case err != nil:
		return fmt.Errorf("%s: %w", subject, err)
	}
	if code := reply.Header.Get(headerServiceCode); code != "" {
		re := &RequestError{Subject: subject, Code: code, Message: reply.Header.Get(headerServiceReason)}
		var b struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		if json.Unmarshal(reply.Data, &b) == nil {
			re.Field = b.Field
			if b.Error != "" {
				re.Message = b.Error
			}
		}
		return re
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append(json.RawMessage(nil), reply.Data...)
		return nil
	}
	if err := json.Unmarshal(reply.Data, out); err != nil {
		return fmt.Errorf("%s: unreadable answer: %w", subject, err)
	}
	return nil
}

// ReportRequest asks for a compliance report (docs/contract.md, "Report
// periods"): Type "daily", "weekly" or "monthly" with an optional Date
// ("2026-11-24"; none: the last complete period), or "custom" with Start
// and End (at most microsecond precision). TimeZone is an IANA name,
// default UTC.
type ReportRequest struct {
	Type     string    `json:"reportType"`
	Date     string    `json:"date,omitempty"`
	Start    time.Time `json:"startDate,omitzero"`
	End      time.Time `json:"endDate,omitzero"`
	TimeZone string    `json:"timeZone,omitempty"`
	// Tenant, for a reader bound to no tenant, counts one tenant's events
	// ("" the default tenant's; docs/tenants.md); nil counts every
	// tenant, or a bound reader's own.
	Tenant *string `json:"tenant,omitempty"`
}

// Report is a stored compliance report (docs/contract.md, "Report").
type Report struct {
	ID              int64            `json:"id"`
	Trigger         string           `json:"trigger"` // request, job or schedule
	Request         ReportRequest    `json:"request"`
	Tenant          string           `json:"tenant,omitempty"` // the one tenant it counts; "" every tenant (or the default tenant, as Request says)
	Type            string           `json:"reportType"`
	Period          Period           `json:"period"`
	GeneratedAt     time.Time        `json:"generatedAt"`
	Summary         Summary          `json:"summary"`
	TopUsers        []UserCount      `json:"topUsers"`
	TopActions      []ActionCount    `json:"topActions"`
	TopResources    []ResourceCount  `json:"topResources"`
	FailureAnalysis []ActionFailures `json:"failureAnalysis"`
}

// Period is the half-open range [Start, End) of a report, in its zone.
type Period struct {
	Start    time.Time `json:"startDate"`
	End      time.Time `json:"endDate"`
	TimeZone string    `json:"timeZone"`
}

// Summary counts the events of a report's period: Successful + Failed =
// Total; SuccessRate in percent with two decimals.
type Summary struct {
	Total           int64         `json:"total"`
	Successful      int64         `json:"successful"`
	Failed          int64         `json:"failed"`
	SuccessRate     float64       `json:"successRate"`
	ActionBreakdown []ActionCount `json:"actionBreakdown"`
}

// ActionCount is how many events had an action.
type ActionCount struct {
	Action string `json:"action"`
	Count  int64  `json:"count"`
}

// UserCount is how many events a user caused.
type UserCount struct {
	UserID string `json:"userId"`
	Count  int64  `json:"count"`
}

// ResourceCount is how many events concerned a resource type.
type ResourceCount struct {
	ResourceType string `json:"resourceType"`
	Count        int64  `json:"count"`
}

// ActionFailures is the failure figure of one action that failed at least
// once; FailureRate in percent with two decimals.
type ActionFailures struct {
	Action      string  `json:"action"`
	Failed      int64   `json:"failed"`
	Total       int64   `json:"total"`
	FailureRate float64 `json:"failureRate"`
}

// Report asks the service for a report (audit.report), which it also
// stores. A request the service refuses is a *RequestError with Code
// "400" naming the field.
func (c *Client) Report(ctx context.Context, req ReportRequest) (Report, error) {
	var r Report
	err := c.request(ctx, subjectReport, req, &r)
	return r, err
}

// GetReport returns the stored report id (audit.report.get); an unknown
// id is an error matching ErrNotFound.
func (c *Client) GetReport(ctx context.Context, id int64) (Report, error) {
	var r Report
	err := c.request(ctx, subjectReportGet, map[string]int64{"id": id}, &r)
	return r, err
}

// ReportInfo describes a stored report without its figures.
type ReportInfo struct {
	ID          int64     `json:"id"`
	Type        string    `json:"reportType"`
	Period      Period    `json:"period"`
	GeneratedAt time.Time `json:"generatedAt"`
	Trigger     string    `json:"trigger"`
}

// Reports lists the stored reports newest first (audit.report.list), of
// type reportType ("": all), asking for the pages as the loop needs them.
// An error ends the sequence.
func (c *Client) Reports(ctx context.Context, reportType string) iter.Seq2[ReportInfo, error] {
	return func(yield func(ReportInfo, error) bool) {
		req := struct {
			ReportType string `json:"reportType,omitempty"`
			Limit      int    `json:"limit"`
			Cursor     string `json:"cursor,omitempty"`
		}{ReportType: reportType, Limit: 100}
		for {
			var page struct {
				Reports    []ReportInfo `json:"reports"`
				NextCursor *string      `json:"nextCursor"`
			}
			if err := c.request(ctx, subjectReportList, req, &page); err != nil {
				yield(ReportInfo{}, err)
				return
			}
			for _, r := range page.Reports {
				if !yield(r, nil) {
					return
				}
			}
			if page.NextCursor == nil {
				return
			}
			req.Cursor = *page.NextCursor
		}
	}
}

// Query selects events (docs/contract.md, "Search"); empty fields do not
// filter.
type Query struct {
	UserID       string `json:"userId,omitempty"`
	Action       string `json:"action,omitempty"` // exact, or a prefix with a trailing "*": "user.*"
	ResourceType string `json:"resourceType,omitempty"`
	ResourceID   string `json:"resourceId,omitempty"`
	// Success, when set, selects the events that succeeded (true) or
	// failed (false).
	Success   *bool     `json:"success,omitempty"`
	SessionID string    `json:"sessionId,omitempty"`
	RequestID string    `json:"requestId,omitempty"`
	From      time.Time `json:"from,omitzero"` // From ≤ event time
	To        time.Time `json:"to,omitzero"`   // event time < To
	// PageSize is how many events each request fetches: 1 to 1,000;
	// 0: 100.
	PageSize int `json:"limit,omitzero"`
	// Tenant, for a reader bound to no tenant, selects one tenant's
	// events ("" the default tenant's; docs/tenants.md); nil selects
	// every tenant, or a bound reader's own.
	Tenant *string `json:"tenant,omitempty"`
}

// Query returns every event q selects, newest first, fetching the pages
// (audit.query, keyset pagination) as the loop needs them: events that
// arrive meanwhile never make a page repeat or skip one. Each page is an
// audited read. An error (a *RequestError with Code "400" for a bad
// filter) ends the sequence.
func (c *Client) Query(ctx context.Context, q Query) iter.Seq2[StoredEvent, error] {
	return func(yield func(StoredEvent, error) bool) {
		req := struct {
			Query
			Cursor string `json:"cursor,omitempty"`
		}{Query: q}
		for {
			var page struct {
				Events     []StoredEvent `json:"events"`
				NextCursor *string       `json:"nextCursor"`
			}
			if err := c.request(ctx, subjectQuery, req, &page); err != nil {
				yield(StoredEvent{}, err)
				return
			}
			for _, e := range page.Events {
				if !yield(e, nil) {
					return
				}
			}
			if page.NextCursor == nil {
				return
			}
			req.Cursor = *page.NextCursor
		}
	}
}

// GetEvent returns the stored event id (audit.event.get) of the caller's
// tenant (a reader bound to none: of the default tenant); an unknown id
// is an error matching ErrNotFound.
func (c *Client) GetEvent(ctx context.Context, id string) (StoredEvent, error) {
	var e StoredEvent
	err := c.request(ctx, subjectEventGet, map[string]string{"id": id}, &e)
	return e, err
}

// GetTenantEvent is GetEvent of tenant's event id ("" the default
// tenant), for a reader bound to no tenant (an event id is unique within
// its tenant only); a bound reader naming another tenant gets a
// *RequestError with Code "403".
func (c *Client) GetTenantEvent(ctx context.Context, tenant, id string) (StoredEvent, error) {
	var e StoredEvent
	err := c.request(ctx, subjectEventGet, map[string]string{"id": id, "tenant": tenant}, &e)
	return e, err
}

// Proof returns the tamper-evidence proof of event id (audit.event.proof):
// check it with VerifyProof. An unknown event, or one not sealed yet, is
// an error matching ErrNotFound; with tamper evidence off, a
// *RequestError with Code "501".
func (c *Client) Proof(ctx context.Context, id string) (Proof, error) {
	var p Proof
	err := c.request(ctx, subjectEventProof, map[string]string{"id": id}, &p)
	return p, err
}

// TenantProof is Proof of tenant's event id, as GetTenantEvent is
// GetEvent.
func (c *Client) TenantProof(ctx context.Context, tenant, id string) (Proof, error) {
	var p Proof
	err := c.request(ctx, subjectEventProof, map[string]string{"id": id, "tenant": tenant}, &p)
	return p, err
}

// PublicKeys are the keys that sign the trail: the current one and those
// it replaced.
type PublicKeys struct {
	Current ed25519.PublicKey
	Retired []ed25519.PublicKey
}

// PublicKeys returns the service's signing keys (audit.pubkey). A proof
// checked against keys fetched from the service proves only that the
// service signed it: pin the keys from a source you trust.
func (c *Client) PublicKeys(ctx context.Context) (PublicKeys, error) {
	type key struct {
		PublicKey []byte `json:"publicKey"`
		KeyID     string `json:"keyId"`
	}
	var a struct {
		Algorithm string `json:"algorithm"`
		key
		Retired []key `json:"retired"`
	}
	if err := c.request(ctx, subjectPubKey, struct{}{}, &a); err != nil {
		return PublicKeys{}, err
	}
	if a.Algorithm != "Ed25519" {
		return PublicKeys{}, fmt.Errorf("%s: algorithm %q, want Ed25519", subjectPubKey, a.Algorithm)
	}
	var out PublicKeys
	for i, k := range append([]key{a.key}, a.Retired...) {
		if len(k.PublicKey) != ed25519.PublicKeySize || keyID(k.PublicKey) != k.KeyID {
			return PublicKeys{}, fmt.Errorf("%s: key %q is not a 32-byte Ed25519 key with that id", subjectPubKey, k.KeyID)
		}
		if i == 0 {
			out.Current = k.PublicKey
		} else {
			out.Retired = append(out.Retired, k.PublicKey)
		}
	}
	return out, nil
}

// CheckpointWrite is the answer of WriteCheckpoint.
type CheckpointWrite struct {
	Checkpoint Checkpoint `json:"checkpoint"`
	// Published is false when the checkpoint is stored but not yet in the
	// stream AUDIT_CHECKPOINTS (the next checkpoint publishes it).
	Published bool `json:"published"`
}

// WriteCheckpoint asks the service to write a signed checkpoint now
// (audit.checkpoint.write), so that the proofs of events stored so far
// can be verified at once.
func (c *Client) WriteCheckpoint(ctx context.Context) (CheckpointWrite, error) {
	var w CheckpointWrite
	err := c.request(ctx, subjectCheckpointWrite, struct{}{}, &w)
	return w, err
}

// Schemas returns the JSON Schemas (2020-12) of the contract by name
// ("event", "bulk", "query", ...; audit.schema), each as shipped.
func (c *Client) Schemas(ctx context.Context) (map[string]json.RawMessage, error) {
	var a struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
	}
	err := c.request(ctx, subjectSchema, struct{}{}, &a)
	return a.Schemas, err
}

// Schema returns the JSON Schema name as shipped; an unknown name is an
// error matching ErrNotFound.
func (c *Client) Schema(ctx context.Context, name string) (json.RawMessage, error) {
	var s json.RawMessage
	err := c.request(ctx, subjectSchema, map[string]string{"name": name}, &s)
	return s, err
}
