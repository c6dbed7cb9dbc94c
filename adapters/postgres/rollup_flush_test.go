package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/migrations"
)

// Two flushes of one hour do not wait on each other: a sealed flush held
// open after it marked its hour changed (its batch record waits for a lock
// on audit_batches) does not delay a second flush of the same hour, nor a
// roll meanwhile. The held flush commits after that roll, so its hour is
// stale (its change row) and read raw; reports equal the rows throughout,
// and the next roll makes the hour fresh again.
func TestFlushesOfOneHourDoNotWaitOnEachOther(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.NewDatabase(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	plain := postgres.NewRepository(db)
	sealed, _ := sealedRepo(t, db)
	hour := time.Date(2026, 2, 2, 8, 0, 0, 0, time.UTC)
	day := mustPeriod(t, audit.ReportRequest{ReportType: "daily", Date: "2026-02-02"})
	insert(t, plain, ev{"x0", "2026-02-02T08:10:00Z", "u1", "a", "doc", true})
	rollAll(t, db)
	if fresh, _ := hourState(t, db, hour, hour.Add(time.Hour)); fresh != 1 {
		t.Fatal("the hour is not fresh after the roll")
	}

	hold, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback() }()
	if _, err := hold.ExecContext(ctx, `LOCK TABLE audit_batches IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := sealed.Write(ctx, []audit.Event{evAt(t, "a1", "2026-02-02T08:20:00Z", "u2")})
		first <- err
	}()
	waitForLockWait(t, db) // the first flush waits for audit_batches, its hour marked

	second := make(chan error, 1)
	go func() {
		_, err := plain.Write(ctx, []audit.Event{evAt(t, "b1", "2026-02-02T08:40:00Z", "u3")})
		second <- err
	}()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		var waits string
		_ = db.DB.QueryRowContext(ctx, `SELECT string_agg(l.locktype || ' ' || l.mode || ': ' || a.query, '; ')
			FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT l.granted`).Scan(&waits)
		t.Fatalf("the second flush of the hour waits for the first one (ungranted locks: %s)", waits)
	}
	select {
	case err := <-first:
		t.Fatalf("the first flush ended while held: %v", err)
	default:
	}
	if n := countTotal(checkExact(t, db, plain, "second flush committed, first held", day)); n != 2 {
		t.Fatalf("total %d, want 2", n)
	}
	// A roll meanwhile neither waits for the held flush nor counts it.
	if n := rollAll(t, db); n.Hours != 1 {
		t.Fatalf("rolled %+v, want the hour", n)
	}
	if fresh, _ := hourState(t, db, hour, hour.Add(time.Hour)); fresh != 1 {
		t.Fatal("the hour is not fresh after the roll")
	}

	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var changes int
	if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FROM audit_hour_changes WHERE hour = $1`, hour).Scan(&changes); err != nil {
		t.Fatal(err)
	}
	if changes != 1 {
		t.Fatalf("%d change rows of the hour after the held flush committed, want its 1", changes)
	}
	if n := countTotal(checkExact(t, db, plain, "both flushes committed, one after the roll", day)); n != 3 {
		t.Fatalf("total %d, want 3: a rollup missing the held flush's row was trusted", n)
	}
	if n := rollAll(t, db); n.Hours != 1 {
		t.Fatalf("re-rolled %+v, want the hour", n)
	}
	if n := countTotal(checkExact(t, db, plain, "re-rolled", day)); n != 3 {
		t.Fatalf("total %d, want 3", n)
	}
	if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FROM audit_hour_changes`).Scan(&changes); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := hourState(t, db, hour, hour.Add(time.Hour)); fresh != 1 || changes != 0 {
		t.Fatalf("after the re-roll: %d fresh hours, %d change rows; want 1 and 0", fresh, changes)
	}
}

func evAt(t *testing.T, id, at, user string) audit.Event {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatal(err)
	}
	ts = audit.Normalize(ts)
	return audit.Event{ID: id, UserID: user, Action: "b", ResourceType: "img", ResourceID: "r-" + id,
		Success: false, OccurredAt: ts, ReceivedAt: ts}
}
