package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// retentionFixture stores rows on both sides of cutoff, excluded and held
// ones among them, and returns the ids a cleanup must leave.
func retentionFixture(t *testing.T, db *bun.DB, cutoff time.Time) (survivors []string) {
	t.Helper()
	old := cutoff.Add(-24 * time.Hour)
	ev := func(id, user, action, rtype, rid string, at time.Time) audit.Event {
		e := event(id)
		e.UserID, e.Action, e.ResourceType, e.ResourceID, e.OccurredAt = user, action, rtype, rid, audit.Normalize(at)
		return e
	}
	events := []audit.Event{
		ev("old-plain", "u1", "user.login", "user", "1", old),
		ev("old-system", "", "system.job", "job", "7", old),
		ev("old-same-id-other-type", "u1", "user.update", "user", "42", old),
		ev("old-microsecond-before", "u1", "user.login", "user", "1", cutoff.Add(-time.Microsecond)),
		ev("keep-excluded", "u1", "security.breach", "user", "1", old),
		ev("keep-excluded-2", "u2", "admin.access", "user", "1", old),
		ev("keep-held-user", "u-held", "user.login", "user", "1", old),
		ev("keep-held-resource", "u1", "document.read", "document", "42", old),
		ev("keep-held-resource-colon", "u1", "document.read", "document", "a:b", old),
		ev("keep-at-cutoff", "u1", "user.login", "user", "1", cutoff),
		ev("keep-new", "u1", "user.login", "user", "1", cutoff.Add(time.Hour)),
	}
	// Enough old rows, interleaved in time with excluded ones, to need many
	// chunks and a keyset walk that steps over kept rows.
	for i := range 20 {
		at := old.Add(-time.Duration(i) * time.Minute)
		events = append(events,
			ev(fmt.Sprintf("old-bulk-%02d", i), "u3", "doc.view", "doc", "9", at),
			ev(fmt.Sprintf("keep-bulk-excluded-%02d", i), "u3", "security.breach", "doc", "9", at))
	}
	if _, err := postgres.NewRepository(db).Write(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if len(e.ID) >= 4 && e.ID[:4] == "keep" {
			survivors = append(survivors, e.ID)
		}
	}
	sort.Strings(survivors)
	return survivors
}

func ids(t *testing.T, db *bun.DB) []string {
	t.Helper()
	var out []string
	if err := db.NewSelect().Table("audit_logs").Column("id").Order("id").Scan(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRetentionDeletesExactlyTheExpiredRows(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	cutoff := audit.Normalize(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	survivors := retentionFixture(t, db, cutoff)
	total := len(ids(t, db))
	c := audit.Cleanup{
		Cutoff:         cutoff,
		ExcludeActions: []string{"security.breach", "admin.access"},
		HoldUsers:      []string{"u-held"},
		HoldResources:  []audit.ResourceRef{{Type: "document", ID: "42"}, {Type: "document", ID: "a:b"}},
	}
	r := mustRetention(t, db, postgres.RetentionConfig{Chunk: 3}) // tiny chunks: many statements
	n, err := r.CountExpired(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(total - len(survivors))
	if n != want {
		t.Fatalf("CountExpired = %d, want %d", n, want)
	}
	if got := len(ids(t, db)); got != total {
		t.Fatalf("CountExpired deleted rows: %d left of %d", got, total)
	}
	n, err = r.DeleteExpired(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("DeleteExpired = %d, want %d", n, want)
	}
	if got := ids(t, db); !reflect.DeepEqual(got, survivors) {
		t.Fatalf("survivors:\n got  %v\n want %v", got, survivors)
	}
	// Running it again is harmless.
	if n, err := r.DeleteExpired(ctx, c); err != nil || n != 0 {
		t.Fatalf("second run: %d, %v", n, err)
	}
}

func TestRetentionWithoutExclusionsOrHolds(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	cutoff := audit.Normalize(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	retentionFixture(t, db, cutoff)
	n, err := mustRetention(t, db, postgres.RetentionConfig{}).DeleteExpired(ctx, audit.Cleanup{Cutoff: cutoff})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, db); !reflect.DeepEqual(got, []string{"keep-at-cutoff", "keep-new"}) || n != 49 {
		t.Fatalf("deleted %d, left %v", n, got)
	}
}

func TestRetentionInterruptedRunIsSafeToRepeat(t *testing.T) {
	db := newDB(t)
	cutoff := audit.Normalize(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	survivors := retentionFixture(t, db, cutoff)
	c := audit.Cleanup{
		Cutoff: cutoff, ExcludeActions: []string{"security.breach", "admin.access"}, HoldUsers: []string{"u-held"},
		HoldResources: []audit.ResourceRef{{Type: "document", ID: "42"}, {Type: "document", ID: "a:b"}},
	}
	// Stop after the first chunk: the pause between chunks sees the
	// cancelled context.
	ctx, cancel := context.WithCancel(context.Background())
	r := mustRetention(t, db, postgres.RetentionConfig{Chunk: 4, Pause: time.Hour})
	go func() {
		defer cancel()
		for {
			left, err := db.NewSelect().Table("audit_logs").Count(context.Background())
			if err != nil || int(left) < len(survivors)+24 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	n, err := r.DeleteExpired(ctx, c)
	if !errors.Is(err, context.Canceled) || n < 1 || n >= 24 {
		t.Fatalf("interrupted run: deleted %d, err %v", n, err)
	}
	n2, err := mustRetention(t, db, postgres.RetentionConfig{Chunk: 4}).DeleteExpired(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if n+n2 != 24 {
		t.Fatalf("deleted %d + %d, want 24 in all", n, n2)
	}
	if got := ids(t, db); !reflect.DeepEqual(got, survivors) {
		t.Fatalf("survivors:\n got  %v\n want %v", got, survivors)
	}
}

// A legal hold of one tenant's user or resource keeps exactly that
// tenant's rows: the same user id or resource in another tenant is
// deleted, with and without tenant cutoffs (their parameters come first),
// and each signed deletion record names the tenant holds.
func TestRetentionTenantHoldsKeepOnlyTheirTenant(t *testing.T) {
	for _, withCutoffs := range []bool{false, true} {
		t.Run(fmt.Sprintf("cutoffs=%v", withCutoffs), func(t *testing.T) {
			ctx := context.Background()
			db := newDB(t)
			repo, rec := sealedRepo(t, db)
			cutoff := audit.Normalize(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
			old := cutoff.Add(-48 * time.Hour)
			var events []audit.Event
			for _, tenant := range []string{"", "acme", "globex"} {
				for i, who := range []struct{ user, rtype, rid string }{
					{"u-held", "user", "1"}, {"u-other", "document", "7"}, {"u-other", "document", "8"}, {"u-other", "user", "1"},
				} {
					e := event(fmt.Sprintf("%s-%d", map[string]string{"": "default"}[tenant]+tenant, i))
					e.Tenant, e.UserID, e.ResourceType, e.ResourceID, e.OccurredAt = tenant, who.user, who.rtype, who.rid, old
					events = append(events, e)
				}
			}
			if _, err := repo.Write(ctx, events); err != nil {
				t.Fatal(err)
			}
			c := audit.Cleanup{
				Cutoff: cutoff, ExcludeActions: []string{}, HoldUsers: []string{},
				TenantHoldUsers:     []audit.TenantUser{{Tenant: "acme", UserID: "u-held"}},
				TenantHoldResources: []audit.TenantResource{{Tenant: "globex", Resource: audit.ResourceRef{Type: "document", ID: "7"}}},
			}
			want := []string{"acme-0", "globex-1"}
			if withCutoffs {
				// globex keeps a longer retention: none of its rows are old enough.
				c.TenantCutoffs = []audit.TenantCutoff{{Tenant: "globex", Cutoff: old.Add(-time.Hour)}}
				want = []string{"acme-0", "globex-0", "globex-1", "globex-2", "globex-3"}
			}
			r := mustRetention(t, db, postgres.RetentionConfig{Chunk: 2}).RecordingDeletions(rec)
			n, err := r.CountExpired(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if wantN := int64(len(events) - len(want)); n != wantN {
				t.Fatalf("CountExpired = %d, want %d", n, wantN)
			}
			if got, err := r.DeleteExpired(ctx, c); err != nil || got != n {
				t.Fatalf("DeleteExpired = %d, %v; want %d", got, err, n)
			}
			if got := ids(t, db); !reflect.DeepEqual(got, want) {
				t.Fatalf("left %v, want %v", got, want)
			}
			var criteria []string
			if err := db.NewSelect().Table("audit_deletions").Column("criteria").Scan(ctx, &criteria); err != nil || len(criteria) == 0 {
				t.Fatalf("deletion records: %v, %v", criteria, err)
			}
			for _, crit := range criteria {
				if !strings.Contains(crit, `"tenantHoldResources":{"globex":["document:7"]},"tenantHoldUsers":{"acme":["u-held"]}`) {
					t.Fatalf("signed criteria %s lack the tenant holds", crit)
				}
			}
		})
	}
}
