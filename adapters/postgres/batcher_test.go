package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

func TestBatcherGroupsConcurrentWritesAndSplitsCounts(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	if _, err := repo.Write(ctx, []audit.Event{event("w7-0")}); err != nil { // stored before: a duplicate
		t.Fatal(err)
	}
	var sizes []int
	var mu sync.Mutex
	b := mustBatcher(t, repo, postgres.BatcherConfig{MaxEvents: 50, MaxDelay: 20 * time.Millisecond, Flushers: 2,
		Observe: func(evs []audit.Event) { mu.Lock(); sizes = append(sizes, len(evs)); mu.Unlock() }})
	defer func() { _ = b.Close() }()

	const writers = 40
	results := make([]audit.WriteResult, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			evs := []audit.Event{event(fmt.Sprintf("w%d-0", w)), event(fmt.Sprintf("w%d-1", w))}
			results[w], errs[w] = b.Write(ctx, evs)
		})
	}
	wg.Wait()
	for w := range writers {
		if errs[w] != nil {
			t.Fatalf("writer %d: %v", w, errs[w])
		}
		want := audit.WriteResult{Inserted: 2}
		if w == 7 {
			want = audit.WriteResult{Inserted: 1, Duplicates: 1}
		}
		if results[w] != want {
			t.Errorf("writer %d: %+v, want %+v", w, results[w], want)
		}
	}
	n, err := db.NewSelect().Table("audit_logs").Count(ctx)
	if err != nil || n != 2*writers {
		t.Fatalf("rows = %d (%v), want %d", n, err, 2*writers)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) >= writers {
		t.Fatalf("no grouping: %d flushes for %d writes (%v)", len(sizes), writers, sizes)
	}
}

func TestBatcherIsolatesAPermanentFailure(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	b := mustBatcher(t, postgres.NewRepository(db), postgres.BatcherConfig{MaxEvents: 100, MaxDelay: 50 * time.Millisecond})
	defer func() { _ = b.Close() }()
	bad := event("bad")
	bad.Action = "nul\x00"
	var wg sync.WaitGroup
	var goodErr, badErr error
	wg.Go(func() { _, goodErr = b.Write(ctx, []audit.Event{event("good-1"), event("good-2")}) })
	wg.Go(func() { _, badErr = b.Write(ctx, []audit.Event{bad}) })
	wg.Wait()
	if goodErr != nil {
		t.Fatalf("a good write failed with its batch: %v", goodErr)
	}
	if !audit.IsPermanent(badErr) {
		t.Fatalf("bad write: %v, want a permanent error", badErr)
	}
	n, err := db.NewSelect().Table("audit_logs").Count(ctx)
	if err != nil || n != 2 {
		t.Fatalf("rows = %d (%v), want 2", n, err)
	}
}

// WriteEach gives each event its own write: a duplicate and a row the
// database refuses get their own results, the other events are committed,
// and more events than MaxEvents are split over several flushes.
func TestBatcherWriteEachSettlesEachEvent(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	if _, err := repo.Write(ctx, []audit.Event{event("each-3")}); err != nil { // stored before: a duplicate
		t.Fatal(err)
	}
	var sizes []int
	var mu sync.Mutex
	b := mustBatcher(t, repo, postgres.BatcherConfig{MaxEvents: 4, Flushers: 1,
		Observe: func(evs []audit.Event) { mu.Lock(); sizes = append(sizes, len(evs)); mu.Unlock() }})
	defer func() { _ = b.Close() }()
	events := make([]audit.Event, 10)
	for i := range events {
		events[i] = event(fmt.Sprintf("each-%d", i))
	}
	events[6].Action = "nul\x00"
	results, errs := b.WriteEach(ctx, events)
	for i := range events {
		want := audit.WriteResult{Inserted: 1}
		switch i {
		case 3:
			want = audit.WriteResult{Duplicates: 1}
		case 6:
			if !audit.IsPermanent(errs[i]) {
				t.Errorf("event 6: %v, want a permanent error", errs[i])
			}
			continue
		}
		if errs[i] != nil || results[i] != want {
			t.Errorf("event %d: %+v, %v; want %+v", i, results[i], errs[i], want)
		}
	}
	n, err := db.NewSelect().Table("audit_logs").Count(ctx)
	if err != nil || n != 9 {
		t.Fatalf("rows = %d (%v), want 9", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range sizes {
		if s > 4 {
			t.Fatalf("a flush of %d events, more than MaxEvents 4 (%v)", s, sizes)
		}
	}
}
