package audit

import (
	"strings"
	"time"
)

// Search limits: a public contract (docs/contract.md).
const (
	DefaultSearchLimit = 100
	MaxSearchLimit     = 1000
	DefaultListLimit   = 20  // audit.report.list
	MaxListLimit       = 100 // audit.report.list
)

// Position is a place in the newest-first order of events, (OccurredAt, ID,
// Tenant) descending: a search continues with the events strictly after it.
// Tenant is the tenant of the event at the position; nil (a cursor issued
// without it) continues after every event of (OccurredAt, ID), whatever its
// tenant.
type Position struct {
	OccurredAt time.Time
	ID         string
	Tenant     *string
}

// SearchFilter selects events; empty fields do not filter. The result is
// ordered newest first by (OccurredAt, ID, Tenant) descending: events of
// several tenants may share an id and a time, and the tenant makes the
// order total.
type SearchFilter struct {
	UserID string
	// UserPseudonym selects the events of the user with this keyed
	// pseudonym (docs/personal-data.md), erased or not.
	UserPseudonym string
	Action        string // exact, or a prefix when ActionPrefix
	ActionPrefix  bool
	ResourceType  string
	ResourceID    string
	Success       *bool
	SessionID     string
	RequestID     string
	From, To      time.Time // [From, To); zero = open
	Limit         int       // 1..MaxSearchLimit
	After         *Position // continue after this event
	// Tenant selects one tenant's events; nil selects every tenant's.
	Tenant *string
}

// ParseActionPattern splits an action filter: "guild.*" is the prefix
// "guild.", anything without a trailing "*" is exact. Only a trailing "*"
// is special; a "*" elsewhere is matched literally.
func ParseActionPattern(s string) (action string, prefix bool) {
	if strings.HasSuffix(s, "*") {
		return strings.TrimSuffix(s, "*"), true
	}
	return s, false
}

// CheckFilterText validates one text filter the way event fields are
// validated (length, no NUL or control characters), so a search never
// sends the database a value it would reject.
func CheckFilterText(field, s string) error {
	return checkText(field, s, MaxIDLen, textSingleLine)
}

// Validate checks the filter's ranges and returns a *ValidationError naming
// the first bad field.
func (f SearchFilter) Validate() error {
	for _, t := range []struct{ name, val string }{
		{"userId", f.UserID}, {"userPseudonym", f.UserPseudonym}, {"action", f.Action}, {"resourceType", f.ResourceType},
		{"resourceId", f.ResourceID}, {"sessionId", f.SessionID}, {"requestId", f.RequestID},
	} {
		if err := CheckFilterText(t.name, t.val); err != nil {
			return err
		}
	}
	if f.Limit < 1 || f.Limit > MaxSearchLimit {
		return Invalid("limit", "must be between 1 and %d, got %d", MaxSearchLimit, f.Limit)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return Invalid("to", "must be after from")
	}
	return nil
}
