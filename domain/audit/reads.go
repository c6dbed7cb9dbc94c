package audit

import "context"

// ReportReader reads the figures of a report over period p from one
// consistent snapshot of the stored events.
type ReportReader interface {
	ReportCounts(ctx context.Context, p Period) (ReportCounts, error)
}

// ReportStore keeps generated reports.
type ReportStore interface {
	// SaveReport stores r and returns it with its new id. With a non-empty
	// jobID it is idempotent: when a report of that job is already stored,
	// that one is returned unchanged and r is discarded.
	SaveReport(ctx context.Context, r StoredReport, jobID string) (StoredReport, error)
	// ReportByJob returns the report stored for jobID, or ErrNotFound.
	ReportByJob(ctx context.Context, jobID string) (StoredReport, error)
	// GetReport returns the report with id, or ErrNotFound.
	GetReport(ctx context.Context, id int64) (StoredReport, error)
	// ListReports returns up to limit reports, newest first, with ids below
	// beforeID when it is positive, and of reportType when it is not empty.
	ListReports(ctx context.Context, reportType string, beforeID int64, limit int) ([]ReportListItem, error)
}

// Searcher finds events.
type Searcher interface {
	// Search returns up to f.Limit events matching f, newest first by
	// (OccurredAt, ID, Tenant) descending, strictly after f.After when it is
	// set.
	Search(ctx context.Context, f SearchFilter) ([]Event, error)
}

// EventGetter reads one event.
type EventGetter interface {
	// Get returns the event of tenant with id (an id is unique within its
	// tenant, docs/tenants.md), or ErrNotFound.
	Get(ctx context.Context, tenant, id string) (Event, error)
}

// ExportReader reads the pages of an export.
type ExportReader interface {
	// ExportPage returns the events Search returns for f, in the same
	// order, at a cost that stays the same from the first page to the
	// last.
	ExportPage(ctx context.Context, f SearchFilter) ([]Event, error)
}

// TenantReports reads and lists the reports of one tenant (docs/tenants.md).
type TenantReports interface {
	// TenantReportCounts is ReportCounts over the events of tenant only.
	TenantReportCounts(ctx context.Context, p Period, tenant string) (ReportCounts, error)
	// ListTenantReports is ListReports confined to the reports of tenant
	// (nil: every report).
	ListTenantReports(ctx context.Context, tenant *string, reportType string, beforeID int64, limit int) ([]ReportListItem, error)
}
