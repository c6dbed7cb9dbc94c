package query

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// SearchRequest is the body of audit.query. Empty fields do not filter.
type SearchRequest struct {
	UserID string `json:"userId,omitempty"`
	// UserPseudonym finds the events of the user with this keyed
	// pseudonym (docs/personal-data.md), erased or not.
	UserPseudonym string `json:"userPseudonym,omitempty"`
	Action        string `json:"action,omitempty"` // exact, or a prefix with a trailing "*": "guild.*"
	ResourceType  string `json:"resourceType,omitempty"`
	ResourceID    string `json:"resourceId,omitempty"`
	Success       *bool  `json:"success,omitempty"`
	SessionID     string `json:"sessionId,omitempty"`
	RequestID     string `json:"requestId,omitempty"`
	From          string `json:"from,omitempty"`   // RFC 3339, inclusive
	To            string `json:"to,omitempty"`     // RFC 3339, exclusive
	Limit         *int   `json:"limit,omitempty"`  // default 100, at most 1000
	Cursor        string `json:"cursor,omitempty"` // nextCursor of the previous page
	// Tenant selects one tenant's events ("" the default tenant's); nil
	// reads every tenant, or, for a reader bound to a tenant, its own.
	Tenant *string `json:"tenant,omitempty"`
}

// SearchResult is one page of events, newest first. NextCursor is empty on
// the last page.
type SearchResult struct {
	Events     []audit.Event
	NextCursor string
}

// SearchHandler searches the audit trail with keyset pagination: a cursor
// names the last event of a page, so pages neither skip nor repeat events
// while new ones arrive.
type SearchHandler struct {
	searcher audit.Searcher
	reads    ReadAuditor
}

// NewSearchHandler returns a SearchHandler over s.
func NewSearchHandler(s audit.Searcher, reads ReadAuditor) SearchHandler {
	return SearchHandler{searcher: s, reads: reads}
}

// Handle runs the search and records the read. The error is a
// *audit.ValidationError naming the field of a bad request; anything else
// is transient.
func (h SearchHandler) Handle(ctx context.Context, req SearchRequest, who Requester) (SearchResult, error) {
	f, err := req.scopedFilter(who.Scope)
	if err != nil {
		return SearchResult{}, err
	}
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	events, err := h.searcher.Search(ctx, f)
	if err != nil {
		err = fmt.Errorf("search: %w", err)
	}
	out := SearchResult{Events: events}
	if len(events) > limit {
		out.Events = events[:limit]
		last := events[limit-1]
		out.NextCursor = cursorAfter(last, f.Tenant)
	}
	rec := read{action: ActionQuery, endpoint: "audit.query", request: req, who: who, of: f.Tenant,
		extra: map[string]any{"returned": len(out.Events)}}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return SearchResult{}, err
	}
	if out.Events == nil {
		out.Events = []audit.Event{}
	}
	return out, nil
}

// filter checks the request and turns it into a domain filter, for a
// caller that may read every tenant.
func (r SearchRequest) filter() (audit.SearchFilter, error) {
	return r.scopedFilter(audit.TenantScope{})
}

// scopedFilter checks the request and turns it into a domain filter for
// a caller of scope: a bound caller's filter always holds its tenant, a
// tenant field naming another is a *audit.ForbiddenError, and a cursor
// issued for another tenant's search is refused.
func (r SearchRequest) scopedFilter(scope audit.TenantScope) (audit.SearchFilter, error) {
	f := audit.SearchFilter{
		UserID: r.UserID, UserPseudonym: r.UserPseudonym, ResourceType: r.ResourceType, ResourceID: r.ResourceID,
		Success: r.Success, SessionID: r.SessionID, RequestID: r.RequestID,
		Limit: audit.DefaultSearchLimit,
	}
	f.Action, f.ActionPrefix = audit.ParseActionPattern(r.Action)
	var err error
	if f.Tenant, err = scope.Resolve("tenant", r.Tenant); err != nil {
		return f, err
	}
	if r.Limit != nil {
		f.Limit = *r.Limit
	}
	if r.From != "" {
		if f.From, err = audit.ParseInstant("from", r.From); err != nil {
			return f, err
		}
	}
	if r.To != "" {
		if f.To, err = audit.ParseInstant("to", r.To); err != nil {
			return f, err
		}
	}
	if r.Cursor != "" {
		var c searchCursor
		bad := audit.Invalid("cursor", "is not a cursor returned by audit.query or audit.export")
		if err := decodeCursor(r.Cursor, &c); err != nil || c.ID == "" {
			return f, bad
		}
		t, err := time.Parse(time.RFC3339Nano, c.T)
		if err != nil {
			return f, bad
		}
		if !sameTenant(c.Tenant, f.Tenant) {
			return f, audit.Invalid("cursor", "was issued for a search of another tenant")
		}
		f.After = &audit.Position{OccurredAt: t, ID: c.ID, Tenant: c.EventTenant}
	}
	return f, f.Validate()
}

// searchCursor is the position of the last event of a page (its time, id
// and tenant), and the tenant the search was confined to (absent: none),
// so that a cursor continues only a search of the same tenant. A cursor
// without the event's tenant (one issued before cursors carried it)
// continues after every event of its time and id.
type searchCursor struct {
	T           string  `json:"t"`
	ID          string  `json:"id"`
	EventTenant *string `json:"et,omitempty"`
	Tenant      *string `json:"tn,omitempty"`
}

// cursorAfter returns the cursor continuing a search confined to tenant
// (nil: none) strictly after e.
func cursorAfter(e audit.Event, tenant *string) string {
	et := e.Tenant
	return encodeCursor(searchCursor{T: e.OccurredAt.UTC().Format(time.RFC3339Nano), ID: e.ID, EventTenant: &et, Tenant: tenant})
}

func sameTenant(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// encodeCursor makes an opaque cursor: base64url (unpadded) of JSON.
func encodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, v any) error {
	if len(s) > 2048 {
		return fmt.Errorf("cursor too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// GetEventRequest is the body of audit.event.get.
type GetEventRequest struct {
	ID string `json:"id"`
	// Tenant, for a reader bound to no tenant, names the tenant of the
	// event ("" the default tenant, also when absent); a bound reader
	// reads its own tenant's event and may only name that one.
	Tenant *string `json:"tenant,omitempty"`
}

// GetEventHandler returns one stored event.
type GetEventHandler struct {
	events audit.EventGetter
	reads  ReadAuditor
}

// NewGetEventHandler returns a GetEventHandler over g.
func NewGetEventHandler(g audit.EventGetter, reads ReadAuditor) GetEventHandler {
	return GetEventHandler{events: g, reads: reads}
}

// Handle returns the event with req.ID of the tenant the caller reads
// (see audit.TenantScope.ResolveOne): a *audit.ValidationError for a
// missing or malformed id or tenant, a *audit.ForbiddenError for a bound
// caller naming another tenant, an error wrapping audit.ErrNotFound when
// the tenant has no such event.
func (h GetEventHandler) Handle(ctx context.Context, req GetEventRequest, who Requester) (audit.Event, error) {
	if req.ID == "" {
		return audit.Event{}, audit.Invalid("id", "is required: an event id")
	}
	if err := audit.CheckFilterText("id", req.ID); err != nil {
		return audit.Event{}, err
	}
	tenant, err := who.Scope.ResolveOne("tenant", req.Tenant)
	var ev audit.Event
	if err == nil {
		if ev, err = h.events.Get(ctx, tenant, req.ID); err != nil {
			err = fmt.Errorf("event %s: %w", audit.EventRef(tenant, req.ID), err)
		}
	}
	rec := read{action: ActionQuery, endpoint: "audit.event.get", request: req, who: who}
	if err == nil {
		rec.of = &tenant
	}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return audit.Event{}, err
	}
	return ev, nil
}

func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "..."
	}
	return s
}
