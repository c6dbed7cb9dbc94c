package contract

import (
	"encoding/json"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// EventView is an event as the request service returns it (audit.query,
// audit.event.get): the fields of an event as published, plus receivedAt.
// userId is null for system events; other empty optional fields are left
// out. With personal data pseudonymised or encrypted
// (docs/personal-data.md) userPseudonym is the user's keyed pseudonym;
// once the user is erased, userId is "[erased]", erased is true and
// ipAddress, userAgent, sessionId and the personal details keys are left
// out. The one definition of that wire format: the CLI decodes it too.
type EventView struct {
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
	// UserPseudonym and Erased: see above.
	UserPseudonym string `json:"userPseudonym,omitempty"`
	Erased        bool   `json:"erased,omitempty"`
	// Tenant is the event's tenant (docs/tenants.md), left out for the
	// default tenant.
	Tenant string `json:"tenant,omitempty"`
}

// ViewOf returns e as the request service shows it.
func ViewOf(e audit.Event) EventView {
	return EventView{
		ID: e.ID, UserID: Nullable(e.UserID), Action: e.Action, ResourceType: e.ResourceType,
		ResourceID: e.ResourceID, Details: e.Details, IPAddress: e.IPAddress, UserAgent: e.UserAgent,
		SessionID: e.SessionID, RequestID: e.RequestID, Success: e.Success, ErrorMessage: e.ErrorMessage,
		Timestamp: e.OccurredAt, ReceivedAt: e.ReceivedAt, UserPseudonym: e.Pseudonym, Erased: e.Erased,
		Tenant: e.Tenant,
	}
}

// SearchPage is the answer of audit.query: a page of events, newest
// first, and the cursor of the next page (null on the last).
type SearchPage struct {
	Events     []EventView `json:"events"`
	NextCursor *string     `json:"nextCursor"`
}

// ReportList is the answer of audit.report.list: stored reports, newest
// first, and the cursor of the next page (null on the last).
type ReportList struct {
	Reports    []audit.ReportListItem `json:"reports"`
	NextCursor *string                `json:"nextCursor"`
}

// Nullable returns nil for "", else a pointer to s: the JSON null of an
// optional string field.
func Nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// StreamView is one log stream in the answer of audit.streams
// (docs/streams.md): its sink and format, its state (starting, active,
// retrying with lastError, or paused), its cursor in the commit order,
// what it delivered and how far behind it is.
type StreamView struct {
	Name        string           `json:"name"`
	Sink        string           `json:"sink"`
	Format      string           `json:"format"`
	State       string           `json:"state"`
	LastError   *string          `json:"lastError"`
	LastErrorAt *time.Time       `json:"lastErrorAt,omitempty"`
	DeliveredAt *time.Time       `json:"deliveredAt,omitempty"`
	Cursor      StreamCursorView `json:"cursor"`
	Delivered   int64            `json:"delivered"`
	Failed      int64            `json:"failed"`
	Skipped     int64            `json:"skipped"`
	LagEvents   int64            `json:"lagEvents"`
	LagSeconds  float64          `json:"lagSeconds"`
	Owner       *string          `json:"owner"`
}

// StreamCursorView is a stream's cursor: the next batch (chain position)
// to deliver and the last leaf of it already delivered (-1: none).
type StreamCursorView struct {
	NextBatchSeq int64 `json:"nextBatchSeq"`
	AfterLeaf    int   `json:"afterLeaf"`
}

// StreamList is the answer of audit.streams.
type StreamList struct {
	Streams []StreamView `json:"streams"`
}
