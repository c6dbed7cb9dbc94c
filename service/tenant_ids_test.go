package service_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/client"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// sharedIDs are the event ids every tenant of TestTenantsShareEventIDs
// uses, as two tenants numbering their events would.
var sharedIDs = []string{"evt-1", "evt-2", "evt-3"}

// tenantClient returns a Go client over a connection as r.
func tenantClient(t *testing.T, url string, r servicetest.Role) *client.Client {
	t.Helper()
	c, err := client.New(servicetest.ConnectAs(t, url, r).NC, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkpointedProofAs returns reader's proof of its event id once a
// checkpoint, written by operator, covers it.
func checkpointedProofAs(ctx context.Context, t *testing.T, operator, reader *client.Client, id string) client.Proof {
	t.Helper()
	var p client.Proof
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		if _, err := operator.WriteCheckpoint(ctx); err != nil {
			return false, err.Error()
		}
		var err error
		if p, err = reader.Proof(ctx, id); err != nil {
			return false, err.Error()
		}
		return p.Checkpoint != nil, "no checkpoint covers " + id + " yet"
	})
	return p
}

// randomMsgID is a Nats-Msg-Id as the contract asks of a publisher with
// tenants on: random per publish.
func randomMsgID(tenant, id string) string {
	return fmt.Sprintf("%s-%s-%d", tenant, id, time.Now().UnixNano())
}

// TestTenantsShareEventIDs: acme, globex and the operators (the default
// tenant) publish events of the same ids at once, through the Go client,
// as raw JetStream publishers with a random Nats-Msg-Id per publish, and
// as bulk jobs of the same content; every event is stored once under its
// tenant, each tenant's reader gets its own by id, in searches and as a
// proof that verifies, the operator gets any tenant's by naming it, a
// true re-publish within one tenant is stored once, the counts equal SQL
// and "auditq verify" passes. A publisher that still uses the event id
// as Nats-Msg-Id is told "duplicate" by JetStream when another tenant
// used that id within the stream's duplicate window (docs/tenants.md).
func TestTenantsShareEventIDs(t *testing.T) {
	env := tenantsEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	publishers := map[string]servicetest.Role{"acme": acmePublisher, "globex": globexPublisher, "": tenantOperator}
	var wg sync.WaitGroup
	for tenant, r := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The Go client: a random Nats-Msg-Id per Publish call.
			c := tenantClient(t, svc.NATSURL(), r)
			for _, id := range sharedIDs {
				if _, err := c.Publish(ctx, client.Event{ID: id, UserID: "u-" + tenant, Action: "client.by." + tenant,
					ResourceType: "doc", ResourceID: "d1"}); err != nil {
					t.Errorf("%q: Publish %s: %v", tenant, id, err)
				}
			}
			// Raw publishers and bulk jobs, each with a random Nats-Msg-Id.
			rc := servicetest.ConnectAs(t, svc.NATSURL(), r)
			js, err := jetstream.New(rc.NC)
			if err != nil {
				t.Error(err)
				return
			}
			var msgs []*nats.Msg
			for _, id := range sharedIDs {
				msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, randomMsgID(tenant, id), servicetest.EventJSON("raw-"+id, "raw.by."+tenant)))
			}
			bulk := `{"events":[` + servicetest.EventJSON("bulk-1", "bulk.same") + `,` + servicetest.EventJSON("bulk-2", "bulk.same") + `]}`
			msgs = append(msgs, servicetest.EventMsg(contract.SubjectBulk, randomMsgID(tenant, "bulk"), bulk))
			servicetest.PublishAll(t, js, msgs)
		}()
	}
	wg.Wait()
	perTenant := len(sharedIDs)*2 + 2
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		a, g := servicetest.CountRows(t, db, "tenant = 'acme'"), servicetest.CountRows(t, db, "tenant = 'globex'")
		d := servicetest.CountRows(t, db, "tenant = '' AND (id LIKE 'evt-%' OR id LIKE 'raw-%' OR id LIKE 'bulk-_')")
		return a == perTenant && g == perTenant && d == perTenant, fmt.Sprintf("acme %d, globex %d, default %d rows, want %d each", a, g, d, perTenant)
	})
	if n := servicetest.CountRows(t, db, "id = 'evt-1'"); n != 3 {
		t.Fatalf("evt-1 stored %d times, want once per tenant", n)
	}

	// A true re-publish within one tenant: the Go client again (a new
	// call, a new Nats-Msg-Id) and a raw publish of the same event under
	// yet another Nats-Msg-Id. Stored once.
	acme := tenantClient(t, svc.NATSURL(), acmePublisher)
	if _, err := acme.Publish(ctx, client.Event{ID: "evt-1", UserID: "u-acme", Action: "client.by.acme", ResourceType: "doc", ResourceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	ajs, err := jetstream.New(servicetest.ConnectAs(t, svc.NATSURL(), acmePublisher).NC)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.PublishAll(t, ajs, []*nats.Msg{servicetest.EventMsg(contract.SubjectLog, randomMsgID("acme", "again"), servicetest.EventJSON("raw-evt-1", "raw.by.acme"))})
	// A marker published after them: once it is stored, so are they.
	servicetest.PublishAll(t, ajs, []*nats.Msg{servicetest.EventMsg(contract.SubjectLog, randomMsgID("acme", "marker"), servicetest.EventJSON("marker", "raw.by.acme"))})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "tenant = 'acme' AND id = 'marker'")
		return n == 1, "the marker is not stored yet"
	})
	for _, id := range []string{"evt-1", "raw-evt-1"} {
		if n := servicetest.CountRows(t, db, "tenant = 'acme' AND id = ?", id); n != 1 {
			t.Fatalf("acme's %s stored %d times after its re-publish, want 1", id, n)
		}
	}

	// A naive publisher, Nats-Msg-Id = event id: the stream's duplicate
	// window spans every tenant, so globex's naive-1 after acme's is
	// acknowledged as a duplicate and not stored (the limit that
	// docs/tenants.md states); with its own random Nats-Msg-Id it is.
	gjs, err := jetstream.New(servicetest.ConnectAs(t, svc.NATSURL(), globexPublisher).NC)
	if err != nil {
		t.Fatal(err)
	}
	naive := func(js jetstream.JetStream, msgID string) *jetstream.PubAck {
		return servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg(contract.SubjectLog, msgID, servicetest.EventJSON("naive-1", "naive"))})[0]
	}
	if ack := naive(ajs, "naive-1"); ack.Duplicate {
		t.Fatal("acme's naive-1 taken for a duplicate")
	}
	if ack := naive(gjs, "naive-1"); !ack.Duplicate {
		t.Fatal("globex's naive-1 under acme's Nats-Msg-Id not acknowledged as a duplicate: has the stream's window changed? update docs/tenants.md")
	}
	if ack := naive(gjs, randomMsgID("globex", "naive-1")); ack.Duplicate {
		t.Fatal("globex's naive-1 under a random Nats-Msg-Id taken for a duplicate")
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id = 'naive-1'")
		return n == 2, fmt.Sprintf("naive-1 stored %d times, want once in acme and once in globex", n)
	})

	// Each tenant's reader: its own event of each shared id, by id, in
	// searches and as a proof; naming another tenant is refused.
	op := tenantClient(t, svc.NATSURL(), tenantOperator)
	for tenant, r := range map[string]servicetest.Role{"acme": acmeReader, "globex": globexReader} {
		rc := servicetest.ConnectAs(t, svc.NATSURL(), r)
		c, err := client.New(rc.NC, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := c.PublicKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range sharedIDs {
			ev, err := c.GetEvent(ctx, id)
			if err != nil || ev.Action != "client.by."+tenant || ev.UserID != "u-"+tenant {
				t.Errorf("%s reads %s: %+v, %v", tenant, id, ev.Event, err)
			}
			p := checkpointedProofAs(ctx, t, op, c, id)
			if err := client.VerifyProof(p, keys); err != nil || !strings.Contains(string(p.Canonical), `"action":"client.by.`+tenant+`"`) {
				t.Errorf("%s: proof of %s: %v\n%s", tenant, id, err, p.Canonical)
			}
		}
		// The tenant's published events (its trail also records these
		// reads, docs/tenants.md), every one found by its searches.
		got, _ := allPages(t, rc, "")
		ids := make([]string, 0, len(got))
		for id := range got {
			ids = append(ids, id)
		}
		published := "tenant = ? AND action NOT LIKE 'audit.%'"
		if n, found := servicetest.CountRows(t, db, published, tenant), servicetest.CountRows(t, db, published+" AND id IN (?)", tenant, bun.List(ids)); n == 0 || n != found {
			t.Errorf("%s: %d published rows in SQL, %d of them found by its searches", tenant, n, found)
		}
		for _, id := range append(sharedIDs, "raw-evt-1", "raw-evt-2", "raw-evt-3", "bulk-1", "bulk-2") {
			if tn, ok := got[id]; !ok || tn != tenant {
				t.Errorf("%s's searches: %s found %v, of tenant %q", tenant, id, ok, tn)
			}
		}
		for id, tn := range got {
			if tn != tenant {
				t.Errorf("%s searched %s of tenant %q", tenant, id, tn)
			}
		}
		other := map[string]string{"acme": "globex", "globex": "acme"}[tenant]
		ask(t, rc.NC, contract.SubjectEventGet, `{"id":"evt-1","tenant":"`+other+`"}`).refused(t, "403", "tenant")
		ask(t, rc.NC, contract.SubjectEventProof, `{"id":"evt-1","tenant":""}`).refused(t, "403", "tenant")
	}

	// The operator: the default tenant's event without "tenant", any
	// other tenant's by naming it; a malformed tenant is refused.
	opc := servicetest.ConnectAs(t, svc.NATSURL(), tenantOperator)
	for _, tenant := range []string{"", "acme", "globex"} {
		body := `{"id":"evt-2"}`
		if tenant != "" {
			body = `{"id":"evt-2","tenant":"` + tenant + `"}`
		}
		var ev struct{ Action, Tenant string }
		ask(t, opc.NC, contract.SubjectEventGet, body).into(t, &ev)
		if ev.Tenant != tenant || ev.Action != "client.by."+tenant {
			t.Errorf("operator reads evt-2 of %q: %+v", tenant, ev)
		}
		var proof struct{ Canonical string }
		ask(t, opc.NC, contract.SubjectEventProof, body).into(t, &proof)
		if !strings.Contains(proof.Canonical, `"action":"client.by.`+tenant+`"`) {
			t.Errorf("operator's proof of evt-2 of %q: %s", tenant, proof.Canonical)
		}
	}
	// The Go client's calls for it.
	if ev, err := op.GetTenantEvent(ctx, "globex", "evt-3"); err != nil || ev.Tenant != "globex" || ev.Action != "client.by.globex" {
		t.Errorf("GetTenantEvent(globex, evt-3): %+v, %v", ev, err)
	}
	if p, err := op.TenantProof(ctx, "acme", "evt-3"); err != nil || !strings.Contains(p.Canonical, `"tenant":"acme"`) {
		t.Errorf("TenantProof(acme, evt-3): %v %s", err, p.Canonical)
	}
	ask(t, opc.NC, contract.SubjectEventGet, `{"id":"evt-2","tenant":"no.such"}`).refused(t, "400", "tenant")
	ask(t, opc.NC, contract.SubjectEventGet, `{"id":"evt-2","tenant":"initech"}`).refused(t, "404", "")

	// One chain over every tenant, intact.
	if out, err := runVerify(t, env); err != nil {
		t.Fatalf("auditq verify: %v\n%s", err, out)
	}
}
