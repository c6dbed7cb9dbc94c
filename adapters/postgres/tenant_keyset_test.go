package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// tiedTenants are the tenants of tiedEvents: the default one and two more.
var tiedTenants = []string{"", "acme", "globex"}

// tiedEvents are events of every tenant of tiedTenants with the ids tie-1
// to tie-n, all at the same microsecond: each (time, id) is shared by
// three events, which only the tenant tells apart.
func tiedEvents(n int) []audit.Event {
	var out []audit.Event
	for i := 1; i <= n; i++ {
		for _, tn := range tiedTenants {
			out = append(out, tenantEvent(tn, fmt.Sprintf("tie-%d", i)))
		}
	}
	return out
}

// key is an event as a search over every tenant tells it apart.
func key(e audit.Event) string { return e.Tenant + "/" + e.ID }

// pageAll reads every page of f through read, limit events a page, each
// continuing after the last event of the previous one, and returns the
// events' keys in the order read.
func pageAll(t *testing.T, read func(context.Context, audit.SearchFilter) ([]audit.Event, error), f audit.SearchFilter, limit int) []string {
	t.Helper()
	f.Limit = limit
	var got []string
	for range 100 {
		page, err := read(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, key(e))
		}
		if len(page) < limit {
			return got
		}
		last := page[len(page)-1]
		tn := last.Tenant
		f.After = &audit.Position{OccurredAt: last.OccurredAt, ID: last.ID, Tenant: &tn}
	}
	t.Fatal("more than 100 pages")
	return nil
}

// A search and an export over every tenant page through events of three
// tenants that share their ids and their time, returning each exactly
// once, newest first by (time, id, tenant), whatever the page size; a
// position without a tenant (a cursor issued before positions had one)
// continues, as it did, after every tenant's event of its time and id.
func TestSearchOverEveryTenantPagesThroughSharedIDs(t *testing.T) {
	ctx := context.Background()
	repo := postgres.NewRepository(newDB(t))
	events := append(tiedEvents(3), tenantEvent("acme", "tie-0"))
	events[len(events)-1].OccurredAt = events[0].OccurredAt.Add(-time.Second)
	if _, err := repo.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"globex/tie-3", "acme/tie-3", "/tie-3", "globex/tie-2", "acme/tie-2", "/tie-2",
		"globex/tie-1", "acme/tie-1", "/tie-1", "acme/tie-0",
	}
	for _, read := range []struct {
		name string
		fn   func(context.Context, audit.SearchFilter) ([]audit.Event, error)
	}{{"search", repo.Search}, {"export", repo.ExportPage}} {
		for _, limit := range []int{1, 2, 3, 4, 100} {
			if got := pageAll(t, read.fn, audit.SearchFilter{}, limit); !slices.Equal(got, want) {
				t.Errorf("%s, pages of %d:\n got  %v\n want %v", read.name, limit, got, want)
			}
		}
		// A filter on top (the plan walks the index the same way).
		f := audit.SearchFilter{Action: "by.", ActionPrefix: true}
		if got := pageAll(t, read.fn, f, 2); !slices.Equal(got, want) {
			t.Errorf("%s, action prefix, pages of 2:\n got  %v\n want %v", read.name, got, want)
		}
		// One tenant's search: its events, in (time, id) order.
		acme := "acme"
		if got := pageAll(t, read.fn, audit.SearchFilter{Tenant: &acme}, 1); !slices.Equal(got, []string{"acme/tie-3", "acme/tie-2", "acme/tie-1", "acme/tie-0"}) {
			t.Errorf("%s of acme, pages of 1: %v", read.name, got)
		}
		// A position without a tenant: after all three events of tie-3.
		old := audit.SearchFilter{Limit: 100, After: &audit.Position{OccurredAt: events[0].OccurredAt, ID: "tie-3"}}
		page, err := read.fn(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(page))
		for i, e := range page {
			got[i] = key(e)
		}
		if !slices.Equal(got, want[3:]) {
			t.Errorf("%s after a position without tenant:\n got  %v\n want %v", read.name, got, want[3:])
		}
	}
}

// A cleanup whose chunks end among events of several tenants sharing a
// time and an id deletes every one of them in one run.
func TestRetentionChunksThroughSharedIDs(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	events := tiedEvents(3)
	for _, chunk := range []int{1, 2} {
		if _, err := repo.Write(ctx, events); err != nil {
			t.Fatal(err)
		}
		r := mustRetention(t, db, postgres.RetentionConfig{Chunk: chunk})
		n, err := r.DeleteExpired(ctx, audit.Cleanup{Cutoff: events[0].OccurredAt.Add(time.Second)})
		if err != nil || n != int64(len(events)) {
			t.Errorf("chunks of %d: deleted %d, %v; want all %d in one run", chunk, n, err, len(events))
		}
		if left := ids(t, db); len(left) != 0 {
			t.Errorf("chunks of %d: left %v", chunk, left)
		}
	}
}

// A page of a search or an export over every tenant walks the time index
// and sorts nothing, with or without a position to continue from: the
// plans have no Sort or Incremental Sort node (at 20,000 rows, with
// sequential scans off so that the table's size does not decide).
func TestPageOverEveryTenantSortsNothing(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if _, err := db.ExecContext(ctx, `INSERT INTO audit_logs (id, action, resource_type, resource_id, occurred_at, received_at)
		SELECT 'ev-' || g, 'doc.read', 'doc', g::text, timestamptz '2026-11-01' + g * interval '1 second', now()
		FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `ANALYZE audit_logs`); err != nil {
		t.Fatal(err)
	}
	repo := postgres.NewRepository(db)
	tn := ""
	at := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	for _, f := range []audit.SearchFilter{
		{Limit: 100},
		{Limit: 1000, After: &audit.Position{OccurredAt: at, ID: "ev-10800", Tenant: &tn}},
		{Limit: 1000, After: &audit.Position{OccurredAt: at, ID: "ev-10800"}},
	} {
		search, export, args := repo.PageQueries(f)
		for _, q := range []struct {
			name, sql string
			args      []any
		}{{"search", search, nil}, {"export", export, args}} {
			plan := explain(t, db, q.sql, q.args...)
			if strings.Contains(plan, "Sort") || !strings.Contains(plan, "audit_logs_occurred_at_idx") {
				t.Errorf("%s of %+v sorts or leaves the time index:\n%s", q.name, f, plan)
			}
		}
	}
}

// explain returns the plan of query with args (positional, $1...),
// sequential scans off.
func explain(t *testing.T, db *bun.DB, query string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, `EXPLAIN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}
