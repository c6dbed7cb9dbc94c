// Package query holds the read use cases of auditq: reports, searches and
// lookups of stored events and reports. Reading the audit trail is itself
// audited (PCI DSS 10.2.1.3): each handler records the read as an event.
package query

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/auditq/auditq/domain/audit"
)

// Actions and resource type of the events that record reads.
const (
	ActionReport     = "audit.report"
	ActionQuery      = "audit.query"
	ActionExport     = "audit.export"
	ReadResourceType = "audit_log"
)

// ReadActions are the actions of every event that records a read: the
// reads of the trail, the operator's reads (ActionAdmin) and the refused
// ones (ActionDenied). The console's trail hides them unless asked to
// show them (GET /console/config.json serves this list).
func ReadActions() []string {
	return []string{ActionQuery, ActionReport, ActionEventProof, ActionExport, ActionAdmin, ActionDenied}
}

// Requester is who asked for a read, as far as the transport can tell.
type Requester struct {
	// RequestInfo is the Nats-Request-Info header: JSON the NATS server
	// sets on requests that cross an account boundary (a service import).
	// Within one account a client could set it itself.
	RequestInfo string
	// Claimed is an identity the client supplied itself (header
	// Auditq-Requester); it is recorded, labelled unverified.
	Claimed string
	// Verified is who the NATS server authenticated, when the transport
	// can vouch for it (RequestInfo set by the server); nil otherwise.
	Verified *Identity
	// Scope is what the caller may read (docs/tenants.md): every tenant,
	// or only the tenant its account is bound to.
	Scope audit.TenantScope
}

// Identity is a caller as the NATS server authenticated it.
type Identity struct {
	Account string // the caller's account
	User    string // its user name or nkey; "" when the server did not share it
	Name    string // the client name its connection gave
}

// UserID is the identity as the userId of the read's event:
// "nats:<account>/<user>", or "" without a user.
func (i *Identity) UserID() string {
	if i == nil || i.User == "" {
		return ""
	}
	return cleanHeader("nats:"+i.Account+"/"+i.User, audit.MaxIDLen)
}

// ReadAuditor records reads of the audit trail as audit events, written
// through the same audit.Writer the record command uses (not through the
// command). The zero value (or one built with a nil writer) records
// nothing.
type ReadAuditor struct {
	writer audit.Writer
	now    func() time.Time
}

// ReadAuditorConfig configures a ReadAuditor.
type ReadAuditorConfig struct {
	// Now is the clock of the recorded events; nil means time.Now.
	Now func() time.Time
}

// NewReadAuditor returns a ReadAuditor writing through w; nil w disables
// recording.
func NewReadAuditor(w audit.Writer, cfg ReadAuditorConfig) ReadAuditor {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return ReadAuditor{writer: w, now: cfg.Now}
}

// read describes one read to record.
type read struct {
	action   string // ActionReport or ActionQuery
	endpoint string // the subject that was asked, e.g. audit.query; the event's resourceId
	eventID  string // "" = a random id (each request is its own read)
	request  any    // the request as decoded
	who      Requester
	extra    map[string]any // outcome facts, e.g. reportId, returned
	// of is the one tenant whose events or reports an unbound reader
	// read (a search of one tenant, a report of it, its event); nil when
	// it read every tenant or nothing of a tenant.
	of *string
}

// tenant is the tenant the read is recorded in (docs/tenants.md): a bound
// reader's own, so that the tenant's trail shows who read it and no other
// tenant sees it; an unbound reader's read of one tenant in that tenant,
// so that the tenant sees its operators' reads too; any other read in the
// default tenant, which only unbound readers see.
func (r read) tenant() string {
	switch {
	case r.who.Scope.Bound:
		return r.who.Scope.Tenant
	case r.of != nil:
		return *r.of
	default:
		return audit.DefaultTenant
	}
}

// record stores the read as an event: success when readErr is nil, else
// the kind of failure. A read that succeeded but cannot be recorded fails
// (an unaudited read is not served); when the read failed already, its own
// error is returned.
func (a ReadAuditor) record(ctx context.Context, r read, readErr error) error {
	if a.writer == nil {
		return readErr
	}
	tenant := r.tenant()
	details := map[string]any{"endpoint": r.endpoint, "request": r.request}
	if who := requesterDetails(r.who); who != nil {
		if tenant != audit.DefaultTenant && (r.who.Verified == nil || r.who.Verified.Account != tenant) {
			// A tenant sees the verified account, user and client name of
			// an operator who read it, not the server's details of the
			// operator's connection (host, server, cluster).
			delete(who, "natsRequestInfo")
		}
		details["requester"] = who
	}
	for k, v := range r.extra {
		details[k] = v
	}
	body, err := json.Marshal(details)
	if err != nil {
		return errors.Join(readErr, fmt.Errorf("record read: encode details: %w", err))
	}
	if len(body) > audit.MaxDetailsBytes {
		body, _ = json.Marshal(map[string]any{"endpoint": r.endpoint, "truncated": true})
	}
	now := audit.Normalize(a.now())
	id := r.eventID
	if id == "" {
		id = "read-" + timeOrderedHex(now)
	}
	ev := audit.Event{
		ID: id, UserID: r.who.Verified.UserID(), Action: r.action, ResourceType: ReadResourceType, ResourceID: r.endpoint,
		Details: body, Success: readErr == nil, OccurredAt: now, ReceivedAt: now, Tenant: tenant,
	}
	if readErr != nil {
		ev.ErrorMessage = failureKind(readErr)
	}
	if _, err := a.writer.Write(ctx, []audit.Event{ev}); err != nil {
		if readErr != nil {
			return readErr
		}
		return fmt.Errorf("record read %s of %s: %w", id, r.endpoint, err)
	}
	return readErr
}

// failureKind is what the audit trail says about a failed read: never an
// internal error's text (it may hold SQL).
func failureKind(err error) string {
	var v *audit.ValidationError
	var f *audit.ForbiddenError
	var stopped ExportStopped
	switch {
	case errors.As(err, &v):
		return v.Error()
	case errors.As(err, &f):
		return f.Error()
	case errors.As(err, &stopped):
		return stopped.Error()
	case errors.Is(err, audit.ErrNotFound):
		return "not found"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	default:
		return "internal error"
	}
}

// Details returns the requester as the trail stores it
// (details.requester of a read, details.requestedBy of an erasure): nil
// when the transport told nothing.
func (r Requester) Details() map[string]any { return requesterDetails(r) }

// requesterDetails is the requester as stored in details.requester.
func requesterDetails(r Requester) map[string]any {
	out := map[string]any{}
	if v := r.Verified; v != nil {
		out["verified"] = true
		for k, val := range map[string]string{"account": v.Account, "user": v.User, "name": v.Name} {
			if c := cleanHeader(val, audit.MaxIDLen); c != "" {
				out[k] = c
			}
		}
	}
	if info := strings.TrimSpace(r.RequestInfo); info != "" {
		out["natsRequestInfo"] = safeJSON(info)
	}
	if c := cleanHeader(r.Claimed, audit.MaxIDLen); c != "" {
		out["unverifiedClaim"] = c
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// safeJSON keeps a header holding a JSON object as JSON when Postgres
// jsonb will accept it (no NUL escape, at most 4 KiB), else as clean text.
func safeJSON(s string) any {
	if len(s) <= 4096 && json.Valid([]byte(s)) && strings.HasPrefix(s, "{") &&
		!strings.Contains(s, `\u0000`) && !strings.ContainsRune(s, 0) {
		var buf bytes.Buffer
		if json.Compact(&buf, []byte(s)) == nil {
			return json.RawMessage(buf.Bytes())
		}
	}
	return cleanHeader(s, 4096)
}

// cleanHeader makes a header value safe to store: valid UTF-8, no control
// characters, at most n runes.
func cleanHeader(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if r := []rune(strings.TrimSpace(s)); len(r) > n {
		return string(r[:n])
	}
	return strings.TrimSpace(s)
}

// timeOrderedHex returns 32 hex digits that grow with time: t's Unix time
// in milliseconds (12 digits) and 80 random bits, so that the events'
// unique (id, tenant) index is written at its end, not at a random page
// (docs/performance.md, "Write cost by table size").
func timeOrderedHex(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
