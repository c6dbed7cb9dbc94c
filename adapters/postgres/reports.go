package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

var (
	_ audit.ReportReader  = (*Repository)(nil)
	_ audit.ReportStore   = (*Repository)(nil)
	_ audit.Searcher      = (*Repository)(nil)
	_ audit.EventGetter   = (*Repository)(nil)
	_ audit.TenantReports = (*Repository)(nil)
)

// GROUPING(action, user_id, resource_type) of each grouping set: a bit is
// set for each column the set does not group by.
const (
	groupAction   = 3 // (action)
	groupUser     = 5 // (user_id)
	groupResource = 6 // (resource_type)
)

type countRow struct {
	G            int            `bun:"g"`
	Action       sql.NullString `bun:"action"`
	UserID       sql.NullString `bun:"user_id"`
	ResourceType sql.NullString `bun:"resource_type"`
	N            int64          `bun:"n"`
	Failed       int64          `bun:"failed"`
}

// ReportCounts reads the figures of a report over [p.Start, p.End) from
// one snapshot: a read-only REPEATABLE READ transaction that finds the
// fresh spans and hours of the period, then reads them from the rollups
// and the rest of the period from audit_logs, in one statement (see
// Roller). Event time decides membership.
func (r *Repository) ReportCounts(ctx context.Context, p audit.Period) (audit.ReportCounts, error) {
	counts, err := r.reportCounts(ctx, p, nil)
	if err != nil {
		return audit.ReportCounts{}, fmt.Errorf("report counts %s: %w", p, err)
	}
	return counts, nil
}

// reportCounts reads the figures of [p.Start, p.End) over every tenant
// (tenant nil) or one, as ReportCounts describes.
func (r *Repository) reportCounts(ctx context.Context, p audit.Period, tenant *string) (audit.ReportCounts, error) {
	var rows []countRow
	err := r.db.RunInTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}, func(ctx context.Context, tx bun.Tx) error {
		q, err := reportCountsQuery(ctx, tx, p.Start.UTC(), p.End.UTC(), tenant)
		if err != nil {
			return err
		}
		return tx.NewRaw(q).Scan(ctx, &rows)
	})
	if err != nil {
		return audit.ReportCounts{}, err
	}
	return countsOf(rows), nil
}

// countsOf sorts the rows of reportCountsSQL into a report's counts.
func countsOf(rows []countRow) audit.ReportCounts {
	var out audit.ReportCounts
	for _, row := range rows {
		switch row.G {
		case groupAction:
			out.Actions = append(out.Actions, audit.ActionTally{Action: row.Action.String, Count: row.N, Failed: row.Failed})
		case groupUser:
			out.TopUsers = append(out.TopUsers, audit.UserCount{UserID: row.UserID.String, Count: row.N})
		case groupResource:
			out.TopResources = append(out.TopResources, audit.ResourceCount{ResourceType: row.ResourceType.String, Count: row.N})
		}
	}
	sortCounts(out.TopUsers, func(u audit.UserCount) (int64, string) { return u.Count, u.UserID })
	sortCounts(out.TopResources, func(c audit.ResourceCount) (int64, string) { return c.Count, c.ResourceType })
	return out
}

// TenantReportCounts reads the figures of a report over [p.Start, p.End)
// counting the events of tenant only, from one snapshot, as ReportCounts
// does: the fresh spans and hours from the tenant's rollup rows, the rest
// of the period from the tenant's rows (down audit_logs_tenant_idx for a
// named tenant, down the time index with a filter for the default one).
func (r *Repository) TenantReportCounts(ctx context.Context, p audit.Period, tenant string) (audit.ReportCounts, error) {
	counts, err := r.reportCounts(ctx, p, &tenant)
	if err != nil {
		return audit.ReportCounts{}, fmt.Errorf("report counts %s of tenant %q: %w", p, tenant, err)
	}
	return counts, nil
}

// quoteText renders s as an SQL string literal.
func quoteText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// reportRow is the audit_reports row; it never leaves this package.
type reportRow struct {
	bun.BaseModel `bun:"table:audit_reports"`

	ID          int64           `bun:"id,pk,autoincrement"`
	ReportType  string          `bun:"report_type,notnull"`
	Request     json.RawMessage `bun:"request,type:jsonb,notnull"`
	Result      json.RawMessage `bun:"result,type:jsonb,notnull"`
	PeriodStart time.Time       `bun:"period_start,notnull"`
	PeriodEnd   time.Time       `bun:"period_end,notnull"`
	TimeZone    string          `bun:"time_zone,notnull"`
	GeneratedAt time.Time       `bun:"generated_at,notnull"`
	Trigger     string          `bun:"trigger,notnull"`
	JobID       string          `bun:"job_id,nullzero"`
	Tenant      *string         `bun:"tenant"`
}

func (row reportRow) toStored() (audit.StoredReport, error) {
	out := audit.StoredReport{ID: row.ID, Trigger: row.Trigger, Tenant: row.Tenant}
	if err := json.Unmarshal(row.Request, &out.Request); err != nil {
		return audit.StoredReport{}, fmt.Errorf("report %d: decode request: %w", row.ID, err)
	}
	if err := json.Unmarshal(row.Result, &out.Report); err != nil {
		return audit.StoredReport{}, fmt.Errorf("report %d: decode result: %w", row.ID, err)
	}
	return out, nil
}

// SaveReport stores rep and returns it with its id. With a jobID whose
// report is already stored it returns that one instead (ON CONFLICT on
// job_id), so a redelivered job never stores a second report.
func (r *Repository) SaveReport(ctx context.Context, rep audit.StoredReport, jobID string) (audit.StoredReport, error) {
	request, err := json.Marshal(rep.Request)
	if err != nil {
		return audit.StoredReport{}, fmt.Errorf("save report: encode request: %w", err)
	}
	result, err := json.Marshal(rep.Report)
	if err != nil {
		return audit.StoredReport{}, fmt.Errorf("save report: encode result: %w", err)
	}
	row := reportRow{
		ReportType: rep.ReportType, Request: request, Result: result,
		PeriodStart: rep.Period.Start, PeriodEnd: rep.Period.End, TimeZone: rep.Period.TimeZone,
		GeneratedAt: rep.GeneratedAt, Trigger: rep.Trigger, JobID: jobID, Tenant: rep.Tenant,
	}
	res, err := r.db.NewInsert().Model(&row).ExcludeColumn("id").
		On("CONFLICT (job_id) DO NOTHING").Returning("id").Exec(ctx)
	if err != nil {
		return audit.StoredReport{}, fmt.Errorf("save %s report %s: %w", rep.ReportType, rep.Period, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 && jobID != "" {
		return r.ReportByJob(ctx, jobID)
	}
	rep.ID = row.ID
	return r.revealReport(ctx, rep)
}

// revealReport shows the top users of rep as readers see them: stored
// reports keep what the rows hold (pseudonyms, when personal data is
// pseudonymised or encrypted), and each read resolves a pseudonym with a
// key to its user id, or to audit.ErasedUserID once erased (see
// Personal.RevealUsers).
func (r *Repository) revealReport(ctx context.Context, rep audit.StoredReport) (audit.StoredReport, error) {
	if r.personal == nil || len(rep.TopUsers) == 0 {
		return rep, nil
	}
	names := make([]string, len(rep.TopUsers))
	for i, u := range rep.TopUsers {
		names[i] = u.UserID
	}
	users, err := r.personal.RevealUsers(ctx, names)
	if err != nil {
		return audit.StoredReport{}, fmt.Errorf("report %d: %w", rep.ID, err)
	}
	top := make([]audit.UserCount, len(rep.TopUsers))
	for i, u := range rep.TopUsers {
		top[i] = u
		if user, ok := users[u.UserID]; ok {
			top[i] = audit.UserCount{UserID: user, UserPseudonym: u.UserID, Erased: user == audit.ErasedUserID, Count: u.Count}
		}
	}
	rep.TopUsers = top
	return rep, nil
}

// ReportByJob returns the report stored for jobID, or audit.ErrNotFound.
func (r *Repository) ReportByJob(ctx context.Context, jobID string) (audit.StoredReport, error) {
	return r.oneReport(ctx, "job_id = ?", jobID)
}

// GetReport returns the report with id, or audit.ErrNotFound.
func (r *Repository) GetReport(ctx context.Context, id int64) (audit.StoredReport, error) {
	return r.oneReport(ctx, "id = ?", id)
}

func (r *Repository) oneReport(ctx context.Context, where string, arg any) (audit.StoredReport, error) {
	var row reportRow
	err := r.db.NewSelect().Model(&row).Column("id", "trigger", "request", "result", "tenant").Where(where, arg).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return audit.StoredReport{}, audit.ErrNotFound
	}
	if err != nil {
		return audit.StoredReport{}, fmt.Errorf("get report (%s %v): %w", where, arg, err)
	}
	rep, err := row.toStored()
	if err != nil {
		return audit.StoredReport{}, err
	}
	return r.revealReport(ctx, rep)
}

// ListReports returns up to limit stored reports, newest (highest id)
// first, with ids below beforeID when it is positive and of reportType
// when it is not empty.
func (r *Repository) ListReports(ctx context.Context, reportType string, beforeID int64, limit int) ([]audit.ReportListItem, error) {
	return r.ListTenantReports(ctx, nil, reportType, beforeID, limit)
}

// ListTenantReports is ListReports confined to the reports of tenant (nil:
// every report), down the (tenant, id) index.
func (r *Repository) ListTenantReports(ctx context.Context, tenant *string, reportType string, beforeID int64, limit int) ([]audit.ReportListItem, error) {
	var rows []struct {
		ID          int64           `bun:"id"`
		ReportType  string          `bun:"report_type"`
		Period      json.RawMessage `bun:"period"`
		GeneratedAt time.Time       `bun:"generated_at"`
		Trigger     string          `bun:"trigger"`
	}
	q := r.db.NewSelect().Table("audit_reports").
		Column("id", "report_type", "generated_at", "trigger").ColumnExpr("result->'period' AS period").
		OrderExpr("id DESC").Limit(int64(limit))
	if beforeID > 0 {
		q = q.Where("id < ?", beforeID)
	}
	if reportType != "" {
		q = q.Where("report_type = ?", reportType)
	}
	if tenant != nil {
		q = q.Where("tenant = ?", *tenant)
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	out := make([]audit.ReportListItem, len(rows))
	for i, row := range rows {
		out[i] = audit.ReportListItem{ID: row.ID, ReportType: row.ReportType, GeneratedAt: row.GeneratedAt.UTC(), Trigger: row.Trigger}
		if err := json.Unmarshal(row.Period, &out[i].Period); err != nil {
			return nil, fmt.Errorf("list reports: report %d: decode period: %w", row.ID, err)
		}
	}
	return out, nil
}

// sortCounts orders by count descending, then name in byte order: the
// order the SQL ranked them in, restated so it never depends on the order
// rows come back in.
func sortCounts[T any](s []T, key func(T) (int64, string)) {
	sort.Slice(s, func(i, j int) bool {
		ci, ni := key(s[i])
		cj, nj := key(s[j])
		if ci != cj {
			return ci > cj
		}
		return ni < nj
	})
}
