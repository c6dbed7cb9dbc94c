package audit

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"time"
)

// Limits on event fields. They are part of the public contract (docs/contract.md,
// "Event fields") and chosen so that one event always fits in one row
// without surprises: Postgres would accept longer text, but an audit trail
// that grows without bound is a denial-of-service vector.
const (
	MaxIDLen           = 256       // id, userId, resourceId, sessionId, requestId (characters)
	MaxNameLen         = 256       // action, resourceType (characters)
	MaxUserAgentLen    = 1024      // userAgent (characters)
	MaxErrorMessageLen = 4096      // errorMessage (characters)
	MaxDetailsBytes    = 64 << 10  // details, as sent (bytes of JSON)
	MaxDetailsDepth    = 32        // nesting of objects and arrays inside details
	DefaultFutureSkew  = time.Hour // how far after receipt an event's timestamp may lie
)

// Earliest is the oldest event time accepted: nothing audited happened before
// the Unix epoch, and negative times are always client bugs.
var Earliest = time.Unix(0, 0).UTC()

// Event is one audited action: who (UserID, empty for the system) did what
// (Action) to which resource (ResourceType, ResourceID), from where, whether
// it worked, and when it happened (OccurredAt) and was received (ReceivedAt).
// A value that came out of DecodeEvent satisfies every rule in this package.
type Event struct {
	ID           string
	UserID       string
	Action       string
	ResourceType string
	ResourceID   string
	Details      json.RawMessage // a JSON object, or nil
	IPAddress    string          // canonical form of a parsed IP, or ""
	UserAgent    string
	SessionID    string
	RequestID    string
	Success      bool
	ErrorMessage string
	OccurredAt   time.Time // UTC, microsecond precision
	ReceivedAt   time.Time // UTC, microsecond precision
	// Tenant is the tenant the event belongs to (docs/tenants.md), taken
	// from the subject it arrived on, never from its payload;
	// DefaultTenant ("") in a single-tenant deployment.
	Tenant string

	// Personal data (docs/personal-data.md). Pseudonym is the keyed
	// pseudonym of UserID when the deployment pseudonymises or encrypts
	// personal data; in the stored form of such an event (what is hashed
	// and verified) UserID is empty and Pseudonym stands in its place.
	Pseudonym string
	// Personal holds the personal fields sealed under the data subject's
	// key, in the stored form of an encrypted event only: readers get the
	// fields back, or Erased.
	Personal []byte
	// Erased reports that the subject's key was destroyed: UserID is then
	// ErasedUserID and the other personal fields are gone.
	Erased bool

	// canonical is the RFC 8785 form of canonicalOf, which DecodeEvent
	// computes anyway to check Details; AppendCanonicalDetails uses it
	// while Details is still that slice.
	canonical, canonicalOf json.RawMessage
}

// setCanonicalDetails records canon as the canonical form of e.Details.
func (e *Event) setCanonicalDetails(canon json.RawMessage) {
	e.canonical, e.canonicalOf = canon, e.Details
}

// AppendCanonicalDetails appends the canonical form (AppendCanonicalJSON,
// RFC 8785) of Details to dst; nothing when Details is nil. An event from
// DecodeEvent already holds it, so it is not computed a second time for
// the tamper-evidence hash; an event whose Details was set or replaced
// since is canonicalised afresh.
func (e *Event) AppendCanonicalDetails(dst []byte) ([]byte, error) {
	if e.Details == nil {
		return dst, nil
	}
	if e.canonical != nil && len(e.Details) > 0 && len(e.canonicalOf) == len(e.Details) && &e.canonicalOf[0] == &e.Details[0] {
		return append(dst, e.canonical...), nil
	}
	return AppendCanonicalJSON(dst, e.Details)
}

// IsSystem reports whether the event has no user: a system action.
func (e Event) IsSystem() bool { return e.UserID == "" }

// Receipt says how an event reached the service: when, and which id to give
// it if the publisher supplied none. FallbackID must be stable across
// redeliveries of the same message (e.g. its Nats-Msg-Id, else stream and
// sequence) so that a redelivery never adds a second row.
type Receipt struct {
	ReceivedAt time.Time
	FallbackID string
	// FutureSkew is how far after ReceivedAt a timestamp may lie; zero means
	// DefaultFutureSkew.
	FutureSkew time.Duration
}

func (r Receipt) skew() time.Duration {
	if r.FutureSkew > 0 {
		return r.FutureSkew
	}
	return DefaultFutureSkew
}

// Precision is the resolution of stored times (Postgres timestamptz).
const Precision = time.Microsecond

// Normalize returns t in UTC at storage precision.
func Normalize(t time.Time) time.Time { return t.UTC().Truncate(Precision) }

// parseIP returns the canonical text of an IP address without a zone: s
// itself when it is already canonical (as nearly every address is), so
// that the result shares s's memory instead of being a copy.
func parseIP(s string) (string, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", false
	}
	var buf [len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")]byte
	canon := a.AppendTo(buf[:0])
	if string(canon) == s {
		return s, true
	}
	return string(canon), true
}

// CheckNoNUL returns a permanent error naming the first field holding a NUL
// character, which PostgreSQL text and jsonb cannot store. DecodeEvent
// already guarantees this; writers check again for events built in code.
func (e Event) CheckNoNUL() error {
	for _, f := range []struct{ name, val string }{
		{"id", e.ID}, {"userId", e.UserID}, {"action", e.Action}, {"resourceType", e.ResourceType},
		{"resourceId", e.ResourceID}, {"ipAddress", e.IPAddress}, {"userAgent", e.UserAgent},
		{"sessionId", e.SessionID}, {"requestId", e.RequestID}, {"errorMessage", e.ErrorMessage},
	} {
		if strings.IndexByte(f.val, 0) >= 0 {
			return Invalid(f.name, "must not contain NUL characters")
		}
	}
	if bytes.IndexByte(e.Details, 0) >= 0 {
		return Invalid("details", "must not contain NUL characters")
	}
	if e.Details != nil {
		if err := scanDetails("details", e.Details); err != nil {
			return err
		}
	}
	return nil
}
