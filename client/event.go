package client

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// Event is one audit event as published on audit.log: who (UserID; empty
// for an action of the system) did what (Action) to which resource
// (ResourceType, ResourceID), from where, whether it worked, and when.
// Action, ResourceType and ResourceID are required; the limits are the
// Max* constants and docs/contract.md ("Event fields").
type Event struct {
	// ID is the event id: re-publishing an id stores nothing new. Empty:
	// Publish gives the event one of 32 hex digits, its first 12 the time
	// in milliseconds, the rest random.
	ID           string
	UserID       string
	Action       string // e.g. "user.login"
	ResourceType string // e.g. "user"
	ResourceID   string
	// Details is a JSON object (nil: none), at most MaxDetailsBytes and
	// MaxDetailsDepth levels, every number exactly an IEEE 754 double (as
	// encoding/json writes a float64; larger integers as strings).
	Details   json.RawMessage
	IPAddress string // IPv4 or IPv6, without zone
	UserAgent string
	SessionID string
	RequestID string
	// Failed records that the action did not succeed (the contract's
	// "success": false). The zero value is a success, as on the wire.
	Failed       bool
	ErrorMessage string // may hold line breaks and tabs
	// Timestamp is when it happened; zero: when the service received it.
	// Stored in UTC at microsecond precision; at most Rules.FutureSkew
	// ahead of the service's clock.
	Timestamp time.Time
}

// appendJSON appends e as the JSON object Publish sends: its non-empty
// fields under their contract names. Strings are written as they are,
// invalid UTF-8 included, and Details verbatim, so that the rules check
// exactly the bytes that would reach the service.
func (e Event) appendJSON(b []byte) []byte {
	b = append(b, '{')
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
	}
	for _, f := range []struct{ name, val string }{
		{"id", e.ID}, {"userId", e.UserID}, {"action", e.Action}, {"resourceType", e.ResourceType}, {"resourceId", e.ResourceID},
	} {
		if f.val != "" {
			field(f.name)
			b = appendString(b, f.val)
		}
	}
	if e.Details != nil {
		field("details")
		b = append(b, e.Details...)
	}
	for _, f := range []struct{ name, val string }{
		{"ipAddress", e.IPAddress}, {"userAgent", e.UserAgent}, {"sessionId", e.SessionID}, {"requestId", e.RequestID},
	} {
		if f.val != "" {
			field(f.name)
			b = appendString(b, f.val)
		}
	}
	if e.Failed {
		field("success")
		b = append(b, "false"...)
	}
	if e.ErrorMessage != "" {
		field("errorMessage")
		b = appendString(b, e.ErrorMessage)
	}
	if !e.Timestamp.IsZero() {
		field("timestamp")
		b = append(b, '"')
		b = e.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendString appends s as a JSON string: quote, backslash and control
// characters escaped, every other byte as it is (invalid UTF-8 too, which
// the rules then reject as the service would).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// newID returns a random id: 32 hex digits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newEventID returns an event id of 32 hex digits that grows with time:
// the Unix time in milliseconds (12 digits, as in a UUIDv7) and 80 random
// bits. The service's unique index on (tenant, id) is then written at its
// end, on pages in memory, wherever the table has grown to; random ids
// would land on any of its pages (docs/performance.md, "Write cost by
// table size").
func newEventID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// StoredEvent is an event as the service returns it (Query, GetEvent):
// the fields as published, with Timestamp the event time (the time of
// receipt when none was given), and when the service received it.
// Details is as PostgreSQL's jsonb prints it: the same values, keys in
// its own order.
type StoredEvent struct {
	Event
	ReceivedAt time.Time
	// Tenant is the event's tenant (docs/tenants.md); "" for the default
	// tenant.
	Tenant string
}

// storedEventJSON is the wire form of StoredEvent (docs/contract.md,
// "Search").
type storedEventJSON struct {
	ID           string          `json:"id"`
	UserID       *string         `json:"userId"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resourceType"`
	ResourceID   string          `json:"resourceId"`
	Details      json.RawMessage `json:"details,omitempty"`
	IPAddress    string          `json:"ipAddress,omitempty"`
	UserAgent    string          `json:"userAgent,omitempty"`
	SessionID    string          `json:"sessionId,omitempty"`
	RequestID    string          `json:"requestId,omitempty"`
	Success      bool            `json:"success"`
	ErrorMessage string          `json:"errorMessage,omitempty"`
	Timestamp    time.Time       `json:"timestamp"`
	ReceivedAt   time.Time       `json:"receivedAt"`
	Tenant       string          `json:"tenant,omitempty"`
}

// UnmarshalJSON reads an event of an audit.query or audit.event.get
// answer.
func (s *StoredEvent) UnmarshalJSON(data []byte) error {
	var w storedEventJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*s = StoredEvent{Event: Event{
		ID: w.ID, Action: w.Action, ResourceType: w.ResourceType, ResourceID: w.ResourceID,
		Details: w.Details, IPAddress: w.IPAddress, UserAgent: w.UserAgent, SessionID: w.SessionID,
		RequestID: w.RequestID, Failed: !w.Success, ErrorMessage: w.ErrorMessage, Timestamp: w.Timestamp,
	}, ReceivedAt: w.ReceivedAt, Tenant: w.Tenant}
	if w.UserID != nil {
		s.UserID = *w.UserID
	}
	return nil
}

// MarshalJSON writes s in the wire form of an audit.query answer.
func (s StoredEvent) MarshalJSON() ([]byte, error) {
	w := storedEventJSON{
		ID: s.ID, Action: s.Action, ResourceType: s.ResourceType, ResourceID: s.ResourceID,
		Details: s.Details, IPAddress: s.IPAddress, UserAgent: s.UserAgent, SessionID: s.SessionID,
		RequestID: s.RequestID, Success: !s.Failed, ErrorMessage: s.ErrorMessage, Timestamp: s.Timestamp,
		ReceivedAt: s.ReceivedAt, Tenant: s.Tenant,
	}
	if s.UserID != "" {
		w.UserID = &s.UserID
	}
	return json.Marshal(w)
}

// quoteID is id for error messages: quoted, at most 80 bytes of it.
func quoteID(id string) string {
	if len(id) > 80 {
		return strconv.Quote(id[:80]) + "..."
	}
	return strconv.Quote(id)
}
