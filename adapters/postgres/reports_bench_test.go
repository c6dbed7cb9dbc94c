package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// reportCase is one report a benchmark times; total is the event count it
// must find (0: not checked).
type reportCase struct {
	name  string
	req   audit.ReportRequest
	total int64
}

// markRowHoursSQL marks changed every hour that holds rows of
// audit_logs: rows written around the repository must, as every write
// does, or a report could trust a stale hour rollup.
const markRowHoursSQL = `INSERT INTO audit_hours (hour)
	SELECT DISTINCT date_trunc('hour', occurred_at, 'UTC') FROM audit_logs ORDER BY 1
	ON CONFLICT (hour) DO UPDATE SET version = audit_hours.version + 1`

// prefillReports inserts n events, one every step from start, by INSERT
// ... SELECT generate_series in one statement (users: users of them plus
// 10% system events; 50 actions, 20 resource types, 5% failures), marks
// their hours changed as a write would, and ANALYZEs.
func prefillReports(b *testing.B, db *bun.DB, n, users int, start time.Time, step time.Duration) {
	ctx := context.Background()
	t0 := time.Now()
	_, err := db.ExecContext(ctx, `
		INSERT INTO audit_logs (id, user_id, action, resource_type, resource_id, success, occurred_at, received_at)
		SELECT 'e' || i,
			CASE WHEN i % 10 = 0 THEN NULL ELSE 'user-' || (i * 7919 % ?) END,
			'action.' || (i * 31 % 50),
			'type' || (i % 20),
			'r' || (i % 100000),
			i % 20 <> 0,
			t, t
		FROM generate_series(1::bigint, ?) AS i,
			LATERAL (SELECT ?::timestamptz + (i - 1) * (? * interval '1 microsecond') AS t) AS ts`,
		users, n, start, step.Microseconds())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, markRowHoursSQL); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "ANALYZE audit_logs"); err != nil {
		b.Fatal(err)
	}
	b.Logf("created %d rows in %s", n, time.Since(t0).Round(time.Millisecond))
}

// rollEverything runs the roller until no hour is stale and logs how long
// it took and what the rollups weigh.
func rollEverything(b *testing.B, db *bun.DB) {
	ctx := context.Background()
	t0 := time.Now()
	n, err := mustRoller(b, db, postgres.RollerConfig{}).RollAll(ctx)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(t0)
	if _, err := db.ExecContext(ctx, "ANALYZE audit_hours, audit_rollup_actions, audit_rollup_users, audit_rollup_resources, audit_spans, audit_span_actions, audit_span_users, audit_span_resources"); err != nil {
		b.Fatal(err)
	}
	var sizes string
	for _, t := range []string{"audit_logs", "audit_rollup_actions", "audit_rollup_users", "audit_rollup_resources",
		"audit_span_actions", "audit_span_users", "audit_span_resources"} {
		var rows int64
		var size string
		if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM `+t+`), pg_size_pretty(pg_total_relation_size(?))`, t).Scan(&rows, &size); err != nil {
			b.Fatal(err)
		}
		sizes += fmt.Sprintf("; %s %d rows %s", t, rows, size)
	}
	b.Logf("rolled %d hours, %d days, %d months in %s%s", n.Hours, n.Days, n.Months, took.Round(time.Millisecond), sizes)
}

// timeReports runs each case as a sub-benchmark named prefix/name and
// reports the p99 latency of its runs as p99-ms.
func timeReports(b *testing.B, repo *postgres.Repository, prefix string, cases []reportCase) {
	ctx := context.Background()
	for _, c := range cases {
		p, err := audit.ResolvePeriod(c.req, time.Now(), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(prefix+"/"+c.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				counts, err := repo.ReportCounts(ctx, p)
				took = append(took, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				r := audit.BuildReport(c.req.ReportType, p, counts, time.Now())
				if c.total > 0 && r.Summary.Total != c.total {
					b.Fatalf("total %d, want %d", r.Summary.Total, c.total)
				}
				if len(r.TopUsers) != audit.TopN {
					b.Fatalf("%d top users", len(r.TopUsers))
				}
			}
			b.ReportMetric(ms(pct(took, 99)), "p99-ms")
		})
	}
}

// BenchmarkReport1M times reports over a table of 1,000,000 events spread
// evenly over June 2026 (5,000 users plus 10% system events, 50 actions,
// 20 resource types, 5% failures): the monthly report covers all of them,
// a daily one about 33,000. Rows are created by INSERT ... SELECT
// generate_series in one statement, then ANALYZEd. The "raw" cases run
// before any hour is rolled up (every row is scanned), the "rolled" ones
// after the roller has rolled every hour (rollups plus raw edges).
//
//	go test -run '^$' -bench BenchmarkReport1M -benchtime 10x ./adapters/postgres/
func BenchmarkReport1M(b *testing.B) {
	db := newDB(b)
	prefillReports(b, db, 1_000_000, 5000, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), 2592*time.Millisecond)
	repo := postgres.NewRepository(db)
	cases := []reportCase{
		{"monthly-1M-rows", audit.ReportRequest{ReportType: "monthly", Date: "2026-06-15"}, 1_000_000},
		{"daily-33k-rows", audit.ReportRequest{ReportType: "daily", Date: "2026-06-15"}, 33_333},
		{"weekly-Berlin-233k-rows", audit.ReportRequest{ReportType: "weekly", Date: "2026-06-15", TimeZone: "Europe/Berlin"}, 0},
	}
	timeReports(b, repo, "raw", cases)
	rollEverything(b, db)
	timeReports(b, repo, "rolled", cases)
}

// BenchmarkReportLarge times the daily, weekly, monthly and a 90-day
// custom report (with bounds that are not whole hours) over a table of
// AUDITQ_BENCH_REPORT_ROWS events (default 10,000,000) spread evenly over
// the year 2025-11-01 to 2026-11-01 (AUDITQ_BENCH_REPORT_USERS users,
// default 5,000, plus 10% system events): raw (nothing rolled) and rolled.
// It takes minutes to fill, so it runs only when AUDITQ_BENCH_REPORT_ROWS
// is set:
//
//	AUDITQ_BENCH_REPORT_ROWS=10000000 go test -run '^$' -bench BenchmarkReportLarge -benchtime 20x -timeout 2h ./adapters/postgres/
func BenchmarkReportLarge(b *testing.B) {
	rows, _ := strconv.Atoi(os.Getenv("AUDITQ_BENCH_REPORT_ROWS"))
	if rows < 1 {
		b.Skip("set AUDITQ_BENCH_REPORT_ROWS (e.g. 10000000) to run")
	}
	users := 5000
	if u, err := strconv.Atoi(os.Getenv("AUDITQ_BENCH_REPORT_USERS")); err == nil && u > 0 {
		users = u
	}
	start := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	db := newDB(b)
	prefillReports(b, db, rows, users, start, year/time.Duration(rows))
	repo := postgres.NewRepository(db)
	m := fmt.Sprintf("%dM", rows/1_000_000)
	cases := []reportCase{
		{"daily-" + m, audit.ReportRequest{ReportType: "daily", Date: "2026-06-15"}, 0},
		{"weekly-Berlin-" + m, audit.ReportRequest{ReportType: "weekly", Date: "2026-06-15", TimeZone: "Europe/Berlin"}, 0},
		{"monthly-" + m, audit.ReportRequest{ReportType: "monthly", Date: "2026-06-15"}, 0},
		{"monthly-Kolkata-" + m, audit.ReportRequest{ReportType: "monthly", Date: "2026-06-15", TimeZone: "Asia/Kolkata"}, 0},
		{"custom-90-day-" + m, audit.ReportRequest{ReportType: "custom",
			StartDate: "2026-05-01T13:37:00.5Z", EndDate: "2026-07-30T09:15:00+05:30"}, 0},
	}
	if os.Getenv("AUDITQ_BENCH_REPORT_SKIP_RAW") == "" {
		timeReports(b, repo, "raw", cases)
	}
	rollEverything(b, db)
	timeReports(b, repo, "rolled", cases)
}

// BenchmarkCheckRollups times the check of "auditq verify --reports": every
// current hour, day and month of the rollups against the rows, over
// AUDITQ_BENCH_REPORT_ROWS events (default 1,000,000) spread evenly over a
// year (5,000 users plus 10% system events), all rolled up. It reports the
// rows checked per second.
//
//	AUDITQ_BENCH_REPORT_ROWS=10000000 go test -run '^$' -bench BenchmarkCheckRollups -benchtime 3x -timeout 1h ./adapters/postgres/
func BenchmarkCheckRollups(b *testing.B) {
	rows := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("AUDITQ_BENCH_REPORT_ROWS")); err == nil && n > 0 {
		rows = n
	}
	db := newDB(b)
	prefillReports(b, db, rows, 5000, time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC), 365*24*time.Hour/time.Duration(rows))
	rollEverything(b, db)
	store := postgres.NewEvidenceStore(db)
	ctx := context.Background()
	for b.Loop() {
		err := store.Snapshot(ctx, func(s *postgres.EvidenceStore) error {
			hours, spans, err := s.CheckRollups(ctx, func(subject, reason string) { b.Fatalf("%s: %s", subject, reason) })
			if err == nil && (hours < 8000 || spans < 300) {
				b.Fatalf("checked %d hours and %d spans of a rolled year", hours, spans)
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	perSec := float64(rows*b.N) / b.Elapsed().Seconds()
	b.ReportMetric(perSec, "rows/s")
	b.ReportMetric(10_000_000/perSec, "s/10M-rows")
}

// BenchmarkReportAfterFlood times a 90-day custom report ending now, as
// auditq bench asks for one, right after a flood of 300,000 events into
// the current hour, on an otherwise empty table: "stale", while the hour
// is stale (it is read raw, as before the roller rolls it), and "rolled",
// once the roller has rolled it (it rolls an hour of its lag once no fold
// has changed it for RollerConfig.Quiet): the hour from its rollup, less
// the rows after now. Two rounds, alternating (the hour is made stale
// again by bumping its version).
//
//	go test -run '^$' -bench BenchmarkReportAfterFlood -benchtime 10x ./adapters/postgres/
func BenchmarkReportAfterFlood(b *testing.B) {
	const n = 300_000
	db := newDB(b)
	now := time.Now().UTC()
	cur := now.Truncate(time.Hour)
	prefillReports(b, db, n, 5000, cur, max(now.Sub(cur)/n, time.Microsecond))
	repo := postgres.NewRepository(db)
	end := time.Now().UTC()
	cases := []reportCase{{"custom-90-day", audit.ReportRequest{ReportType: "custom",
		StartDate: end.AddDate(0, 0, -90).Format(time.RFC3339), EndDate: end.Format(time.RFC3339)}, 0}}
	roller := mustRoller(b, db, postgres.RollerConfig{Lag: postgres.DefaultRollupLag, Quiet: time.Millisecond})
	ctx := context.Background()
	for round := range 2 {
		if round > 0 {
			if _, err := db.ExecContext(ctx, `UPDATE audit_hours SET version = version + 1`); err != nil {
				b.Fatal(err)
			}
		}
		timeReports(b, repo, fmt.Sprintf("stale-%d", round+1), cases)
		time.Sleep(10 * time.Millisecond)
		if r, err := roller.RollAll(ctx); err != nil || r.Hours == 0 {
			b.Fatalf("rolled %d hours, %v", r.Hours, err)
		}
		timeReports(b, repo, fmt.Sprintf("rolled-%d", round+1), cases)
	}
}
