package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

func streamIDs(evs []*audit.SealedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func chain(t *testing.T, tr *trail) {
	t.Helper()
	if _, err := tr.sealer.Chain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Reads follow the chain order, whole batches, cutting one batch larger
// than the limit, and resume exactly after the cursor.
func TestStreamStoreReadsInCommitOrder(t *testing.T) {
	ctx := context.Background()
	tr := newTrail(t)
	store := postgres.NewStreamStore(tr.db)
	tr.write(t, "a", 3)
	tr.write(t, "b", 5)
	chain(t, tr)

	all, err := store.Read(ctx, audit.StreamStart, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(streamIDs(all.Events)); got != "[a-0 a-1 a-2 b-0 b-1 b-2 b-3 b-4]" || all.Next != (audit.StreamCursor{NextSeq: 3, AfterLeaf: -1}) || all.More {
		t.Fatalf("read all: %s next %+v more %v", got, all.Next, all.More)
	}
	for i, e := range all.Events {
		if want := []int{0, 1, 2, 0, 1, 2, 3, 4}[i]; e.Seal.Leaf != want || e.Seal.BatchSeq != int64(1+min(i/3, 1)) || e.Seal.BatchID == 0 {
			t.Fatalf("event %s: seal %+v", e.ID, e.Seal)
		}
		var details string
		if err := tr.db.DB.QueryRowContext(ctx, `SELECT details::text FROM audit_logs WHERE id = $1`, e.ID).Scan(&details); err != nil {
			t.Fatal(err)
		}
		if string(e.Details) != details || e.IPAddress != "203.0.113.7" || e.UserID != "u1" {
			t.Fatalf("event %s read as details %s, ip %q, user %q; stored %s", e.ID, e.Details, e.IPAddress, e.UserID, details)
		}
	}
	// Reads of 2 cut both batches; each says whether more follow (a
	// stream behind reads again at once), the one reaching the end not.
	var got, more []string
	cur := audit.StreamStart
	for range 10 {
		rd, err := store.Read(ctx, cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(rd.Events) > 2 {
			t.Fatalf("read of 2 returned %d", len(rd.Events))
		}
		got = append(got, streamIDs(rd.Events)...)
		more = append(more, fmt.Sprint(len(rd.Events), rd.More))
		cur = rd.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(streamIDs(all.Events)) || cur != all.Next {
		t.Fatalf("reads of 2: %v, cursor %+v", got, cur)
	}
	if want := "[2 true 1 true 2 true 2 true 1 false 0 false 0 false 0 false 0 false 0 false]"; fmt.Sprint(more) != want {
		t.Fatalf("reads of 2 (events, more): %v, want %s", more, want)
	}
	// An event without details reads as nil details.
	bare := event("bare-0")
	bare.Details = nil
	if _, err := tr.repo.Write(ctx, []audit.Event{bare}); err != nil {
		t.Fatal(err)
	}
	chain(t, tr)
	if rd, err := store.Read(ctx, all.Next, 100); err != nil || len(rd.Events) != 1 || rd.Events[0].Details != nil {
		t.Fatalf("the event without details: %+v, %v", rd.Events, err)
	}
	// Whole batches short of the limit: the first batch alone (3 of 4)
	// leaves the second behind.
	if rd, err := store.Read(ctx, audit.StreamStart, 4); err != nil || len(rd.Events) != 3 || !rd.More {
		t.Fatalf("read of 4: %d events, more %v, err %v; want 3 and more", len(rd.Events), rd.More, err)
	}
}

// A batch that commits after a later one (group commit runs several
// flushers) is chained after it, so a cursor that passed the later one
// still delivers it: the commit order, not the batch id, orders a stream.
func TestStreamStoreDeliversALateCommit(t *testing.T) {
	ctx := context.Background()
	tr := newTrail(t)
	store := postgres.NewStreamStore(tr.db)
	// A writer that began first, with the lowest batch id and sealing
	// time, still uncommitted.
	late, err := tr.db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = late.Rollback() }()
	e := event("late-0")
	if _, err := late.ExecContext(ctx, `INSERT INTO audit_logs (id, action, resource_type, resource_id, occurred_at, received_at, seal_batch, seal_leaf)
		VALUES ($1, $2, $3, $4, $5, $6, 1, 0)`, e.ID, e.Action, e.ResourceType, e.ResourceID, e.OccurredAt, e.ReceivedAt); err != nil {
		t.Fatal(err)
	}
	if _, err := late.ExecContext(ctx, `INSERT INTO audit_batches (id, sealed_at, leaf_count, leaves, root, signature)
		VALUES (1, '2000-01-01', 1, decode(repeat('11', 32), 'hex'), decode(repeat('22', 32), 'hex'), '\x00')`); err != nil {
		t.Fatal(err)
	}
	tr.write(t, "early", 2)
	chain(t, tr)
	rd, err := store.Read(ctx, audit.StreamStart, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(streamIDs(rd.Events)) != "[early-0 early-1]" {
		t.Fatalf("first read: %v", streamIDs(rd.Events))
	}
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	chain(t, tr)
	rd, err = store.Read(ctx, rd.Next, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(streamIDs(rd.Events)) != "[late-0]" || rd.Events[0].Seal.BatchSeq != 2 || rd.Events[0].Seal.BatchID != 1 {
		t.Fatalf("after the late commit: %v %+v", streamIDs(rd.Events), rd.Events)
	}
}

// Rows retention deleted before delivery are counted as skipped, once,
// and the leaves of duplicates (no row ever) are not.
func TestStreamStoreCountsDeletedRows(t *testing.T) {
	ctx := context.Background()
	tr := newTrail(t)
	store := postgres.NewStreamStore(tr.db)
	tr.write(t, "d", 4)
	// A batch with one new event and one duplicate: a zero leaf.
	if _, err := tr.repo.Write(ctx, []audit.Event{event("d-0"), event("e-0")}); err != nil {
		t.Fatal(err)
	}
	chain(t, tr)
	if _, err := tr.db.ExecContext(ctx, `DELETE FROM audit_logs WHERE id IN ('d-1', 'd-2')`); err != nil {
		t.Fatal(err)
	}
	rd, err := store.Read(ctx, audit.StreamStart, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(streamIDs(rd.Events)) != "[d-0 d-3 e-0]" || rd.Skipped != 2 {
		t.Fatalf("read %v, skipped %d; want 3 events and 2 skipped", streamIDs(rd.Events), rd.Skipped)
	}
}

// One owner at a time: a second instance is refused the lease until it
// expires, cannot advance the cursor, and the state shows the lag.
func TestStreamStoreLeaseAndState(t *testing.T) {
	ctx := context.Background()
	tr := newTrail(t)
	store := postgres.NewStreamStore(tr.db)
	tr.write(t, "l", 3)
	chain(t, tr)
	c, ok, err := store.Claim(ctx, "s1", "one", time.Minute)
	if err != nil || !ok || c != audit.StreamStart {
		t.Fatalf("first claim: %+v %v %v", c, ok, err)
	}
	if _, ok, err := store.Claim(ctx, "s1", "two", time.Minute); err != nil || ok {
		t.Fatalf("second owner got the lease: %v %v", ok, err)
	}
	if err := store.Advance(ctx, "s1", "two", audit.StreamCursor{NextSeq: 2, AfterLeaf: -1}, 3, 0, time.Minute); !errors.Is(err, audit.ErrLeaseLost) {
		t.Fatalf("advance by a non-owner: %v", err)
	}
	if err := store.Fail(ctx, "s1", "one", "sink down", time.Minute); err != nil {
		t.Fatal(err)
	}
	st, err := store.States(ctx)
	if err != nil || len(st) != 1 || st[0].State != "retrying" || st[0].LastError != "sink down" || st[0].LagEvents != 3 ||
		st[0].Failed != 1 || st[0].LagSince.IsZero() {
		t.Fatalf("state after a failure: %+v %v", st, err)
	}
	if err := store.Advance(ctx, "s1", "one", audit.StreamCursor{NextSeq: 1, AfterLeaf: 1}, 2, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	st, _ = store.States(ctx)
	if st[0].State != "active" || st[0].LagEvents != 1 || st[0].Delivered != 2 || st[0].Owner != "one" {
		t.Fatalf("state after delivering 2 of 3: %+v", st[0])
	}
	// An expired lease goes to the next instance, at the stored cursor.
	if _, err := tr.db.ExecContext(ctx, `UPDATE audit_streams SET lease_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if c, ok, err := store.Claim(ctx, "s1", "two", time.Minute); err != nil || !ok || c != (audit.StreamCursor{NextSeq: 1, AfterLeaf: 1}) {
		t.Fatalf("claim after expiry: %+v %v %v", c, ok, err)
	}
}
