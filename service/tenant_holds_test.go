package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// TestTenantLegalHolds: a hold of acme's user u-held and of globex's
// resource doc:d-held keeps exactly those tenants' rows through a cleanup
// started over NATS; the same user and resource in the other tenants and
// the default one are deleted, the signed deletion records name the tenant
// holds, and the trail verifies.
func TestTenantLegalHolds(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_TENANT_HOLD_USERS"] = "acme:u-held"
	env["AUDITQ_TENANT_HOLD_RESOURCES"] = "globex:doc:d-held"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	at := time.Now().UTC().AddDate(0, 0, -100).Format(time.RFC3339)
	publish := func(r servicetest.Role, prefix string) {
		rc := servicetest.ConnectAs(t, svc.NATSURL(), r)
		js, err := jetstream.New(rc.NC)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []*nats.Msg
		for _, e := range []struct{ id, user, rid string }{
			{"user", "u-held", "d-1"}, {"resource", "u-other", "d-held"}, {"plain", "u-other", "d-1"},
		} {
			id := prefix + "-" + e.id
			body := fmt.Sprintf(`{"id":%q,"userId":%q,"action":"hold.test","resourceType":"doc","resourceId":%q,"timestamp":%q}`, id, e.user, e.rid, at)
			msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, body))
		}
		servicetest.PublishAll(t, js, msgs)
	}
	publish(acmePublisher, "acme")
	publish(globexPublisher, "globex")
	publish(tenantOperator, "default")
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "action = 'hold.test'")
		return n == 9, fmt.Sprintf("%d of 9 events stored", n)
	})

	result := operatorCleanup(t, svc.NATSURL(), `{"retentionDays":90}`)
	var res struct {
		DeletedCount int64 `json:"deletedCount"`
	}
	if err := json.Unmarshal(result, &res); err != nil || res.DeletedCount != 7 {
		t.Fatalf("cleanup result %s (%v): want 7 deleted", result, err)
	}
	var left []string
	if err := db.NewSelect().Table("audit_logs").ColumnExpr("tenant || '/' || id").Where("action = 'hold.test'").
		OrderExpr("1").Scan(context.Background(), &left); err != nil {
		t.Fatal(err)
	}
	if want := "[acme/acme-user globex/globex-resource]"; fmt.Sprint(left) != want {
		t.Errorf("left %v, want %s", left, want)
	}
	var criteria []string
	if err := db.NewSelect().Table("audit_deletions").Column("criteria").Scan(context.Background(), &criteria); err != nil || len(criteria) == 0 {
		t.Fatalf("deletion records %v: %v", criteria, err)
	}
	for _, c := range criteria {
		if !strings.Contains(c, `"tenantHoldResources":{"globex":["doc:d-held"]},"tenantHoldUsers":{"acme":["u-held"]}`) {
			t.Errorf("signed criteria %s lack the tenant holds", c)
		}
	}
	if out, err := runVerify(t, env); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// operatorCleanup asks audit.admin.cleanup with body as the tenant
// operator and returns the cleanup's result.
func operatorCleanup(t *testing.T, url, body string) []byte {
	t.Helper()
	op := servicetest.ConnectAs(t, url, tenantOperator)
	results, err := op.NC.SubscribeSync(contract.SubjectCleanupResults)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	if reply, err := op.NC.Request(contract.SubjectAdminCleanup, []byte(body), 30*time.Second); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(string(reply.Data), `"seq"`) {
		t.Fatalf("audit.admin.cleanup: %s", reply.Data)
	}
	m, err := results.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("cleanup result: %v", err)
	}
	return m.Data
}

// A malformed tenant hold is refused at start (the configuration "auditq
// serve" loads first), naming the setting.
func TestTenantHoldRefusedAtStart(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_TENANT_HOLD_USERS"] = "u-held"
	if _, err := config.Load(func(k string) string { return env[k] }); err == nil ||
		!strings.Contains(err.Error(), `AUDITQ_TENANT_HOLD_USERS: "u-held" must be tenant:userId`) {
		t.Fatalf("start with a tenant hold without tenant: %v", err)
	}
}
