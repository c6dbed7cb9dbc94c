package postgres_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/migrations"
)

// rawCountsSQL is the report statement without rollups: one scan of
// audit_logs over the period ($4: of one tenant, NULL every tenant),
// grouped three ways. The rollup-backed ReportCounts and
// TenantReportCounts must always agree with it.
const rawCountsSQL = `
SELECT g, action, user_id, resource_type, n, failed
FROM (
	SELECT g, action, user_id, resource_type, n, failed,
		row_number() OVER (PARTITION BY g ORDER BY n DESC, coalesce(action, user_id, resource_type) COLLATE "C") AS rn
	FROM (
		SELECT GROUPING(action, user_id, resource_type) AS g, action, user_id, resource_type,
			count(*) AS n, count(*) FILTER (WHERE NOT success) AS failed
		FROM audit_logs
		WHERE occurred_at >= $1 AND occurred_at < $2 AND ($4::text IS NULL OR tenant = $4)
		GROUP BY GROUPING SETS ((action), (user_id), (resource_type))
	) sets
	WHERE NOT (g = 5 AND user_id IS NULL)
) ranked
WHERE g = 3 OR rn <= $3`

// rawCounts aggregates audit_logs over p directly, without any rollup.
func rawCounts(t testing.TB, db *bun.DB, p audit.Period) audit.ReportCounts {
	t.Helper()
	return rawTenantCounts(t, db, p, nil)
}

// rawTenantCounts aggregates the rows of tenant (nil: every tenant) over
// p directly, without any rollup.
func rawTenantCounts(t testing.TB, db *bun.DB, p audit.Period, tenant *string) audit.ReportCounts {
	t.Helper()
	rows, err := db.DB.QueryContext(context.Background(), rawCountsSQL, p.Start.UTC(), p.End.UTC(), audit.TopN, tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out audit.ReportCounts
	for rows.Next() {
		var g int
		var action, user, resource sql.NullString
		var n, failed int64
		if err := rows.Scan(&g, &action, &user, &resource, &n, &failed); err != nil {
			t.Fatal(err)
		}
		switch g {
		case 3:
			out.Actions = append(out.Actions, audit.ActionTally{Action: action.String, Count: n, Failed: failed})
		case 5:
			out.TopUsers = append(out.TopUsers, audit.UserCount{UserID: user.String, Count: n})
		case 6:
			out.TopResources = append(out.TopResources, audit.ResourceCount{ResourceType: resource.String, Count: n})
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// canonical renders counts with the actions in name order and the tops
// in rank order (count descending, then name), for comparison.
func canonicalCounts(c audit.ReportCounts) string {
	a := append([]audit.ActionTally(nil), c.Actions...)
	sort.Slice(a, func(i, j int) bool { return a[i].Action < a[j].Action })
	u := append([]audit.UserCount(nil), c.TopUsers...)
	sort.Slice(u, func(i, j int) bool {
		return u[i].Count > u[j].Count || u[i].Count == u[j].Count && u[i].UserID < u[j].UserID
	})
	r := append([]audit.ResourceCount(nil), c.TopResources...)
	sort.Slice(r, func(i, j int) bool {
		return r[i].Count > r[j].Count || r[i].Count == r[j].Count && r[i].ResourceType < r[j].ResourceType
	})
	b, _ := json.Marshal(struct {
		A []audit.ActionTally
		U []audit.UserCount
		R []audit.ResourceCount
	}{a, u, r})
	return string(b)
}

// checkExact asserts that ReportCounts over p equals the raw aggregation.
func checkExact(t testing.TB, db *bun.DB, repo *postgres.Repository, name string, p audit.Period) audit.ReportCounts {
	t.Helper()
	got, err := repo.ReportCounts(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := canonicalCounts(got), canonicalCounts(rawCounts(t, db, p)); g != w {
		t.Fatalf("%s %s: rollup-backed report differs from the rows:\n got  %s\n want %s", name, p, g, w)
	}
	return got
}

func countTotal(c audit.ReportCounts) (n int64) {
	for _, a := range c.Actions {
		n += a.Count
	}
	return n
}

func mustPeriod(t testing.TB, req audit.ReportRequest) audit.Period {
	t.Helper()
	p, err := audit.ResolvePeriod(req, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rollAll brings every stale hour before the current one, and every span
// of them, up to date.
func rollAll(t testing.TB, db *bun.DB) postgres.Rolled {
	t.Helper()
	n, err := mustRoller(t, db, postgres.RollerConfig{Batch: 7}).RollAll(context.Background()) // small batches: RollAll loops
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hourState returns (fresh, stale) hour counts in [from, to), over the
// hours of audit_hours and those with change rows only: fresh is rolled
// at its version with no change row.
func hourState(t testing.TB, db *bun.DB, from, to time.Time) (fresh, stale int) {
	t.Helper()
	err := db.DB.QueryRowContext(context.Background(), `SELECT count(*) FILTER (WHERE f), count(*) FILTER (WHERE NOT f)
		FROM (SELECT coalesce(h.version = h.rolled_version, false) AND NOT EXISTS (SELECT 1 FROM audit_hour_changes c WHERE c.hour = a.hour) AS f
			FROM (SELECT hour FROM audit_hours UNION SELECT hour FROM audit_hour_changes) a
			LEFT JOIN audit_hours h ON h.hour = a.hour WHERE a.hour >= $1 AND a.hour < $2) s`, from, to).Scan(&fresh, &stale)
	if err != nil {
		t.Fatal(err)
	}
	return fresh, stale
}

func mustExec(t testing.TB, db *bun.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.DB.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// Rolled hours and raw edges add up to exactly the rows, for days whose
// bounds are whole UTC hours (Berlin, with its 23- and 25-hour days) and
// days whose bounds are not (India, +05:30). The rollups really are read:
// a rollup row changed behind the roller's back shows in the report until
// its hour is marked changed again.
func TestRollupReportsAreExactAcrossZones(t *testing.T) {
	db := newDB(t)
	repo := postgres.NewRepository(db)
	insert(t, repo, dstEvents...)
	// India: the day 2026-05-10 is [2026-05-09T18:30Z, 2026-05-10T18:30Z).
	insert(t, repo,
		ev{"k1", "2026-05-09T18:29:59.999999Z", "u1", "a", "doc", true},  // out
		ev{"k2", "2026-05-09T18:30:00Z", "u1", "a", "doc", false},        // first instant, in the raw edge
		ev{"k3", "2026-05-09T18:59:59.999999Z", "u2", "b", "doc", true},  // raw edge
		ev{"k4", "2026-05-09T19:00:00Z", "u2", "b", "img", true},         // first whole hour
		ev{"k5", "2026-05-10T06:00:00Z", "", "c", "img", false},          // system
		ev{"k6", "2026-05-10T17:59:59.999999Z", "u3", "a", "img", true},  // last whole hour
		ev{"k7", "2026-05-10T18:00:00Z", "u3", "a", "doc", true},         // raw edge
		ev{"k8", "2026-05-10T18:29:59.999999Z", "u1", "b", "doc", false}, // last instant, in
		ev{"k9", "2026-05-10T18:30:00Z", "u1", "b", "doc", true},         // out
	)
	india := mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-05-10", TimeZone: "Asia/Kolkata"})
	periods := map[string]audit.Period{
		"Berlin spring day": mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-03-29", TimeZone: "Europe/Berlin"}),
		"Berlin fall day":   mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-10-25", TimeZone: "Europe/Berlin"}),
		"Berlin week":       mustPeriod(t, audit.ReportRequest{ReportType: "weekly", Date: "2026-03-29", TimeZone: "Europe/Berlin"}),
		"Tokyo day":         mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-10-25", TimeZone: "Asia/Tokyo"}),
		"India day":         india,
		"India month":       mustPeriod(t, audit.ReportRequest{ReportType: "monthly", Date: "2026-05-10", TimeZone: "Asia/Kolkata"}),
		"custom, odd bounds": mustPeriod(t, audit.ReportRequest{ReportType: "custom",
			StartDate: "2026-05-09T18:59:59.999999Z", EndDate: "2026-05-10T18:00:00.000001Z"}),
	}
	before := map[string]string{}
	for name, p := range periods {
		before[name] = canonicalCounts(checkExact(t, db, repo, name+" (raw)", p))
	}
	if n := rollAll(t, db); n.Hours < 10 || n.Days < 4 || n.Months < 3 {
		t.Fatalf("rolled %+v", n)
	}
	for name, p := range periods {
		if got := canonicalCounts(checkExact(t, db, repo, name+" (rolled)", p)); got != before[name] {
			t.Fatalf("%s changed by rolling:\n before %s\n after  %s", name, before[name], got)
		}
	}
	if got := countTotal(checkExact(t, db, repo, "India day", india)); got != 7 {
		t.Fatalf("India day: %d events, want 7 (k2..k8)", got)
	}
	if fresh, stale := hourState(t, db, india.Start, india.End); fresh != 4 || stale != 0 {
		t.Fatalf("India day: %d fresh and %d stale hours, want the 4 hours with events fresh", fresh, stale)
	}

	// Prove the rollups are read: falsify one, see it, mark its hour
	// changed (as any write does), see the truth again.
	k4 := time.Date(2026, 5, 9, 19, 0, 0, 0, time.UTC)
	mustExec(t, db, `UPDATE audit_rollup_actions SET n = n + 100 WHERE hour = $1`, k4)
	got, err := repo.ReportCounts(context.Background(), india)
	if err != nil {
		t.Fatal(err)
	}
	if countTotal(got) != 107 {
		t.Fatalf("a falsified rollup row was not read: total %d", countTotal(got))
	}
	mustExec(t, db, `UPDATE audit_hours SET version = version + 1 WHERE hour = $1`, k4)
	if got := countTotal(checkExact(t, db, repo, "India day, falsified hour stale", india)); got != 7 {
		t.Fatalf("stale hour not read raw: total %d", got)
	}
	rollAll(t, db)
	checkExact(t, db, repo, "India day, re-rolled", india)

	// The same for a day span (the UTC day 2026-03-29) and a month span
	// (October), each falsified through the spans' rollup rows.
	for _, c := range []struct {
		name   string
		p      audit.Period
		starts time.Time
		want   int64
	}{
		{"UTC day", mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-03-29"}), time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), 6},
		{"UTC month", mustPeriod(t, audit.ReportRequest{ReportType: "monthly", Date: "2026-10-01"}), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), 6},
	} {
		mustExec(t, db, `UPDATE audit_span_actions SET n = n + 100 WHERE span_id = (SELECT id FROM audit_spans
			WHERE starts_at = $1 ORDER BY ends_at DESC LIMIT 1)`, c.starts)
		got, err := repo.ReportCounts(context.Background(), c.p)
		if err != nil {
			t.Fatal(err)
		}
		if countTotal(got) <= c.want {
			t.Fatalf("%s: a falsified span row was not read: total %d", c.name, countTotal(got))
		}
		// As a write into an hour without events so far would: the hour's
		// first version makes the sum of the span's versions grow.
		mustExec(t, db, `INSERT INTO audit_hours (hour) VALUES ($1)
			ON CONFLICT (hour) DO UPDATE SET version = audit_hours.version + 1`, c.starts.Add(5*time.Hour))
		if got := countTotal(checkExact(t, db, repo, c.name+", hour of the span stale", c.p)); got != c.want {
			t.Fatalf("%s: total %d, want %d", c.name, got, c.want)
		}
		if n := rollAll(t, db); n.Hours != 1 || n.Days+n.Months == 0 {
			t.Fatalf("%s: re-rolled %+v", c.name, n)
		}
		if got := countTotal(checkExact(t, db, repo, c.name+", re-rolled", c.p)); got != c.want {
			t.Fatalf("%s: total %d, want %d", c.name, got, c.want)
		}
	}
}

// An insert into a rolled hour makes it stale: the report reads it raw
// (and is exact) until the roller has rolled it again. Duplicates change
// nothing: not the rows, not the versions, not the report.
func TestRollupStaleHoursAndDuplicates(t *testing.T) {
	db := newDB(t)
	repo := postgres.NewRepository(db)
	insert(t, repo,
		ev{"e1", "2026-04-01T10:15:00Z", "u1", "a", "doc", true},
		ev{"e2", "2026-04-01T10:45:00Z", "u2", "b", "doc", false},
		ev{"e3", "2026-04-01T11:00:00Z", "u1", "a", "img", true},
	)
	day := mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-04-01"})
	hour10 := time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)
	rollAll(t, db)
	if fresh, stale := hourState(t, db, day.Start, day.End); fresh != 2 || stale != 0 {
		t.Fatalf("%d fresh, %d stale hours after rolling", fresh, stale)
	}
	checkExact(t, db, repo, "rolled", day)

	insert(t, repo, ev{"e4", "2026-04-01T10:59:59.999999Z", "u3", "c", "doc", false})
	if fresh, stale := hourState(t, db, hour10, hour10.Add(time.Hour)); fresh != 0 || stale != 1 {
		t.Fatalf("10:00 after an insert: %d fresh, %d stale", fresh, stale)
	}
	if n := countTotal(checkExact(t, db, repo, "stale hour", day)); n != 4 {
		t.Fatalf("total %d, want 4", n)
	}
	if n := rollAll(t, db); n.Hours != 1 {
		t.Fatalf("re-rolled %d hours, want 1", n.Hours)
	}
	if n := countTotal(checkExact(t, db, repo, "re-rolled", day)); n != 4 {
		t.Fatalf("total %d, want 4", n)
	}

	// Re-written ids, alone (direct COPY fails, staging stores nothing) and
	// mixed with a new event of another hour (only that hour changes).
	var versions string
	state := func() string {
		t.Helper()
		var s string
		if err := db.DB.QueryRowContext(context.Background(),
			`SELECT string_agg(hour::text || '=' || version || '/' || rolled_version, ' ' ORDER BY hour) FROM audit_hours`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	versions = state()
	insert(t, repo, ev{"e1", "2026-04-01T10:15:00Z", "u1", "a", "doc", true}, ev{"e4", "2026-04-01T10:59:59.999999Z", "u3", "c", "doc", false})
	if got := state(); got != versions {
		t.Fatalf("duplicates changed hour versions:\n before %s\n after  %s", versions, got)
	}
	res, err := repo.Write(context.Background(), []audit.Event{
		eventAt("e2", "2026-04-01T10:45:00Z"), eventAt("e5", "2026-04-02T03:00:00Z"), eventAt("e5", "2026-04-02T03:00:00Z")})
	if err != nil || res.Inserted != 1 || res.Duplicates != 2 {
		t.Fatalf("mixed write: %+v, %v", res, err)
	}
	if fresh, stale := hourState(t, db, day.Start, day.End); fresh != 2 || stale != 0 {
		t.Fatalf("a duplicate made its hour stale: %d fresh, %d stale", fresh, stale)
	}
	if _, stale := hourState(t, db, day.End, day.End.Add(24*time.Hour)); stale != 1 {
		t.Fatalf("the new event's hour is not stale")
	}
	for _, p := range []audit.Period{day, mustPeriod(t, audit.ReportRequest{ReportType: "weekly", Date: "2026-04-01"})} {
		checkExact(t, db, repo, "after duplicates", p)
	}
}

func eventAt(id, at string) audit.Event {
	e := event(id)
	ts, _ := time.Parse(time.RFC3339Nano, at)
	e.OccurredAt = audit.Normalize(ts)
	return e
}

// A cleanup deleting rows of rolled hours makes those hours stale in the
// same transaction, with and without deletion records.
func TestRollupCleanupMakesHoursStale(t *testing.T) {
	for _, recorded := range []bool{false, true} {
		t.Run(fmt.Sprintf("recorded=%v", recorded), func(t *testing.T) {
			ctx := context.Background()
			db := newDB(t)
			repo, rec := sealedRepo(t, db)
			if !recorded {
				repo, rec = postgres.NewRepository(db), nil
			}
			cutoff := audit.Normalize(time.Date(2026, 7, 1, 12, 30, 0, 0, time.UTC))
			var evs []audit.Event
			for i := range 60 { // 07:00 to 16:50, every 10 minutes
				e := eventAt(fmt.Sprintf("c%02d", i), "2026-07-01T07:00:00Z")
				e.OccurredAt = e.OccurredAt.Add(time.Duration(i) * 10 * time.Minute)
				e.UserID = fmt.Sprintf("u%d", i%4)
				e.Action = []string{"keep.me", "drop.me", "drop.too"}[i%3]
				e.Success = i%5 != 0
				evs = append(evs, e)
			}
			if _, err := repo.Write(ctx, evs); err != nil {
				t.Fatal(err)
			}
			day := mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-07-01"})
			rollAll(t, db)
			before := countTotal(checkExact(t, db, repo, "rolled", day))

			ret := mustRetention(t, db, postgres.RetentionConfig{Chunk: 4}) // many chunks
			if rec != nil {
				ret = ret.RecordingDeletions(rec)
			}
			n, err := ret.DeleteExpired(ctx, audit.Cleanup{Cutoff: cutoff, ExcludeActions: []string{"keep.me"}})
			if err != nil {
				t.Fatal(err)
			}
			// 07:00 .. 12:20 is 33 events; a third of them are kept.
			if n != 22 {
				t.Fatalf("deleted %d, want 22", n)
			}
			if fresh, stale := hourState(t, db, day.Start, day.End); stale != 6 || fresh != 4 {
				t.Fatalf("after the cleanup: %d fresh, %d stale hours, want 07..12 stale, 13..16 fresh", fresh, stale)
			}
			if got := countTotal(checkExact(t, db, repo, "after cleanup", day)); got != before-n {
				t.Fatalf("total %d, want %d", got, before-n)
			}
			rollAll(t, db)
			if fresh, stale := hourState(t, db, day.Start, day.End); stale != 0 || fresh != 10 {
				t.Fatalf("re-rolled: %d fresh, %d stale", fresh, stale)
			}
			checkExact(t, db, repo, "after cleanup, re-rolled", day)
		})
	}
}

// sealedRepo returns a repository sealing its writes, as auditq serve runs
// it by default, and a deletion recorder for its cleanups.
func sealedRepo(t testing.TB, db *bun.DB) (*postgres.Repository, *postgres.DeletionRecorder) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := evidence.NewSigner(priv)
	return postgres.NewRepository(db).WithSealer(postgres.NewSealer(db, signer)), postgres.NewDeletionRecorder(signer)
}

// A change made around auditq that bumps audit_hours directly (as
// docs/operations.md asks) keeps working: the roller waits for a writer
// whose transaction bumped the hour and has not committed; a writer whose
// rows the roller could not see yet bumps the hour after the roller
// committed, leaving it stale. Either way the report equals the rows.
func TestRollupAndWritersInFlight(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	insert(t, repo, ev{"x0", "2026-02-02T08:10:00Z", "u1", "a", "doc", true})
	hour := time.Date(2026, 2, 2, 8, 0, 0, 0, time.UTC)
	day := mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-02-02"})
	rollAll(t, db)

	// A writer's transaction, by hand: rows, then the bump, then commit.
	writeTx := func(id string) *sql.Tx {
		tx, err := db.DB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_logs (id, user_id, action, resource_type, resource_id, success, occurred_at)
			VALUES ($1, 'u2', 'b', 'img', 'r', false, $2)`, id, hour.Add(30*time.Minute)); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	bump := func(tx *sql.Tx) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_hours (hour) VALUES ($1)
			ON CONFLICT (hour) DO UPDATE SET version = audit_hours.version + 1`, hour); err != nil {
			t.Fatal(err)
		}
	}

	// 1. Bumped, not committed: the roller waits for the commit. (The hour
	// is made stale first, or the roller would not pick it.)
	mustExec(t, db, `UPDATE audit_hours SET version = version + 1 WHERE hour = $1`, hour)
	tx := writeTx("x1")
	bump(tx)
	rolled := make(chan error, 1)
	go func() {
		_, err := mustRoller(t, db, postgres.RollerConfig{}).Roll(ctx)
		rolled <- err
	}()
	waitForLockWait(t, db)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-rolled; err != nil {
		t.Fatal(err)
	}
	if fresh, _ := hourState(t, db, hour, hour.Add(time.Hour)); fresh != 1 {
		t.Fatal("the hour is not fresh after the roller waited for the writer")
	}
	if n := countTotal(checkExact(t, db, repo, "roller waited", day)); n != 2 {
		t.Fatalf("total %d, want 2: the rollup missed the writer's row", n)
	}

	// 2. Rows written, the roller runs before the bump: the writer's bump
	// comes after, so the hour is stale and read raw.
	tx = writeTx("x2")
	mustExec(t, db, `UPDATE audit_hours SET version = version + 1 WHERE hour = $1`, hour) // make it worth rolling
	if n := rollAll(t, db); n.Hours != 1 {
		t.Fatalf("rolled %d hours", n.Hours)
	}
	bump(tx)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, stale := hourState(t, db, hour, hour.Add(time.Hour)); stale != 1 {
		t.Fatal("the hour is fresh although the rollup misses a committed row")
	}
	if n := countTotal(checkExact(t, db, repo, "writer after roller", day)); n != 3 {
		t.Fatalf("total %d, want 3", n)
	}
}

// waitForLockWait returns once some session of db's database waits for a
// lock (the roller on the writer's hour row).
func waitForLockWait(t *testing.T, db *bun.DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := db.DB.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the roller never waited for the writer's lock")
}

// Rollup-backed reports equal a raw aggregation over many random periods
// (hour-aligned and not, in zones with whole and half-hour offsets) while
// sealed writes with duplicates, cleanups and partial rolls change which
// hours are fresh.
func TestRollupRandomPeriodsMatchRawAggregation(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo, rec := sealedRepo(t, db)
	rng := mrand.New(mrand.NewPCG(7, 11))
	base := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	const span = 6 * 24 * time.Hour
	randomAt := func() time.Time {
		return audit.Normalize(base.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Microsecond))
	}
	next := 0
	write := func(n int) {
		var evs []audit.Event
		for range n {
			var e audit.Event
			if next > 0 && rng.IntN(10) == 0 { // a redelivered id
				e = event(fmt.Sprintf("r%05d", rng.IntN(next)))
			} else {
				e = event(fmt.Sprintf("r%05d", next))
				next++
			}
			e.OccurredAt = randomAt()
			e.UserID = fmt.Sprintf("u%02d", rng.IntN(30))
			if rng.IntN(6) == 0 {
				e.UserID = ""
			}
			e.Action = fmt.Sprintf("act.%d", rng.IntN(12))
			e.ResourceType = fmt.Sprintf("res%d", rng.IntN(14))
			e.Success = rng.IntN(4) != 0
			evs = append(evs, e)
		}
		if _, err := repo.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	zones := []string{"UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"}
	randomPeriod := func() audit.Period {
		switch rng.IntN(3) {
		case 0:
			d := base.AddDate(0, 0, rng.IntN(6))
			return mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: d.Format(time.DateOnly), TimeZone: zones[rng.IntN(len(zones))]})
		case 1:
			s := base.Add(time.Duration(rng.IntN(6*24)) * time.Hour)
			return audit.Period{Start: s, End: s.Add(time.Duration(1+rng.IntN(72)) * time.Hour), TimeZone: "UTC"}
		default:
			s := randomAt().Add(-12 * time.Hour)
			return audit.Period{Start: s, End: s.Add(time.Duration(rng.Int64N(int64(4 * 24 * time.Hour)))).Truncate(time.Microsecond).Add(time.Microsecond), TimeZone: "UTC"}
		}
	}
	months := []audit.Period{
		mustPeriod(t, audit.ReportRequest{ReportType: "monthly", Date: "2026-08-01"}),
		mustPeriod(t, audit.ReportRequest{ReportType: "monthly", Date: "2026-08-01", TimeZone: "America/St_Johns"}),
		mustPeriod(t, audit.ReportRequest{ReportType: "weekly", Date: "2026-08-05", TimeZone: "Asia/Kolkata"}),
	}
	check := func(round string) {
		for i := range 25 {
			checkExact(t, db, repo, fmt.Sprintf("%s, period %d", round, i), randomPeriod())
		}
		for _, p := range months {
			checkExact(t, db, repo, round, p)
		}
	}
	partialRoll := func() {
		// Some hours only: the roller's newest-first batches.
		if _, err := mustRoller(t, db, postgres.RollerConfig{Batch: 1 + rng.IntN(40)}).Roll(ctx); err != nil {
			t.Fatal(err)
		}
	}

	write(1500)
	check("raw only")
	partialRoll()
	check("partly rolled")
	rollAll(t, db)
	check("all rolled")
	for round := range 6 {
		write(100 + rng.IntN(400))
		if round%2 == 1 {
			cut := base.Add(time.Duration(rng.Int64N(int64(span))))
			if _, err := mustRetention(t, db, postgres.RetentionConfig{Chunk: 50}).RecordingDeletions(rec).DeleteExpired(ctx,
				audit.Cleanup{Cutoff: cut, ExcludeActions: []string{"act.3"}, HoldUsers: []string{"u07"}}); err != nil {
				t.Fatal(err)
			}
		}
		check(fmt.Sprintf("round %d, stale", round))
		partialRoll()
		check(fmt.Sprintf("round %d, partly rolled", round))
	}
	rollAll(t, db)
	check("final, all rolled")
	whole := audit.Period{Start: base.Add(-time.Hour), End: base.Add(span + time.Hour), TimeZone: "UTC"}
	if fresh, stale := hourState(t, db, whole.Start, whole.End); stale != 0 || fresh < 100 {
		t.Fatalf("after rolling everything: %d fresh, %d stale hours", fresh, stale)
	}
	if n := countTotal(checkExact(t, db, repo, "everything", whole)); n < 500 {
		t.Fatalf("only %d events left", n)
	}
}

// A report whose period starts or ends inside a fresh hour takes that
// hour from its rollup when the part outside the period is the shorter,
// counting the rows of that part negatively: the figures equal the rows'
// (an action only outside the period is left out), and a rollup changed
// by hand shows in the report, so the rollup was read.
func TestReportTakesEdgeHoursFromRollups(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	insert(t, repo,
		ev{"e1", "2026-02-02T07:02:00Z", "u9", "only.early", "doc", true},
		ev{"e2", "2026-02-02T07:40:00Z", "u1", "a", "doc", true},
		ev{"e3", "2026-02-02T07:45:00Z", "u2", "c", "file", false},
		ev{"e4", "2026-02-02T08:05:00Z", "u1", "a", "doc", true},
		ev{"e5", "2026-02-02T08:10:00Z", "u2", "b", "doc", false},
		ev{"e6", "2026-02-02T08:50:00Z", "u8", "only.late", "disk", false},
		ev{"e7", "2026-02-02T08:55:00Z", "u1", "a", "doc", true},
		ev{"e8", "2026-02-02T09:15:00Z", "u1", "a", "doc", true},
	)
	rollAll(t, db)
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct{ name, start, end string }{
		{"start inside 07h, end inside 08h", "2026-02-02T07:10:00Z", "2026-02-02T08:45:00Z"},
		{"start inside 07h", "2026-02-02T07:10:00Z", "2026-02-02T08:20:00Z"},
		{"end inside 08h", "2026-02-02T07:30:00Z", "2026-02-02T08:45:00Z"},
		{"halves: read raw", "2026-02-02T07:30:00Z", "2026-02-02T08:30:00Z"},
		{"inside one hour", "2026-02-02T08:01:00Z", "2026-02-02T08:59:00Z"},
	} {
		checkExact(t, db, repo, c.name, audit.Period{Start: at(c.start), End: at(c.end), TimeZone: "UTC"})
	}
	p := audit.Period{Start: at("2026-02-02T07:10:00Z"), End: at("2026-02-02T08:45:00Z"), TimeZone: "UTC"}
	want := countTotal(rawCounts(t, db, p))
	for _, h := range []string{"2026-02-02T07:00:00Z", "2026-02-02T08:00:00Z"} {
		if _, err := db.ExecContext(ctx, `UPDATE audit_rollup_actions SET n = n + 100 WHERE hour = ? AND action = 'a'`, at(h)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := repo.ReportCounts(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if n := countTotal(got); n != want+200 {
		t.Fatalf("total %d with both edge hours' rollups raised by 100; want %d: an edge hour was read raw", n, want+200)
	}
}

// The roller rolls an hour within the lag, the current one included,
// once no fold has changed it for the quiet time, and leaves it while it
// changes; a write after the roll makes it stale again, and reports stay
// exact throughout.
func TestRollerRollsQuietRecentHours(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	now := time.Now().UTC()
	cur := now.Truncate(time.Hour)
	flood := make([]audit.Event, 50)
	for i := range flood {
		flood[i] = event(fmt.Sprintf("f%02d", i))
		flood[i].OccurredAt = audit.Normalize(cur.Add(time.Duration(i) * time.Second))
	}
	if _, err := repo.Write(ctx, flood); err != nil {
		t.Fatal(err)
	}
	const quiet = 2 * time.Second
	roller := mustRoller(t, db, postgres.RollerConfig{Lag: time.Hour, Quiet: quiet})
	if n, err := roller.RollAll(ctx); err != nil || n.Hours != 0 {
		t.Fatalf("rolled %d hours, %v, right after the writes", n.Hours, err)
	}
	time.Sleep(quiet + 500*time.Millisecond)
	if n, err := roller.RollAll(ctx); err != nil || n.Hours != 1 {
		t.Fatalf("rolled %d hours, %v, once the current hour was quiet; want it", n.Hours, err)
	}
	if fresh, stale := hourState(t, db, cur, cur.Add(time.Hour)); fresh != 1 || stale != 0 {
		t.Fatalf("current hour: %d fresh, %d stale", fresh, stale)
	}
	p := audit.Period{Start: cur.Add(-time.Hour), End: cur.Add(2 * time.Hour), TimeZone: "UTC"}
	if n := countTotal(checkExact(t, db, repo, "rolled current hour", p)); n != 50 {
		t.Fatalf("total %d, want 50", n)
	}
	// Until now, as a custom report ends: the current hour from its rollup.
	untilNow := audit.Period{Start: cur.Add(-time.Hour), End: audit.Normalize(time.Now().UTC()), TimeZone: "UTC"}
	checkExact(t, db, repo, "until now", untilNow)
	late := event("late")
	late.OccurredAt = audit.Normalize(cur.Add(time.Minute))
	if _, err := repo.Write(ctx, []audit.Event{late}); err != nil {
		t.Fatal(err)
	}
	if n, err := roller.RollAll(ctx); err != nil || n.Hours != 0 {
		t.Fatalf("rolled %d hours, %v, right after another write", n.Hours, err)
	}
	if n := countTotal(checkExact(t, db, repo, "changed current hour", p)); n != 51 {
		t.Fatalf("total %d, want 51", n)
	}
}

// The roller leaves the current hour and the lag before it to raw reads,
// and Start rolls in the background until stopped.
func TestRollerLagAndStart(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	now := time.Now().UTC()
	cur := now.Truncate(time.Hour)
	evs := []audit.Event{event("now"), event("1h"), event("3h")}
	evs[0].OccurredAt = audit.Normalize(now)
	evs[1].OccurredAt = cur.Add(-time.Hour)
	evs[2].OccurredAt = cur.Add(-3 * time.Hour)
	if _, err := repo.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if n, err := mustRoller(t, db, postgres.RollerConfig{Lag: time.Hour}).RollAll(ctx); err != nil || n.Hours != 1 {
		t.Fatalf("rolled %d hours, %v; want only the one 3 hours back", n.Hours, err)
	}
	if fresh, _ := hourState(t, db, cur.Add(-3*time.Hour), cur.Add(-2*time.Hour)); fresh != 1 {
		t.Fatal("the hour 3 hours back is not fresh")
	}
	if _, stale := hourState(t, db, cur.Add(-time.Hour), cur.Add(time.Hour)); stale != 2 {
		t.Fatal("the current or the previous hour was rolled")
	}
	p := audit.Period{Start: cur.Add(-4 * time.Hour), End: cur.Add(time.Hour), TimeZone: "UTC"}
	if n := countTotal(checkExact(t, db, repo, "recent hours", p)); n != 3 {
		t.Fatalf("total %d, want 3", n)
	}

	stop := mustRoller(t, db, postgres.RollerConfig{}).Start(10*time.Millisecond, slog.New(slog.DiscardHandler))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, stale := hourState(t, db, cur.Add(-time.Hour), cur); stale == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background roller never rolled the previous hour")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	stop() // idempotent
	checkExact(t, db, repo, "recent hours, rolled", p)
}

// The least-privilege role of docs/writer-role.sql can write, clean up and
// roll up: the roller replaces rollup rows, which needs DELETE on them.
func TestRollupWorksAsTheWriterRole(t *testing.T) {
	ctx := context.Background()
	ownerURL := pgtest.NewDatabase(t)
	owner, err := postgres.Open(ctx, ownerURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Close() })
	if err := migrations.Up(ctx, owner); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, pgtest.WriterRole(t, ownerURL, "../../docs/writer-role.sql"), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	repo := postgres.NewRepository(db)
	insert(t, repo, ev{"a", "2026-03-01T10:00:00Z", "u1", "x", "doc", true}, ev{"b", "2026-03-02T10:00:00Z", "u2", "y", "doc", false})
	rollAll(t, db)
	insert(t, repo, ev{"c", "2026-03-01T10:30:00Z", "u1", "x", "doc", true}, ev{"a", "2026-03-01T10:00:00Z", "u1", "x", "doc", true})
	if _, err := mustRetention(t, db, postgres.RetentionConfig{}).DeleteExpired(ctx, audit.Cleanup{Cutoff: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if n := rollAll(t, db); n.Hours != 1 || n.Days != 1 || n.Months != 1 {
		t.Fatalf("re-rolled %+v, want the hour, its day and month", n)
	}
	month := mustPeriod(t, audit.ReportRequest{ReportType: "monthly", Date: "2026-03-01"})
	if n := countTotal(checkExact(t, db, repo, "as the writer role", month)); n != 1 {
		t.Fatalf("total %d, want 1", n)
	}
}
