package query

import (
	"context"
	"fmt"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// Export formats (the format field of audit.export).
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// Export page sizes: events read by one query (AUDITQ_EXPORT_PAGE_EVENTS).
const (
	DefaultExportPageEvents = 1000
	MaxExportPageEvents     = 10000
)

// ExportRequest is the body of audit.export: the filters of audit.query,
// a format, and in cursor the resume cursor of an interrupted export (an
// audit.query cursor continues the same way). It takes no limit: an
// export delivers every matching event.
type ExportRequest struct {
	SearchRequest
	Format string `json:"format,omitempty"` // ndjson (default) or csv
	// CSVRaw (csv only) writes values as stored, without the guard that
	// keeps spreadsheets from evaluating them as formulas.
	CSVRaw bool `json:"csvRaw,omitempty"`
}

// ExportConfig configures an ExportHandler.
type ExportConfig struct {
	// PageEvents is how many events one read returns; 0 means
	// DefaultExportPageEvents.
	PageEvents int
}

// Validate names a setting out of range.
func (c ExportConfig) Validate() error {
	if c.PageEvents < 1 || c.PageEvents > MaxExportPageEvents {
		return fmt.Errorf("export: PageEvents must be between 1 and %d, got %d", MaxExportPageEvents, c.PageEvents)
	}
	return nil
}

// ExportHandler runs exports: every event matching a filter, newest first
// by (event time, id, tenant), read in keyset pages over the index audit.query
// uses, each page its own short statement (no transaction spans the
// export). Each export is recorded as two reads: when it starts and when
// it ends, with the count it returned.
type ExportHandler struct {
	pages audit.ExportReader
	reads ReadAuditor
	cfg   ExportConfig
}

// NewExportHandler returns an ExportHandler reading pages from p, or an
// error naming a bad setting.
func NewExportHandler(p audit.ExportReader, reads ReadAuditor, cfg ExportConfig) (ExportHandler, error) {
	if cfg.PageEvents == 0 {
		cfg.PageEvents = DefaultExportPageEvents
	}
	if err := cfg.Validate(); err != nil {
		return ExportHandler{}, err
	}
	return ExportHandler{pages: p, reads: reads, cfg: cfg}, nil
}

// Export is one export in progress: Next reads its pages in order, Finish
// records how it ended. It is not safe for concurrent use.
type Export struct {
	// ID identifies the export (32 hex digits); its reads are recorded as
	// events read-<ID> and read-<ID>-end.
	ID string
	// Format is FormatNDJSON or FormatCSV.
	Format string
	// Resumed is true when the request continues an earlier export (a
	// cursor was given).
	Resumed bool
	// CSVRaw is true when a CSV export writes values as stored, without
	// the formula guard.
	CSVRaw bool

	h      ExportHandler
	req    ExportRequest
	who    Requester
	filter audit.SearchFilter
	done   bool
}

// Start checks req, records the start of the export and returns it,
// positioned at req.Cursor. The error is a *audit.ValidationError naming
// the field of a bad request; anything else (the read could not be
// recorded) is transient, and nothing may be delivered.
func (h ExportHandler) Start(ctx context.Context, req ExportRequest, who Requester) (*Export, error) {
	switch req.Format {
	case "":
		req.Format = FormatNDJSON
	case FormatNDJSON, FormatCSV:
	default:
		return nil, audit.Invalid("format", "must be %s or %s, got %q", FormatNDJSON, FormatCSV, truncateRunes(req.Format, 32))
	}
	if req.CSVRaw && req.Format != FormatCSV {
		return nil, audit.Invalid("csvRaw", "applies to format csv only, got format %s", req.Format)
	}
	if req.Limit != nil {
		return nil, audit.Invalid("limit", "is not allowed: an export delivers every matching event (narrow it with from/to)")
	}
	f, err := req.scopedFilter(who.Scope)
	if err != nil {
		return nil, err
	}
	f.Limit = h.cfg.PageEvents
	x := &Export{ID: randomHex(16), Format: req.Format, Resumed: req.Cursor != "", CSVRaw: req.CSVRaw, h: h, req: req, who: who, filter: f}
	rec := read{action: ActionExport, endpoint: "audit.export", eventID: "read-" + x.ID, request: req, who: who, of: f.Tenant,
		extra: map[string]any{"exportId": x.ID, "phase": "start"}}
	if err := h.reads.record(ctx, rec, nil); err != nil {
		return nil, err
	}
	return x, nil
}

// Next returns the next page of events, newest first; none once every
// matching event was returned. An error is transient: Next may be called
// again and continues after the last page returned.
func (x *Export) Next(ctx context.Context) ([]audit.Event, error) {
	if x.done {
		return nil, nil
	}
	events, err := x.h.pages.ExportPage(ctx, x.filter)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", x.ID, err)
	}
	if len(events) < x.filter.Limit {
		x.done = true
	}
	if n := len(events); n > 0 {
		last := events[n-1]
		tenant := last.Tenant
		x.filter.After = &audit.Position{OccurredAt: last.OccurredAt, ID: last.ID, Tenant: &tenant}
	}
	return events, nil
}

// CursorAfter returns the cursor that continues the export (or a search
// of its filter) strictly after e, confined to the same tenant.
func (x *Export) CursorAfter(e audit.Event) string {
	return cursorAfter(e, x.filter.Tenant)
}

// ExportStopped is why an export ended before its last event: the client
// stopped acknowledging, cancelled, or the service is shutting down. It is
// recorded as the read's errorMessage.
type ExportStopped struct{ Reason string }

func (e ExportStopped) Error() string { return "stopped: " + e.Reason }

// ExportOutcome is how an export ended.
type ExportOutcome struct {
	// Returned counts the events delivered; Cursor resumes after the last
	// of them ("" when none was).
	Returned int
	Cursor   string
	// Complete is true when every matching event was delivered.
	Complete bool
	// SHA256 is the hex SHA-256 of the bytes delivered, when Complete.
	SHA256 string
	// Err is why an incomplete export ended: an ExportStopped, or the
	// failure of a read.
	Err error
}

// Finish records the end of the export, with its count and filter: a
// success when it is complete, else a failure with o.Err's kind. The
// record is written even when ctx is already cancelled (a shutdown), within
// a bound of its own. It returns an error only when the end of a complete
// export could not be recorded (its start is recorded in any case).
func (x *Export) Finish(ctx context.Context, o ExportOutcome) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	extra := map[string]any{"exportId": x.ID, "phase": "end", "returned": o.Returned, "complete": o.Complete}
	if o.Cursor != "" {
		extra["cursor"] = o.Cursor
	}
	if o.SHA256 != "" {
		extra["sha256"] = o.SHA256
	}
	readErr := o.Err
	switch {
	case o.Complete:
		readErr = nil
	case readErr == nil:
		readErr = ExportStopped{Reason: "ended early"}
	}
	rec := read{action: ActionExport, endpoint: "audit.export", eventID: "read-" + x.ID + "-end", request: x.req, who: x.who, of: x.filter.Tenant, extra: extra}
	if err := x.h.reads.record(ctx, rec, readErr); o.Complete {
		return err
	}
	return nil
}
