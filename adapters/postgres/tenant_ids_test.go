package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// tenantEvent is event(id) of tenant, with an action naming the tenant so
// that a read shows whose event it got.
func tenantEvent(tenant, id string) audit.Event {
	e := event(id)
	e.Tenant, e.Action = tenant, "by."+tenant
	if tenant == audit.DefaultTenant {
		e.Action = "by.default"
	}
	return e
}

// An event is its (tenant, id): the same id in two tenants is two events,
// on the direct COPY path and on the staged one, while an id repeated
// within a tenant is a duplicate; each is read back by its tenant and id.
func TestEventIDsAreUniquePerTenant(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	repo := postgres.NewRepository(db)
	// The direct path: no row conflicts with a stored one.
	res, err := repo.Write(ctx, []audit.Event{tenantEvent("", "evt-1"), tenantEvent("acme", "evt-1"), tenantEvent("globex", "evt-1")})
	if err != nil || res != (audit.WriteResult{Inserted: 3}) {
		t.Fatalf("three tenants, one id: %+v, %v", res, err)
	}
	// The staged path: acme's evt-1 again (also twice within the batch),
	// beside new events of the same id in another tenant and of new ids.
	res, err = repo.Write(ctx, []audit.Event{
		tenantEvent("acme", "evt-1"), tenantEvent("initech", "evt-1"), tenantEvent("acme", "evt-1"),
		tenantEvent("acme", "evt-2"), tenantEvent("initech", "evt-2"),
	})
	if err != nil || res != (audit.WriteResult{Inserted: 3, Duplicates: 2}) {
		t.Fatalf("redelivery among new events: %+v, %v", res, err)
	}
	ins, err := repo.WriteReturning(ctx, []audit.Event{tenantEvent("globex", "evt-1"), tenantEvent("globex", "evt-2"), tenantEvent("", "evt-1")})
	if err != nil || len(ins) != 1 || ins[0] != 1 {
		t.Fatalf("WriteReturning: %v, %v; want [1]", ins, err)
	}
	for _, c := range []struct{ tenant, id, action string }{
		{"", "evt-1", "by.default"}, {"acme", "evt-1", "by.acme"}, {"globex", "evt-1", "by.globex"},
		{"initech", "evt-1", "by.initech"}, {"acme", "evt-2", "by.acme"}, {"globex", "evt-2", "by.globex"},
	} {
		got, err := repo.Get(ctx, c.tenant, c.id)
		if err != nil || got.Tenant != c.tenant || got.ID != c.id || got.Action != c.action {
			t.Errorf("Get(%q, %q) = %s of %q, %v", c.tenant, c.id, got.Action, got.Tenant, err)
		}
	}
	if _, err := repo.Get(ctx, "", "evt-2"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("the default tenant's evt-2: %v, want ErrNotFound", err)
	}
	if n, err := db.NewSelect().Table("audit_logs").Count(ctx); err != nil || n != 7 {
		t.Fatalf("%d rows, want 7: %v", n, err)
	}
}

// A cleanup deletes the expired event of one tenant, never another
// tenant's event of the same id, which its own cutoff keeps.
func TestRetentionDeletesByTenantAndID(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	cutoff := audit.Normalize(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
	old, recent := tenantEvent("acme", "evt-1"), tenantEvent("globex", "evt-1")
	old.OccurredAt, recent.OccurredAt = cutoff.Add(-48*time.Hour), cutoff.Add(-time.Hour)
	if _, err := postgres.NewRepository(db).Write(ctx, []audit.Event{old, recent}); err != nil {
		t.Fatal(err)
	}
	// globex keeps a day longer: its evt-1 is within its retention.
	c := audit.Cleanup{Cutoff: cutoff, ExcludeActions: []string{}, HoldUsers: []string{},
		TenantCutoffs: []audit.TenantCutoff{{Tenant: "globex", Cutoff: cutoff.Add(-24 * time.Hour)}}}
	n, err := mustRetention(t, db, postgres.RetentionConfig{}).DeleteExpired(ctx, c)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	var left []string
	if err := db.NewSelect().Table("audit_logs").Column("tenant").Scan(ctx, &left); err != nil || len(left) != 1 || left[0] != "globex" {
		t.Fatalf("left %v, %v; want globex's evt-1 only", left, err)
	}
}
