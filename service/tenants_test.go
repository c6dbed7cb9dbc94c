package service_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// tenantsConfig is the shipped example of tenants (docs/tenants.md).
const tenantsConfig = "../deploy/nats/auditq-tenants.conf"

// Users of the tenants example: <user>-example is each password.
var (
	acmePublisher   = role{"acme-publisher", "acme-publisher", "acme-publisher-example", "_INBOX_acme_publisher"}
	acmeReader      = role{"acme-reader", "acme-reader", "acme-reader-example", "_INBOX_acme_reader"}
	globexPublisher = role{"globex-publisher", "globex-publisher", "globex-publisher-example", "_INBOX_globex_publisher"}
	globexReader    = role{"globex-reader", "globex-reader", "globex-reader-example", "_INBOX_globex_reader"}
	tenantOperator  = role{"operator", "operator", "operator-example", "_INBOX_operator"}
)

func tenantsEnv(t *testing.T) map[string]string {
	env := servicetest.Env(t)
	env["AUDITQ_NATS_CONFIG"] = tenantsConfig
	env["AUDITQ_TENANTS"] = "true"
	env["AUDITQ_TENANT_UNBOUND_ACCOUNTS"] = "OPERATORS"
	env["AUDITQ_NATS_AUTH_USER"], env["AUDITQ_NATS_AUTH_PASSWORD"] = tenantOperator.user, tenantOperator.password
	return env
}

// publishAs publishes n events with ids prefix-0 ... through JetStream as
// r, waiting for each acknowledgement.
func publishAs(t *testing.T, url string, r role, prefix string, n int) {
	t.Helper()
	rc := connectAs(t, url, r)
	js, err := jetstream.New(rc.nc)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, servicetest.EventJSON(id, "tenant.test")))
	}
	servicetest.PublishAll(t, js, msgs)
}

// TestTenantsPublishIntoTheirOwnTenantOnly: two tenants publish at once on
// audit.log (and a bulk each) through the example; every event is stored
// under its publisher's account, and a tenant that publishes to another
// tenant's subject reaches nothing.
func TestTenantsPublishIntoTheirOwnTenantOnly(t *testing.T) {
	env := tenantsEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	const n = 200
	var wg sync.WaitGroup
	for _, p := range []struct {
		r      role
		prefix string
	}{{acmePublisher, "acme"}, {globexPublisher, "globex"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			publishAs(t, svc.NATSURL(), p.r, p.prefix, n)
		}()
	}
	wg.Wait()

	// A bulk job of acme: its result comes back on acme's own
	// audit.results.bulk (auditq's audit.t.acme.results.bulk), and
	// globex's subscriber sees none of it.
	acme := connectAs(t, svc.NATSURL(), acmePublisher)
	globex := connectAs(t, svc.NATSURL(), globexPublisher)
	acmeResults, err := acme.nc.SubscribeSync(contract.SubjectBulkResults)
	if err != nil {
		t.Fatal(err)
	}
	globexResults, err := globex.nc.SubscribeSync(contract.SubjectBulkResults)
	if err != nil {
		t.Fatal(err)
	}
	if err := acme.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := globex.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(acme.nc)
	bulk := nats.NewMsg(contract.SubjectBulk)
	bulk.Header.Set(nats.MsgIdHdr, "acme-bulk-1")
	bulk.Data = []byte(`{"events":[` + servicetest.EventJSON("acme-bulk-e1", "tenant.bulk") + `,{"action":""}]}`)
	if _, err := js.PublishMsg(context.Background(), bulk); err != nil {
		t.Fatal(err)
	}
	res, err := acmeResults.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("acme's bulk result: %v", err)
	}
	if !strings.Contains(string(res.Data), `"inserted":1`) || res.Header.Get("job_id") != "acme-bulk-1" {
		t.Fatalf("acme's bulk result: %s %v", res.Data, res.Header)
	}

	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		a := servicetest.CountRows(t, db, "tenant = 'acme'")
		g := servicetest.CountRows(t, db, "tenant = 'globex'")
		return a == n+1 && g == n, fmt.Sprintf("acme %d, globex %d rows", a, g)
	})
	if wrong := servicetest.CountRows(t, db, "(id LIKE 'acme-%' AND tenant <> 'acme') OR (id LIKE 'globex-%' AND tenant <> 'globex')"); wrong != 0 {
		t.Fatalf("%d events under the wrong tenant", wrong)
	}
	if m, err := globexResults.NextMsg(200 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("globex received acme's bulk result: %v %v", m, err)
	}

	// acme cannot reach globex's subject: within its account nothing
	// answers audit.t.globex.log, so JetStream never sees the message.
	_, err = js.Publish(context.Background(), "audit.t.globex.log", []byte(servicetest.EventJSON("acme-into-globex", "tenant.spoof")))
	if err == nil {
		t.Fatal("acme published to audit.t.globex.log")
	}
	// Its permissions refuse it first (allow audit.log, audit.bulk only);
	// beyond them, the server refuses an import of another tenant's
	// subject (TestTenantImportOfAnotherTenantIsRefused), so no account
	// has a way there.
	if got := servicetest.CountRows(t, db, "id = 'acme-into-globex'"); got != 0 {
		t.Fatalf("acme-into-globex stored %d times", got)
	}
}

// TestTenantImportOfAnotherTenantIsRefused: an account importing another
// tenant's subject, or auditq exporting a tenant subject to anyone but
// that tenant, stops the start with the rule.
func TestTenantImportOfAnotherTenantIsRefused(t *testing.T) {
	text, err := os.ReadFile(tenantsConfig)
	if err != nil {
		t.Fatal(err)
	}
	// An export overlapping the tenant pattern is refused by auditq, or
	// first by the server itself when its map order makes the overlap
	// refuse a tenant's own import: either way the start stops.
	for _, c := range []struct{ name, old, new, want string }{
		{"import of another tenant", `{service: {account: AUDITQ, subject: audit.t.acme.log}, to: audit.log}`,
			`{service: {account: AUDITQ, subject: audit.t.globex.log}, to: audit.log}`, "audit.t.globex.log"},
		{"export without the token position", `{service: "audit.t.*.log", account_token_position: 3}`,
			`{service: "audit.t.*.log"}`, `rule "a tenant's subjects reach its own account only"`},
		{"an export overlapping the tenants", `{stream: audit.results.>, accounts: [OPERATORS]}`,
			`{stream: audit.results.>, accounts: [OPERATORS]}
      {stream: "audit.t.*.results.>", accounts: [OPERATORS]}`, `overlaps the tenant subjects audit.t.*.results.bulk|stream import not authorized`},
	} {
		t.Run(c.name, func(t *testing.T) {
			broken := strings.Replace(string(text), c.old, c.new, 1)
			if broken == string(text) {
				t.Fatal("the example changed; update this test")
			}
			path := filepath.Join(t.TempDir(), "broken.conf")
			if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
				t.Fatal(err)
			}
			env := tenantsEnv(t)
			env["AUDITQ_NATS_CONFIG"] = path
			_, err := servicetest.TryStart(t, env)
			if err == nil || !slices.ContainsFunc(strings.Split(c.want, "|"), func(w string) bool { return strings.Contains(err.Error(), w) }) {
				t.Fatalf("start: %v, want an error naming %s", err, c.want)
			}
		})
	}
}
