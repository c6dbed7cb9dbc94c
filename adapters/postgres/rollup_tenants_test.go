package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// rollupTenants are the tenants of the tenant rollup tests: the default
// one and two named ones sharing user ids, actions and resource types.
var rollupTenants = []string{audit.DefaultTenant, "acme", "globex"}

// tenantEvents returns n events of July 2026, every 47 minutes from July
// 1st (about 33 days), spread over rollupTenants with users, actions and
// resource types shared between tenants.
func tenantEvents(prefix string, n int) []audit.Event {
	start := time.Date(2026, 7, 1, 0, 7, 0, 0, time.UTC)
	evs := make([]audit.Event, n)
	for i := range evs {
		e := event(fmt.Sprintf("%s-%d", prefix, i))
		e.OccurredAt = audit.Normalize(start.Add(time.Duration(i) * 47 * time.Minute))
		e.Tenant = rollupTenants[i%len(rollupTenants)]
		e.UserID = []string{"u1", "u2", "", "u3", "u4"}[i%5]
		e.Action = []string{"user.login", "doc.read", "doc.delete", "member.ban"}[i%4]
		e.ResourceType = []string{"user", "doc", "guild"}[i%7%3]
		e.Success = i%6 != 0
		evs[i] = e
	}
	return evs
}

// checkTenantsExact asserts that every tenant's report over each period
// equals a count of that tenant's rows, that the report over every tenant
// equals a count of all rows, and that its action figures are the sum of
// the tenants'. It returns the totals by tenant of the last period.
func checkTenantsExact(t *testing.T, db *bun.DB, repo *postgres.Repository, name string, periods ...audit.Period) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	totals := map[string]int64{}
	for _, p := range periods {
		all := checkExact(t, db, repo, name, p)
		sum := map[string][2]int64{}
		for _, tenant := range rollupTenants {
			got, err := repo.TenantReportCounts(ctx, p, tenant)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := canonicalCounts(got), canonicalCounts(rawTenantCounts(t, db, p, &tenant)); g != w {
				t.Fatalf("%s %s: report of tenant %q differs from its rows:\n got  %s\n want %s", name, p, tenant, g, w)
			}
			for _, a := range got.Actions {
				s := sum[a.Action]
				sum[a.Action] = [2]int64{s[0] + a.Count, s[1] + a.Failed}
			}
			totals[tenant] = countTotal(got)
		}
		for _, a := range all.Actions {
			if s := sum[a.Action]; s != [2]int64{a.Count, a.Failed} {
				t.Fatalf("%s %s: action %q over every tenant %d (%d failed), the tenants' add up to %d (%d failed)",
					name, p, a.Action, a.Count, a.Failed, s[0], s[1])
			}
			delete(sum, a.Action)
		}
		if len(sum) > 0 {
			t.Fatalf("%s %s: tenants count actions the report over every tenant lacks: %v", name, p, sum)
		}
	}
	return totals
}

// A tenant's report is served from its own rollup rows (hours, days and
// the month) and equals a count of its rows, in zones whose days are
// whole UTC hours and not; the report over every tenant equals the sum.
// Late events and a cleanup make hours stale, which reports read raw,
// exactly, until they are rolled again.
func TestTenantReportsFromRollupsEqualTheirRows(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	evs := tenantEvents("t", 1000)
	if _, err := repo.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	month := mustPeriod(t, audit.ReportRequest{ReportType: "monthly", Date: "2026-07-15"})
	periods := []audit.Period{
		month,
		mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-07-10", TimeZone: "Europe/Berlin"}),
		mustPeriod(t, audit.ReportRequest{ReportType: "weekly", Date: "2026-07-20", TimeZone: "Asia/Kolkata"}),
	}
	checkTenantsExact(t, db, repo, "raw", periods...)
	if n := rollAll(t, db); n.Hours < 700 || n.Days < 30 || n.Months != 2 {
		t.Fatalf("rolled %+v, want every hour, day and month", n)
	}
	var tenants int
	if err := db.DB.QueryRowContext(ctx, `SELECT count(DISTINCT tenant) FROM audit_span_users`).Scan(&tenants); err != nil || tenants != 3 {
		t.Fatalf("span rows of %d tenants (%v), want 3", tenants, err)
	}
	totals := checkTenantsExact(t, db, repo, "rolled", periods...)
	monthTotals := checkTenantsExact(t, db, repo, "rolled", month)
	if monthTotals["acme"] == 0 || monthTotals["globex"] == 0 || monthTotals[""] == 0 || len(totals) != 3 {
		t.Fatalf("month totals %v: every tenant should have events", monthTotals)
	}

	// The rollups really are read: a figure of acme's month changed behind
	// the roller's back shows in acme's report only.
	const acmeMonth = `WHERE tenant = 'acme' AND action = 'doc.read'
		AND span_id = (SELECT id FROM audit_spans WHERE starts_at = '2026-07-01T00:00:00Z' AND ends_at = '2026-08-01T00:00:00Z')`
	mustExec(t, db, `UPDATE audit_span_actions SET n = n + 100 `+acmeMonth)
	for _, tenant := range rollupTenants {
		got, err := repo.TenantReportCounts(ctx, month, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if want := monthTotals[tenant] + map[string]int64{"acme": 100}[tenant]; countTotal(got) != want {
			t.Fatalf("tenant %q after changing acme's month rollup: total %d, want %d", tenant, countTotal(got), want)
		}
	}
	mustExec(t, db, `UPDATE audit_span_actions SET n = n - 100 `+acmeMonth)

	// Late events of one tenant in rolled hours: those hours are stale for
	// every tenant and read raw.
	late := tenantEvents("late", 40)
	for i := range late {
		late[i].Tenant = "acme"
		late[i].OccurredAt = late[i].OccurredAt.Add(3 * 24 * time.Hour)
	}
	if _, err := repo.Write(ctx, late); err != nil {
		t.Fatal(err)
	}
	after := checkTenantsExact(t, db, repo, "late events", month)
	if after["acme"] != monthTotals["acme"]+40 || after["globex"] != monthTotals["globex"] {
		t.Fatalf("after 40 late events of acme: %v, before %v", after, monthTotals)
	}
	rollAll(t, db)
	checkTenantsExact(t, db, repo, "late events, re-rolled", periods...)

	// A cleanup deletes rows of every tenant in rolled hours.
	cutoff := audit.Normalize(time.Date(2026, 7, 12, 5, 30, 0, 0, time.UTC))
	n, err := mustRetention(t, db, postgres.RetentionConfig{Chunk: 50}).DeleteExpired(ctx, audit.Cleanup{Cutoff: cutoff, ExcludeActions: []string{"member.ban"}})
	if err != nil || n == 0 {
		t.Fatalf("cleanup deleted %d: %v", n, err)
	}
	checkTenantsExact(t, db, repo, "after cleanup", periods...)
	rollAll(t, db)
	final := checkTenantsExact(t, db, repo, "after cleanup, re-rolled", month)
	var sum int64
	for _, n := range final {
		sum += n
	}
	if want := monthTotals[""] + monthTotals["acme"] + monthTotals["globex"] + 40 - n; sum != want {
		t.Fatalf("after the cleanup the tenants hold %d events, want %d", sum, want)
	}
}

// Rollup rows written before the rollups were per tenant counted every
// tenant together; the migration makes them the default tenant's and
// marks the hours holding named tenants' rows stale, so that no report
// reads them until they are recounted per tenant.
func TestTenantRollupMigrationMarksMixedHoursStale(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	evs := tenantEvents("m", 300)
	if _, err := repo.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	rollAll(t, db)
	// The state an older auditq left: each hour's figures over every
	// tenant as the default tenant's, hours and spans marked current.
	for _, table := range []string{"audit_rollup_actions", "audit_rollup_users", "audit_rollup_resources"} {
		mustExec(t, db, `DELETE FROM `+table+` WHERE tenant <> ''`)
	}
	mustExec(t, db, `INSERT INTO audit_rollup_actions (hour, action, n, failed)
		SELECT date_trunc('hour', occurred_at, 'UTC'), action, count(*), count(*) FILTER (WHERE NOT success) FROM audit_logs GROUP BY 1, 2
		ON CONFLICT (hour, tenant, action) DO UPDATE SET n = EXCLUDED.n, failed = EXCLUDED.failed`)
	mustExec(t, db, `INSERT INTO audit_rollup_users (hour, user_id, n)
		SELECT date_trunc('hour', occurred_at, 'UTC'), user_id, count(*) FROM audit_logs WHERE user_id IS NOT NULL GROUP BY 1, 2
		ON CONFLICT (hour, tenant, user_id) DO UPDATE SET n = EXCLUDED.n`)
	mustExec(t, db, `INSERT INTO audit_rollup_resources (hour, resource_type, n)
		SELECT date_trunc('hour', occurred_at, 'UTC'), resource_type, count(*) FROM audit_logs GROUP BY 1, 2
		ON CONFLICT (hour, tenant, resource_type) DO UPDATE SET n = EXCLUDED.n`)
	month := mustPeriod(t, audit.ReportRequest{ReportType: "monthly", Date: "2026-07-15"})
	if got := countTotal(rawTenantCounts(t, db, month, nil)); got != 300 {
		t.Fatalf("%d rows", got)
	}
	var before int
	if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FROM audit_hours WHERE version = rolled_version`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	up, err := os.ReadFile("../../migrations/20261204000200_tenant_rollups.tx.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	stmts := strings.Split(string(up), "--bun:split")
	mustExec(t, db, stmts[len(stmts)-1]) // the last statement: bump the mixed hours
	var fresh, mixed int
	if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE version = rolled_version),
		(SELECT count(DISTINCT date_trunc('hour', occurred_at, 'UTC')) FROM audit_logs WHERE tenant <> '') FROM audit_hours`).Scan(&fresh, &mixed); err != nil {
		t.Fatal(err)
	}
	if mixed == 0 || fresh != before-mixed {
		t.Fatalf("%d of %d hours still current, want all but the %d holding named tenants", fresh, before, mixed)
	}
	checkTenantsExact(t, db, repo, "after the migration", month)
	rollAll(t, db)
	checkTenantsExact(t, db, repo, "after the migration, re-rolled", month)
}
