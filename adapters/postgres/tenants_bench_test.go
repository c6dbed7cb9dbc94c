package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// BenchmarkTenantReport1M times a tenant's report (served by the tenant's
// rollup rows) against the report over every tenant (the sum of every
// tenant's rollup rows), over 1,000,000 events of June 2026 (the data of
// BenchmarkReport1M), every other one of tenant acme, all hours rolled. It
// checks the monthly totals against the rows it generated.
//
//	go test -run '^$' -bench BenchmarkTenantReport1M -benchtime 10x ./adapters/postgres/
func BenchmarkTenantReport1M(b *testing.B) {
	db := newDB(b)
	prefillReports(b, db, 1_000_000, 5000, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), 2592*time.Millisecond)
	ctx := context.Background()
	t0 := time.Now()
	if _, err := db.ExecContext(ctx, `UPDATE audit_logs SET tenant = 'acme' WHERE substr(id, 2)::bigint % 2 = 0`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE audit_logs"); err != nil {
		b.Fatal(err)
	}
	b.Logf("500,000 rows moved to tenant acme in %s", time.Since(t0).Round(time.Millisecond))
	rollEverything(b, db)
	repo := postgres.NewRepository(db)
	for _, c := range []struct {
		name   string
		req    audit.ReportRequest
		tenant string // "*": every tenant
		total  int64
	}{
		{"monthly-all-1M", audit.ReportRequest{ReportType: "monthly", Date: "2026-06-15"}, "*", 1_000_000},
		{"monthly-acme-500k", audit.ReportRequest{ReportType: "monthly", Date: "2026-06-15"}, "acme", 500_000},
		{"daily-all-33k", audit.ReportRequest{ReportType: "daily", Date: "2026-06-15"}, "*", 33_333},
		{"daily-acme-17k", audit.ReportRequest{ReportType: "daily", Date: "2026-06-15"}, "acme", 0},
	} {
		p, err := audit.ResolvePeriod(c.req, time.Now(), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				var counts audit.ReportCounts
				if c.tenant == "*" {
					counts, err = repo.ReportCounts(ctx, p)
				} else {
					counts, err = repo.TenantReportCounts(ctx, p, c.tenant)
				}
				took = append(took, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if r := audit.BuildReport(c.req.ReportType, p, counts, time.Now()); c.total > 0 && r.Summary.Total != c.total {
					b.Fatalf("total %d, want %d", r.Summary.Total, c.total)
				}
			}
			b.ReportMetric(ms(pct(took, 99)), "p99-ms")
		})
	}
}
