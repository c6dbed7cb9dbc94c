package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/migrations"
)

func newDB(t testing.TB) *bun.DB {
	t.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.NewDatabase(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	return db
}

func event(id string) audit.Event {
	at := audit.Normalize(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	return audit.Event{
		ID: id, UserID: "u1", Action: "user.login", ResourceType: "user", ResourceID: "42",
		Details: json.RawMessage(`{"k": "v"}`), IPAddress: "203.0.113.7", UserAgent: "ua",
		SessionID: "s", RequestID: "r", Success: true, OccurredAt: at, ReceivedAt: at.Add(time.Second),
	}
}

func TestWriteBatchAndDuplicates(t *testing.T) {
	ctx := context.Background()
	repo := postgres.NewRepository(newDB(t))
	var batch []audit.Event
	for i := range 2500 { // more than one statement's worth of rows
		batch = append(batch, event(fmt.Sprintf("e%04d", i)))
	}
	res, err := repo.Write(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res != (audit.WriteResult{Inserted: 2500}) {
		t.Fatalf("first write: %+v", res)
	}
	// A redelivered batch, plus one new event and an id repeated inside it.
	again := append(batch[:10:10], event("new"), event("new"))
	res, err = repo.Write(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if res != (audit.WriteResult{Inserted: 1, Duplicates: 11}) {
		t.Fatalf("second write: %+v", res)
	}
	got, err := repo.Get(ctx, audit.DefaultTenant, "e0007")
	if err != nil {
		t.Fatal(err)
	}
	want := event("e0007")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("round trip:\n got  %+v\n want %+v", got, want)
	}
	if _, err := repo.Get(ctx, audit.DefaultTenant, "missing"); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
}

func TestWriteStoresAbsentFieldsAsNull(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	e := audit.Event{ID: "sys", Action: "cron.run", ResourceType: "job", ResourceID: "0",
		OccurredAt: audit.Normalize(time.Now()), ReceivedAt: audit.Normalize(time.Now())}
	if _, err := repo.Write(ctx, []audit.Event{e}); err != nil {
		t.Fatal(err)
	}
	var nulls int
	err := db.QueryRowContext(ctx, `SELECT num_nulls(user_id, details, ip_address, user_agent, session_id, request_id, error_message)
		FROM audit_logs WHERE id = 'sys' AND success = false`).Scan(&nulls)
	if err != nil {
		t.Fatal(err)
	}
	if nulls != 7 {
		t.Fatalf("%d of 7 optional columns are NULL", nulls)
	}
}

// NUL never reaches the database through the decoder; if an event built by
// hand carries one, Postgres rejects it and the error is permanent (the
// message is poisoned, not retried for ever), and nothing of the batch is
// stored.
func TestWriteNULIsPermanentAndAtomic(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	if _, err := audit.DecodeEvent([]byte(`{"action":"a\u0000","resourceType":"t","resourceId":"r","id":"x"}`), audit.Receipt{ReceivedAt: time.Now()}); err == nil {
		t.Fatal("decoder accepted a NUL")
	}
	bad := event("bad")
	bad.Action = "a\x00b"
	_, err := repo.Write(ctx, []audit.Event{event("good"), bad})
	if err == nil || !audit.IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	n, err := db.NewSelect().Table("audit_logs").Count(ctx)
	if err != nil || n != 0 {
		t.Fatalf("rows after failed batch = %d (%v), want 0", n, err)
	}
}

func TestMigrationsAreIdempotentAndConcurrent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			db, err := postgres.Open(ctx, url, 2)
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = db.Close() }()
			errs <- migrations.Up(ctx, db)
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
