package service_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/client"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service"
	"github.com/auditq/auditq/service/servicetest"
)

// bulkEvents are n events with ids prefix-0 ...
func bulkEvents(prefix string, n int) []client.Event {
	out := make([]client.Event, n)
	for i := range out {
		out[i] = client.Event{ID: fmt.Sprintf("%s-%d", prefix, i), Action: "bulk.role", ResourceType: "doc", ResourceID: fmt.Sprint(i)}
	}
	return out
}

// publishBulkAs runs client.PublishBulk as r with the service's default
// rules (which take more events than a service with
// AUDITQ_BULK_MAX_EVENTS=5), within wait.
func publishBulkAs(t *testing.T, rc *servicetest.RoleConn, events []client.Event, wait time.Duration) (client.BulkResult, error) {
	t.Helper()
	c, err := client.New(rc.NC, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return c.PublishBulk(ctx, events)
}

// asRole is env with the client commands logging in as r.
func asRole(env map[string]string, r servicetest.Role) map[string]string {
	e := maps.Clone(env)
	e["AUDITQ_NATS_AUTH_USER"], e["AUDITQ_NATS_AUTH_PASSWORD"], e["AUDITQ_NATS_INBOX_PREFIX"] = r.User, r.Password, r.Inbox
	return e
}

// cliPublishBulk runs auditq publish -file of a bulk of n events as r.
func cliPublishBulk(t *testing.T, env map[string]string, svc *service.Service, r servicetest.Role, prefix string, n int) (string, error) {
	t.Helper()
	var events []string
	for i := range n {
		events = append(events, servicetest.EventJSON(fmt.Sprintf("%s-%d", prefix, i), "bulk.cli"))
	}
	path := filepath.Join(t.TempDir(), "bulk.json")
	if err := os.WriteFile(path, []byte(`{"events":[`+strings.Join(events, ",")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return runCLI(t, asRole(env, r), svc, "publish", "-file", path, "-timeout", "20s")
}

// TestPublisherRoleWaitsForItsBulkResult: on the roles example, the
// publisher role's PublishBulk gets its result, and a rejection as a whole,
// with no permission error from the server (it reads only
// audit.results.bulk); a job published again is a duplicate it is told
// about; auditq publish of a bulk file prints the result; the operator's
// commands erase and poison are refused to it with the server's
// permission error.
func TestPublisherRoleWaitsForItsBulkResult(t *testing.T) {
	env := rolesEnv(t)
	env["AUDITQ_BULK_MAX_EVENTS"] = "5"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	pub := servicetest.ConnectAs(t, svc.NATSURL(), servicetest.Publisher)

	res, err := publishBulkAs(t, pub, bulkEvents("pb", 3), 30*time.Second)
	if err != nil || res.Inserted != 3 || res.Total != 3 || !slices.Equal(res.IDs, []string{"pb-0", "pb-1", "pb-2"}) {
		t.Fatalf("PublishBulk as the publisher: %+v, %v", res, err)
	}
	if n := servicetest.CountRows(t, db, "id LIKE 'pb-%'"); n != 3 {
		t.Fatalf("%d rows of the bulk, want 3", n)
	}
	_, err = publishBulkAs(t, pub, bulkEvents("six", 6), 30*time.Second)
	if err == nil || !strings.HasSuffix(err.Error(), " rejected as a whole: events: holds 6 events, more than the limit of 5") {
		t.Fatalf("PublishBulk of six events to a service taking five: %v", err)
	}
	if errs := pub.Errors(); len(errs) != 0 {
		t.Fatalf("the server refused the publisher's PublishBulk something: %q", errs)
	}
	// The same events again: another job (each call has a Nats-Msg-Id of
	// its own), whose result counts them as duplicates.
	if res, err := publishBulkAs(t, pub, bulkEvents("pb", 3), 30*time.Second); err != nil || res.Inserted != 0 || res.Duplicates != 3 {
		t.Fatalf("the same bulk again: %+v, %v", res, err)
	}
	if n := servicetest.CountRows(t, db, "id LIKE 'pb-%'"); n != 3 {
		t.Fatalf("%d rows of the bulk after its duplicate, want 3", n)
	}

	out, err := cliPublishBulk(t, env, svc, servicetest.Publisher, "pcli", 2)
	if err != nil || !strings.Contains(out, ": 2 events: 2 inserted, 0 duplicates, 0 rejected") {
		t.Fatalf("auditq publish of a bulk file as the publisher: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args    []string
		subject string
	}{
		{[]string{"erase", "--user", "u-1", "--timeout", "2s"}, contract.SubjectAdminErase},
		{[]string{"poison", "list"}, contract.SubjectAdminPoisonList},
	} {
		_, err := runCLI(t, asRole(env, servicetest.Publisher), svc, c.args...)
		if err == nil || !strings.Contains(err.Error(), "refused by the NATS server") ||
			!strings.Contains(err.Error(), `Permissions Violation for Publish to "`+c.subject+`"`) {
			t.Errorf("publisher: %v: %v, want the server's permission error", c.args, err)
		}
	}
}

// TestTenantPublishersWaitForTheirOwnBulkResults: on the tenants example,
// two tenants' publishers run PublishBulk at once; each gets its own result
// (and its rejection as a whole) through its own account's
// audit.results.bulk, never the other's, with no permission error; auditq
// publish of a bulk file as a tenant's publisher prints its result.
func TestTenantPublishersWaitForTheirOwnBulkResults(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_BULK_MAX_EVENTS"] = "5"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	conns := map[string]*servicetest.RoleConn{
		"acme": servicetest.ConnectAs(t, svc.NATSURL(), acmePublisher), "globex": servicetest.ConnectAs(t, svc.NATSURL(), globexPublisher),
	}
	seen := map[string]*nats.Subscription{}
	for tenant, rc := range conns {
		sub, err := rc.NC.SubscribeSync(contract.SubjectBulkResults)
		if err != nil {
			t.Fatal(err)
		}
		seen[tenant] = sub
	}
	type outcome struct {
		tenant string
		res    client.BulkResult
		err    error
	}
	done := make(chan outcome, 2)
	for tenant, rc := range conns {
		go func() {
			res, err := publishBulkAs(t, rc, bulkEvents(tenant+"-pb", 4), 30*time.Second)
			done <- outcome{tenant, res, err}
		}()
	}
	jobs := map[string]string{}
	for range 2 {
		o := <-done
		if o.err != nil || o.res.Inserted != 4 {
			t.Fatalf("%s: PublishBulk: %+v, %v", o.tenant, o.res, o.err)
		}
		jobs[o.tenant] = o.res.ID
		if n := servicetest.CountRows(t, db, "id LIKE ? AND tenant = ?", o.tenant+"-pb-%", o.tenant); n != 4 {
			t.Errorf("%s: %d of its 4 events stored under its tenant", o.tenant, n)
		}
	}
	other := map[string]string{"acme": "globex", "globex": "acme"}
	for tenant, sub := range seen {
		for {
			m, err := sub.NextMsg(500 * time.Millisecond)
			if err != nil {
				break
			}
			if m.Header.Get("job_id") == jobs[other[tenant]] {
				t.Errorf("%s received %s's bulk result", tenant, other[tenant])
			}
		}
	}
	if _, err := publishBulkAs(t, conns["acme"], bulkEvents("acme-six", 6), 30*time.Second); err == nil ||
		!strings.HasSuffix(err.Error(), " rejected as a whole: events: holds 6 events, more than the limit of 5") {
		t.Fatalf("acme: PublishBulk of six events to a service taking five: %v", err)
	}
	for tenant, rc := range conns {
		if errs := rc.Errors(); len(errs) != 0 {
			t.Errorf("%s: the server refused its PublishBulk something: %q", tenant, errs)
		}
	}
	out, err := cliPublishBulk(t, env, svc, globexPublisher, "globex-cli", 2)
	if err != nil || !strings.Contains(out, ": 2 events: 2 inserted, 0 duplicates, 0 rejected") {
		t.Fatalf("auditq publish of a bulk file as globex's publisher: %v\n%s", err, out)
	}
	if n := servicetest.CountRows(t, db, "id LIKE 'globex-cli-%' AND tenant = 'globex'"); n != 2 {
		t.Fatalf("%d of globex's 2 events from auditq publish", n)
	}
}
