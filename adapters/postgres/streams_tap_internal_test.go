package postgres

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/migrations"
)

// Only batches whose commit PostgreSQL confirmed enter the streams'
// cache: not a write refused at COMMIT, not the batch ids of a write
// rolled back on a batch id collision, which a later batch may draw again.
func TestStreamStoreKeepsOnlyCommittedBatches(t *testing.T) {
	ctx := context.Background()
	db, sealer, store := tappedSealer(t)
	fixed := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	sealer.now = func() time.Time { return fixed } // every batch draws from the same 1,024 ids
	repo := NewRepository(db).WithSealer(sealer)
	ev := func(id, action string) audit.Event {
		return audit.Event{ID: id, Action: action, ResourceType: "doc", ResourceID: "1", Success: true, OccurredAt: fixed, ReceivedAt: fixed}
	}
	cachedIDs := func() []int64 {
		store.mu.Lock()
		defer store.mu.Unlock()
		var ids []int64
		for _, ref := range store.order {
			ids = append(ids, ref.id)
		}
		return ids
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.DB.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}

	// A deferred trigger refuses the transaction at COMMIT, after the
	// rows and the batch record went in.
	exec(`CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.action = 'refused.at.commit' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$`)
	exec(`CREATE CONSTRAINT TRIGGER refuse_marked AFTER INSERT ON audit_logs DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW EXECUTE FUNCTION refuse_marked()`)
	if _, err := repo.Write(ctx, []audit.Event{ev("c-1", "refused.at.commit")}); err == nil {
		t.Fatal("the write refused at commit succeeded")
	}
	if ids := cachedIDs(); len(ids) != 0 {
		t.Fatalf("a batch refused at commit is cached: %v", ids)
	}

	// Every id the sealer can draw is taken: the write collides, goes
	// through the staging path, collides again and rolls back.
	exec(`INSERT INTO audit_batches (id, sealed_at, leaf_count, leaves, root, signature)
		SELECT $1::bigint << 10 | k, now(), 1, decode(repeat('11', 32), 'hex'), decode(repeat('22', 32), 'hex'), '\x00'
		FROM generate_series(0, 1023) k`, fixed.UnixMicro())
	if _, err := repo.Write(ctx, []audit.Event{ev("r-1", "rolled.back")}); err == nil {
		t.Fatal("the write with every batch id taken succeeded")
	}
	if ids := cachedIDs(); len(ids) != 0 {
		t.Fatalf("a rolled-back batch is cached: %v", ids)
	}

	// The ids free again, a write draws one of those the failed writes
	// drew: the cache holds its rows, and only them.
	exec(`DELETE FROM audit_batches`)
	if _, err := repo.Write(ctx, []audit.Event{ev("ok-1", "committed"), ev("ok-2", "committed")}); err != nil {
		t.Fatal(err)
	}
	ids := cachedIDs()
	if len(ids) != 1 || ids[0]>>10 != fixed.UnixMicro() {
		t.Fatalf("cached batches %v, want the one committed", ids)
	}
	store.mu.Lock()
	rows := store.cached[ids[0]].rows
	store.mu.Unlock()
	if len(rows) != 2 || rows[0].ID != "ok-1" || rows[1].ID != "ok-2" || rows[1].Seal != (audit.Seal{BatchID: ids[0], Leaf: 1}) {
		t.Fatalf("cached rows %+v", rows)
	}
}

// A stream whose batches are cached does not wait for another stream's
// read from PostgreSQL (one far behind, reading a thousand rows).
func TestStreamStoreCachedReadDoesNotWait(t *testing.T) {
	ctx := context.Background()
	db, sealer, store := tappedSealer(t)
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	if _, err := NewRepository(db).WithSealer(sealer).Write(ctx, []audit.Event{
		{ID: "e-1", Action: "a", ResourceType: "doc", ResourceID: "1", Success: true, OccurredAt: at, ReceivedAt: at},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.Chain(ctx); err != nil {
		t.Fatal(err)
	}
	store.reading.Lock() // another reader's read from PostgreSQL, in progress
	defer store.reading.Unlock()
	done := make(chan error, 1)
	go func() {
		rd, err := store.Read(ctx, audit.StreamStart, 100)
		if err == nil && (len(rd.Events) != 1 || rd.Events[0].ID != "e-1" || rd.Events[0].Seal.BatchSeq != 1) {
			err = fmt.Errorf("read %+v", rd)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read of a cached batch waited for another reader")
	}
}

// A cached batch leaves the cache once each of the instance's streams
// (SetReaders) read past it; a read of it after that reads the same rows
// from PostgreSQL.
func TestStreamStoreDropsWhatEveryReaderPassed(t *testing.T) {
	ctx := context.Background()
	store, at := twoReadersTwoBatches(t)
	cached := func() (batches, order, events int) {
		store.mu.Lock()
		defer store.mu.Unlock()
		return len(store.cached), len(store.order), store.events
	}
	read := func(c audit.StreamCursor, max int) audit.StreamRead {
		t.Helper()
		rd, err := store.Read(ctx, c, max)
		if err != nil {
			t.Fatal(err)
		}
		return rd
	}
	first := read(audit.StreamStart, 1) // the first batch only
	if b, o, e := cached(); b != 2 || o != 2 || e != 2 {
		t.Fatalf("after one reader passed batch 1 the cache holds %d batches (%d in order), %d rows, want 2, 2, 2", b, o, e)
	}
	if rd := read(audit.StreamStart, 100); len(rd.Events) != 2 {
		t.Fatalf("the second reader read %d events, want 2", len(rd.Events))
	}
	if b, o, e := cached(); b != 1 || o != 1 || e != 1 {
		t.Fatalf("after both readers passed batch 1 the cache holds %d batches (%d in order), %d rows, want batch 2 only", b, o, e)
	}
	if rd := read(first.Next, 100); len(rd.Events) != 1 || rd.Events[0].ID != "e-2" {
		t.Fatalf("the first reader's second read %+v, want e-2", rd.Events)
	}
	if b, o, e := cached(); b != 0 || o != 0 || e != 0 {
		t.Fatalf("after both readers passed both batches the cache holds %d batches (%d in order), %d rows", b, o, e)
	}
	again := read(audit.StreamStart, 1)
	if len(again.Events) != 1 || again.Events[0].ID != "e-1" || again.Events[0].Seal.BatchSeq != 1 ||
		!again.Events[0].OccurredAt.Equal(at) || first.Events[0].Seal != again.Events[0].Seal {
		t.Fatalf("batch 1 read again %+v, want the row of the first read %+v", again.Events, first.Events)
	}
}

// twoReadersTwoBatches returns a StreamStore read by two streams, after
// two tapped and chained batches of one event each (e-1, then e-2, both
// at the time it returns).
func twoReadersTwoBatches(t *testing.T) (*StreamStore, time.Time) {
	t.Helper()
	ctx := context.Background()
	db, sealer, store := tappedSealer(t)
	store.SetReaders(2)
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	repo := NewRepository(db).WithSealer(sealer)
	for _, id := range []string{"e-1", "e-2"} {
		if _, err := repo.Write(ctx, []audit.Event{
			{ID: id, Action: "a", ResourceType: "doc", ResourceID: "1", Success: true, OccurredAt: at, ReceivedAt: at},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sealer.Chain(ctx); err != nil {
		t.Fatal(err)
	}
	return store, at
}

// tappedSealer returns a migrated scratch database, closed at the end of
// the test, and a Sealer over it that writes through to the StreamStore.
func tappedSealer(t *testing.T) (*bun.DB, *Sealer, *StreamStore) {
	t.Helper()
	db, err := Open(context.Background(), pgtest.NewDatabase(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := migrations.Up(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealer := NewSealer(db, evidence.NewSigner(priv))
	store := NewStreamStore(db)
	sealer.TapCommits(store)
	return db, sealer, store
}

// A cursor update PostgreSQL refuses (text with a NUL) leaves no
// transaction open on the connection it used, which stays in the pool:
// the next updates succeed over it and no session of the database waits
// in an aborted transaction.
func TestStreamStoreRefusedUpdateLeavesNoTransaction(t *testing.T) {
	ctx := context.Background()
	db, _, store := tappedSealer(t)
	db.SetMaxOpenConns(1) // every statement goes over the connection of the refused one
	backend := func() (pid int) {
		t.Helper()
		if err := db.DB.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	if _, ok, err := store.Claim(ctx, "s", "me", time.Minute); err != nil || !ok {
		t.Fatal(ok, err)
	}
	before := backend()
	if err := store.Fail(ctx, "s", "me", "bad\x00reason", time.Minute); err == nil {
		t.Fatal("PostgreSQL took a NUL in text")
	}
	if err := store.Advance(ctx, "s", "me", audit.StreamCursor{NextSeq: 3, AfterLeaf: -1}, 5, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	var aborted int
	if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&aborted); err != nil {
		t.Fatal(err)
	}
	c, ok, err := store.Claim(ctx, "s", "me", time.Minute)
	if err != nil || !ok || c != (audit.StreamCursor{NextSeq: 3, AfterLeaf: -1}) || aborted != 0 {
		t.Fatalf("after the refused update: cursor %+v (%v, %v), %d sessions in a transaction", c, ok, err, aborted)
	}
	if after := backend(); after != before {
		t.Fatalf("the refused update's connection (backend %d) was replaced by backend %d", before, after)
	}
}

// A batch every reader passed is garbage at once, even while an older
// batch that a reader has not passed yet keeps its own place in the
// cache's order.
func TestStreamStoreDroppedBatchIsGarbage(t *testing.T) {
	ctx := context.Background()
	store, _ := twoReadersTwoBatches(t)
	// Reader A reads batch 1 and stops there; then both readers read
	// batch 2, which leaves the cache, while batch 1, which reader B has
	// not passed, stays at the front of the cache's order.
	first, err := store.Read(ctx, audit.StreamStart, 1)
	if err != nil || len(first.Events) != 1 {
		t.Fatalf("first read %+v, %v", first.Events, err)
	}
	store.mu.Lock()
	if len(store.order) != 2 {
		store.mu.Unlock()
		t.Fatalf("the cache's order holds %d batches, want 2", len(store.order))
	}
	second := weak.Make(store.cached[store.order[1].id])
	store.mu.Unlock()
	for range 2 {
		if rd, err := store.Read(ctx, first.Next, 100); err != nil || len(rd.Events) != 1 || rd.Events[0].ID != "e-2" {
			t.Fatalf("a read of batch 2 %+v, %v", rd.Events, err)
		}
	}
	store.mu.Lock()
	b, o := len(store.cached), len(store.order)
	store.mu.Unlock()
	if b != 1 || o != 2 {
		t.Fatalf("the cache holds %d batches (%d in order), want batch 1 (and batch 2's place behind it)", b, o)
	}
	runtime.GC()
	if second.Value() != nil {
		t.Fatal("batch 2 left the cache but its rows are still reachable")
	}
	runtime.KeepAlive(store)
}
