package query

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// ReportHandler generates a compliance report, stores it, and records the
// read.
type ReportHandler struct {
	reader  audit.ReportReader
	store   audit.ReportStore
	reads   ReadAuditor
	now     func() time.Time
	maxDays int
}

// ReportConfig configures a ReportHandler.
type ReportConfig struct {
	// MaxDays bounds custom periods; zero means audit.DefaultReportMaxDays.
	MaxDays int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *ReportConfig) setDefaults() {
	if c.MaxDays == 0 {
		c.MaxDays = audit.DefaultReportMaxDays
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate returns an error for a negative MaxDays.
func (c ReportConfig) Validate() error {
	if c.MaxDays < 0 {
		return fmt.Errorf("query: ReportConfig.MaxDays must not be negative, got %d", c.MaxDays)
	}
	return nil
}

// NewReportHandler returns a ReportHandler reading figures from reader and
// storing reports in store, or cfg's validation error.
func NewReportHandler(reader audit.ReportReader, store audit.ReportStore, reads ReadAuditor, cfg ReportConfig) (ReportHandler, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return ReportHandler{}, err
	}
	return ReportHandler{reader: reader, store: store, reads: reads, now: cfg.Now, maxDays: cfg.MaxDays}, nil
}

// counts reads the figures of p over every tenant (tenant nil) or one.
func (h ReportHandler) counts(ctx context.Context, p audit.Period, tenant *string) (audit.ReportCounts, error) {
	if tenant == nil {
		return h.reader.ReportCounts(ctx, p)
	}
	tr, ok := h.reader.(audit.TenantReports)
	if !ok {
		return audit.ReportCounts{}, errors.New("the report store cannot count one tenant")
	}
	return tr.TenantReportCounts(ctx, p, *tenant)
}

// ReportInput is one report to generate.
type ReportInput struct {
	Request audit.ReportRequest
	// Trigger is audit.TriggerRequest, TriggerJob or TriggerSchedule.
	Trigger string
	// JobID identifies the job that asked (its message id), stable across
	// redeliveries: a job whose report is already stored gets that report
	// back instead of a second one. Empty for requests.
	JobID string
	// Now is the instant a period without a date is relative to (a job's
	// enqueue time, so a redelivery resolves the same period); zero means
	// the handler's clock.
	Now       time.Time
	Requester Requester
}

// Handle resolves the period, reads the figures from one snapshot, stores
// the report and records the read. The error is a *audit.ValidationError
// for a bad request, anything else is transient.
func (h ReportHandler) Handle(ctx context.Context, in ReportInput) (audit.StoredReport, error) {
	if in.Trigger == "" {
		in.Trigger = audit.TriggerRequest
	}
	now := in.Now
	if now.IsZero() {
		now = h.now()
	}
	p, err := audit.ResolvePeriod(in.Request, now, h.maxDays)
	if err != nil {
		return audit.StoredReport{}, err
	}
	tenant, err := in.Requester.Scope.Resolve("tenant", in.Request.Tenant)
	if err != nil {
		return audit.StoredReport{}, err
	}
	stored, err := h.generate(ctx, in, p, tenant)
	r := read{
		action: ActionReport, endpoint: "audit.report", request: in.Request, who: in.Requester, of: tenant,
		extra: map[string]any{"trigger": in.Trigger},
	}
	if in.JobID != "" {
		// One read per job, however often the job is redelivered.
		r.endpoint, r.eventID = "audit.report.generate", "audit.report.generate:"+in.JobID
		r.extra["jobId"] = in.JobID
	}
	if err == nil {
		r.extra["reportId"] = stored.ID
	}
	if err := h.reads.record(ctx, r, err); err != nil {
		return audit.StoredReport{}, err
	}
	return stored, nil
}

// generate makes the report of period p over the events of tenant (nil:
// every tenant) and stores it, or returns the one a job stored before.
func (h ReportHandler) generate(ctx context.Context, in ReportInput, p audit.Period, tenant *string) (audit.StoredReport, error) {
	if in.JobID != "" {
		got, err := h.store.ReportByJob(ctx, in.JobID)
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, audit.ErrNotFound) {
			return audit.StoredReport{}, fmt.Errorf("report job %s: %w", in.JobID, err)
		}
	}
	counts, err := h.counts(ctx, p, tenant)
	if err != nil {
		return audit.StoredReport{}, fmt.Errorf("%s report %s: %w", in.Request.ReportType, p, err)
	}
	rep := audit.BuildReport(in.Request.ReportType, p, counts, h.now())
	stored, err := h.store.SaveReport(ctx, audit.StoredReport{Trigger: in.Trigger, Request: in.Request, Tenant: tenant, Report: rep}, in.JobID)
	if err != nil {
		return audit.StoredReport{}, fmt.Errorf("%s report %s: %w", in.Request.ReportType, p, err)
	}
	return stored, nil
}

// GetReportRequest is the body of audit.report.get.
type GetReportRequest struct {
	ID int64 `json:"id"`
}

// GetReportHandler returns a stored report.
type GetReportHandler struct {
	store audit.ReportStore
	reads ReadAuditor
}

// NewGetReportHandler returns a GetReportHandler over store.
func NewGetReportHandler(store audit.ReportStore, reads ReadAuditor) GetReportHandler {
	return GetReportHandler{store: store, reads: reads}
}

// Handle returns the report with req.ID: a *audit.ValidationError for an
// id below 1, an error wrapping audit.ErrNotFound when there is none.
func (h GetReportHandler) Handle(ctx context.Context, req GetReportRequest, who Requester) (audit.StoredReport, error) {
	if req.ID < 1 {
		return audit.StoredReport{}, audit.Invalid("id", "is required: a report id (a positive integer)")
	}
	rep, err := h.store.GetReport(ctx, req.ID)
	if err == nil && !who.Scope.AllowsReport(rep.Tenant) {
		rep, err = audit.StoredReport{}, audit.ErrNotFound // another tenant's report is as absent as none
	}
	rec := read{action: ActionReport, endpoint: "audit.report.get", request: req, who: who}
	if err != nil {
		err = fmt.Errorf("report %d: %w", req.ID, err)
	} else {
		rec.of = rep.Tenant
	}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return audit.StoredReport{}, err
	}
	return rep, nil
}

// ListReportsRequest is the body of audit.report.list.
type ListReportsRequest struct {
	ReportType string `json:"reportType,omitempty"` // only reports of this type
	Limit      *int   `json:"limit,omitempty"`      // default audit.DefaultListLimit
	Cursor     string `json:"cursor,omitempty"`     // nextCursor of the previous page
	// Tenant lists the reports of one tenant; nil lists all, or, for a
	// reader bound to a tenant, its own.
	Tenant *string `json:"tenant,omitempty"`
}

// ReportList is one page of stored reports, newest first. NextCursor is
// empty on the last page.
type ReportList struct {
	Reports    []audit.ReportListItem
	NextCursor string
}

// ListReportsHandler pages through stored reports.
type ListReportsHandler struct {
	store audit.ReportStore
	reads ReadAuditor
}

// NewListReportsHandler returns a ListReportsHandler over store.
func NewListReportsHandler(store audit.ReportStore, reads ReadAuditor) ListReportsHandler {
	return ListReportsHandler{store: store, reads: reads}
}

// Handle returns one page; the error is a *audit.ValidationError for a bad
// reportType, limit or cursor.
func (h ListReportsHandler) Handle(ctx context.Context, req ListReportsRequest, who Requester) (ReportList, error) {
	limit := audit.DefaultListLimit
	if req.Limit != nil {
		limit = *req.Limit
	}
	if limit < 1 || limit > audit.MaxListLimit {
		return ReportList{}, audit.Invalid("limit", "must be between 1 and %d, got %d", audit.MaxListLimit, limit)
	}
	switch req.ReportType {
	case "", audit.ReportDaily, audit.ReportWeekly, audit.ReportMonthly, audit.ReportCustom:
	default:
		return ReportList{}, audit.Invalid("reportType", "must be one of daily, weekly, monthly, custom, got %q", truncateRunes(req.ReportType, 64))
	}
	var before int64
	if req.Cursor != "" {
		var c listCursor
		if err := decodeCursor(req.Cursor, &c); err != nil || c.ID < 1 {
			return ReportList{}, audit.Invalid("cursor", "is not a cursor returned by audit.report.list")
		}
		before = c.ID
	}
	tenant, err := who.Scope.Resolve("tenant", req.Tenant)
	if err != nil {
		return ReportList{}, err
	}
	var items []audit.ReportListItem
	if tenant == nil {
		items, err = h.store.ListReports(ctx, req.ReportType, before, limit+1)
	} else if tr, ok := h.store.(audit.TenantReports); ok {
		items, err = tr.ListTenantReports(ctx, tenant, req.ReportType, before, limit+1)
	} else {
		err = errors.New("the report store cannot list one tenant's reports")
	}
	if err != nil {
		err = fmt.Errorf("list reports: %w", err)
	}
	out := ReportList{Reports: items}
	if len(items) > limit {
		out.Reports = items[:limit]
		out.NextCursor = encodeCursor(listCursor{ID: items[limit-1].ID})
	}
	rec := read{action: ActionReport, endpoint: "audit.report.list", request: req, who: who, of: tenant,
		extra: map[string]any{"returned": len(out.Reports)}}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return ReportList{}, err
	}
	if out.Reports == nil {
		out.Reports = []audit.ReportListItem{}
	}
	return out, nil
}

type listCursor struct {
	ID int64 `json:"id"`
}
