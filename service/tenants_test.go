package service_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/client"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// tenantsConfig is the shipped example of tenants (docs/tenants.md).
const tenantsConfig = "../deploy/nats/auditq-tenants.conf"

// Users of the tenants example: <user>-example is each password.
var (
	acmePublisher   = servicetest.Role{Name: "acme-publisher", User: "acme-publisher", Password: "acme-publisher-example", Inbox: "_INBOX_acme_publisher"}
	acmeReader      = servicetest.Role{Name: "acme-reader", User: "acme-reader", Password: "acme-reader-example", Inbox: "_INBOX_acme_reader"}
	globexPublisher = servicetest.Role{Name: "globex-publisher", User: "globex-publisher", Password: "globex-publisher-example", Inbox: "_INBOX_globex_publisher"}
	globexReader    = servicetest.Role{Name: "globex-reader", User: "globex-reader", Password: "globex-reader-example", Inbox: "_INBOX_globex_reader"}
	tenantOperator  = servicetest.Role{Name: "operator", User: "operator", Password: "operator-example", Inbox: "_INBOX_operator"}
)

func tenantsEnv(t *testing.T) map[string]string {
	env := servicetest.Env(t)
	env["AUDITQ_NATS_CONFIG"] = tenantsConfig
	env["AUDITQ_TENANTS"] = "true"
	env["AUDITQ_TENANT_UNBOUND_ACCOUNTS"] = "OPERATORS"
	env["AUDITQ_NATS_AUTH_USER"], env["AUDITQ_NATS_AUTH_PASSWORD"] = tenantOperator.User, tenantOperator.Password
	return env
}

// publishAs publishes n events with ids prefix-0 ... through JetStream as
// r, waiting for each acknowledgement.
func publishAs(t *testing.T, url string, r servicetest.Role, prefix string, n int) {
	t.Helper()
	var msgs []*nats.Msg
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, servicetest.EventJSON(id, "tenant.test")))
	}
	publishMsgsAs(t, url, r, msgs)
}

// publishMsgsAs publishes msgs through JetStream as r, waiting for each
// acknowledgement.
func publishMsgsAs(t *testing.T, url string, r servicetest.Role, msgs []*nats.Msg) {
	t.Helper()
	js, err := jetstream.New(servicetest.ConnectAs(t, url, r).NC)
	if err != nil {
		t.Fatal(err)
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
		r      servicetest.Role
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
	acme := servicetest.ConnectAs(t, svc.NATSURL(), acmePublisher)
	globex := servicetest.ConnectAs(t, svc.NATSURL(), globexPublisher)
	acmeResults, err := acme.NC.SubscribeSync(contract.SubjectBulkResults)
	if err != nil {
		t.Fatal(err)
	}
	globexResults, err := globex.NC.SubscribeSync(contract.SubjectBulkResults)
	if err != nil {
		t.Fatal(err)
	}
	if err := acme.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := globex.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(acme.NC)
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

	// A payload naming a tenant is refused whole (tenant: unknown field),
	// never stored under its own tenant or the one it names.
	bad := `{"id":"acme-claims-globex","action":"tenant.spoof","resourceType":"doc","resourceId":"d1","tenant":"globex"}`
	if _, err := js.Publish(context.Background(), contract.SubjectLog, []byte(bad)); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.Metric(t, svc.HTTPAddr(), `auditq_events_rejected_total{handler="audit.log"}`)
		return n == 1, fmt.Sprintf("%v events rejected", n)
	})
	if got := servicetest.CountRows(t, db, "id = 'acme-claims-globex'"); got != 0 {
		t.Fatalf("acme-claims-globex stored %d times", got)
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

// into decodes a successful answer into v.
func (a answer) into(t *testing.T, v any) {
	t.Helper()
	if a.code != "" {
		t.Fatalf("answered %s: %s", a.code, a.data)
	}
	if err := json.Unmarshal(a.data, v); err != nil {
		t.Fatalf("decode %s: %v", a.data, err)
	}
}

// refused checks an error answer's code and field.
func (a answer) refused(t *testing.T, code, field string) {
	t.Helper()
	var e struct{ Code, Error, Field string }
	_ = json.Unmarshal(a.data, &e)
	if a.code != code || e.Field != field {
		t.Fatalf("answered %q %s, want %s naming %q", a.code, a.data, code, field)
	}
}

type page struct {
	Events []struct {
		ID     string `json:"id"`
		Tenant string `json:"tenant"`
	} `json:"events"`
	NextCursor *string `json:"nextCursor"`
}

// allPages runs a query of filter (a JSON object's members, may be
// empty) page by page, limit 7, and returns every id with its tenant and
// the first page's cursor.
func allPages(t *testing.T, rc *servicetest.RoleConn, filter string) (map[string]string, string) {
	t.Helper()
	out := map[string]string{}
	first, cursor := "", ""
	for range 100 {
		body := `{"limit":7` + filter
		if cursor != "" {
			body += `,"cursor":"` + cursor + `"`
		}
		var p page
		ask(t, rc.NC, contract.SubjectQuery, body+`}`).into(t, &p)
		for _, e := range p.Events {
			out[e.ID] = e.Tenant
		}
		if p.NextCursor == nil {
			return out, first
		}
		cursor = *p.NextCursor
		if first == "" {
			first = cursor
		}
	}
	t.Fatal("more than 100 pages")
	return nil, ""
}

// TestTenantReadersSeeOnlyTheirOwnTenant: acme and globex publish at
// once; each tenant's reader, on every endpoint it may ask, gets its own
// tenant's events, proofs and reports only, including with cursors,
// report ids and event ids taken from the other tenant; the operator
// reads any tenant or all.
func TestTenantReadersSeeOnlyTheirOwnTenant(t *testing.T) {
	env := tenantsEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	counts := map[string]int{"acme": 30, "globex": 20}
	var wg sync.WaitGroup
	for tenant, r := range map[string]servicetest.Role{"acme": acmePublisher, "globex": globexPublisher} {
		wg.Add(1)
		go func() { defer wg.Done(); publishAs(t, svc.NATSURL(), r, tenant, counts[tenant]) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); publishAs(t, svc.NATSURL(), tenantOperator, "default", 5) }()
	wg.Wait()
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		a, g := servicetest.CountRows(t, db, "tenant = 'acme'"), servicetest.CountRows(t, db, "tenant = 'globex'")
		d := servicetest.CountRows(t, db, "id LIKE 'default-%' AND tenant = ''")
		return a == 30 && g == 20 && d == 5, fmt.Sprintf("acme %d, globex %d, default %d", a, g, d)
	})

	readers := map[string]servicetest.Role{"acme": acmeReader, "globex": globexReader}
	conns := map[string]*servicetest.RoleConn{}
	for tenant, r := range readers {
		conns[tenant] = servicetest.ConnectAs(t, svc.NATSURL(), r)
	}
	other := map[string]string{"acme": "globex", "globex": "acme"}
	firstCursor := map[string]string{}
	for tenant := range readers {
		rc := conns[tenant]
		// audit.query, every page: own events only, each naming its tenant
		// (of action tenant.test: the reads of its trail are its too).
		got, cursor := allPages(t, rc, `,"action":"tenant.test"`)
		if len(got) != counts[tenant] {
			t.Errorf("%s: %d events, want %d", tenant, len(got), counts[tenant])
		}
		for id, tn := range got {
			if !strings.HasPrefix(id, tenant+"-") || tn != tenant {
				t.Errorf("%s read %s of tenant %q", tenant, id, tn)
			}
		}
		firstCursor[tenant] = cursor
		// Naming its own tenant is the same; another is refused.
		if own, _ := allPages(t, rc, `,"action":"tenant.test","tenant":"`+tenant+`"`); len(own) != counts[tenant] {
			t.Errorf("%s with its own tenant: %d events", tenant, len(own))
		}
		ask(t, rc.NC, contract.SubjectQuery, `{"tenant":"`+other[tenant]+`"}`).refused(t, "403", "tenant")
		ask(t, rc.NC, contract.SubjectQuery, `{"tenant":""}`).refused(t, "403", "tenant")
		// Another tenant's event: as absent as none, for the event and its proof.
		ask(t, rc.NC, contract.SubjectEventGet, `{"id":"`+other[tenant]+`-0"}`).refused(t, "404", "")
		ask(t, rc.NC, contract.SubjectEventProof, `{"id":"`+other[tenant]+`-0"}`).refused(t, "404", "")
		ask(t, rc.NC, contract.SubjectEventGet, `{"id":"default-0"}`).refused(t, "404", "")
		var ev struct{ ID, Tenant string }
		ask(t, rc.NC, contract.SubjectEventGet, `{"id":"`+tenant+`-0"}`).into(t, &ev)
		if ev.Tenant != tenant {
			t.Errorf("%s: own event has tenant %q", tenant, ev.Tenant)
		}
		// The proof of its own event covers its tenant.
		var proof struct{ Canonical string }
		servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
			a := ask(t, rc.NC, contract.SubjectEventProof, `{"id":"`+tenant+`-0"}`)
			return a.code == "", fmt.Sprintf("proof: %s %s", a.code, a.data)
		})
		ask(t, rc.NC, contract.SubjectEventProof, `{"id":"`+tenant+`-0"}`).into(t, &proof)
		if !strings.Contains(proof.Canonical, `"tenant":"`+tenant+`"`) {
			t.Errorf("%s: the proof's canonical event does not name its tenant: %s", tenant, proof.Canonical)
		}
	}
	// Cursors: the other tenant's cursor, replayed, is refused; one forged
	// to name its own tenant but point among the other's events still
	// reads its own tenant only.
	for tenant := range readers {
		rc := conns[tenant]
		ask(t, rc.NC, contract.SubjectQuery, `{"cursor":"`+firstCursor[other[tenant]]+`"}`).refused(t, "400", "cursor")
		forged := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2100-01-01T00:00:00Z","id":"` + other[tenant] + `-9","tn":"` + tenant + `"}`))
		var p page
		ask(t, rc.NC, contract.SubjectQuery, `{"limit":1000,"action":"tenant.test","cursor":"`+forged+`"}`).into(t, &p)
		for _, e := range p.Events {
			if e.Tenant != tenant {
				t.Errorf("%s with a forged cursor read %s of %q", tenant, e.ID, e.Tenant)
			}
		}
		if len(p.Events) != counts[tenant] {
			t.Errorf("%s with a forged cursor: %d events, want %d", tenant, len(p.Events), counts[tenant])
		}
		noTenant := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2100-01-01T00:00:00Z","id":"x"}`))
		ask(t, rc.NC, contract.SubjectQuery, `{"cursor":"`+noTenant+`"}`).refused(t, "400", "cursor")
	}

	// The operator reads every tenant, or one.
	op := servicetest.ConnectAs(t, svc.NATSURL(), tenantOperator)
	all, _ := allPages(t, op, `,"action":"tenant.test"`)
	if len(all) != 55 {
		t.Errorf("operator: %d events, want 55", len(all))
	}
	for tenant, n := range map[string]int{"acme": 30, "globex": 20, "": 5} {
		got, _ := allPages(t, op, `,"action":"tenant.test","tenant":"`+tenant+`"`)
		if len(got) != n {
			t.Errorf("operator, tenant %q: %d events, want %d", tenant, len(got), n)
		}
		for id, tn := range got {
			if tn != tenant {
				t.Errorf("operator, tenant %q: got %s of %q", tenant, id, tn)
			}
		}
	}
	// The Go client: a bound reader's query holds its tenant's events, each
	// naming it; the operator's, one tenant's.
	ctx := context.Background()
	for _, c := range []struct {
		rc     *servicetest.RoleConn
		tenant *string
		want   string
		n      int
	}{{conns["acme"], nil, "acme", 30}, {op, func() *string { s := "globex"; return &s }(), "globex", 20}} {
		cl, err := client.New(c.rc.NC, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for ev, err := range cl.Query(ctx, client.Query{Action: "tenant.test", PageSize: 9, Tenant: c.tenant}) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Tenant != c.want {
				t.Errorf("client: %s of tenant %q, want %q", ev.ID, ev.Tenant, c.want)
			}
			n++
		}
		if n != c.n {
			t.Errorf("client, tenant %s: %d events, want %d", c.want, n, c.n)
		}
	}
	ask(t, op.NC, contract.SubjectQuery, `{"tenant":"no.such"}`).refused(t, "400", "tenant")
	ask(t, op.NC, contract.SubjectQuery, `{"tenant":"`+strings.Repeat("x", 65)+`"}`).refused(t, "400", "tenant")
}

// publishEvents publishes the events of tenant (ids <tenant>-r<i>) as r:
// actions cycling through three, every third one failed.
func publishEvents(t *testing.T, url string, r servicetest.Role, tenant string, n int) {
	t.Helper()
	rc := servicetest.ConnectAs(t, url, r)
	js, err := jetstream.New(rc.NC)
	if err != nil {
		t.Fatal(err)
	}
	actions := []string{"doc.read", "doc.write", "user.login"}
	var msgs []*nats.Msg
	for i := range n {
		id := fmt.Sprintf("%s-r%d", tenant, i)
		body := fmt.Sprintf(`{"id":%q,"userId":"u-%d","action":%q,"resourceType":"doc","resourceId":"d%d","success":%t,"timestamp":"2026-11-24T%02d:00:00Z"}`,
			id, i%4, actions[i%3], i, i%3 != 2, i%24)
		msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, body))
	}
	servicetest.PublishAll(t, js, msgs)
}

// exportAll runs an NDJSON export of req as rc, acknowledging each chunk
// (contract.ReceiveExport), and returns the tenant of every event it
// delivered, by id.
func exportAll(t *testing.T, rc *servicetest.RoleConn, r servicetest.Role, req contract.ExportRequest) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	sum, err := contract.ReceiveExport(context.Background(), rc.NC, req, &buf, contract.ExportOptions{})
	if err != nil {
		t.Fatalf("%s: export: %v", r.Name, err)
	}
	if sum.Chunks < 2 {
		t.Errorf("%s: export of %d chunks: the test wants acknowledgements across accounts", r.Name, sum.Chunks)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var e struct{ ID, Tenant string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		out[e.ID] = e.Tenant
	}
	return out
}

type tenantReport struct {
	ID      int64  `json:"id"`
	Tenant  string `json:"tenant"`
	Summary struct {
		Total, Successful, Failed int64
		ActionBreakdown           []struct {
			Action string
			Count  int64
		}
	}
}

// sqlCounts counts the events of the report period in SQL: total,
// successful, per action, over the rows where holds.
func sqlCounts(t *testing.T, db *bun.DB, where string) (total, successful int64, actions map[string]int64) {
	t.Helper()
	var rows []struct {
		Action string `bun:"action"`
		N      int64  `bun:"n"`
		OK     int64  `bun:"ok"`
	}
	err := db.NewSelect().Table("audit_logs").ColumnExpr("action, count(*) AS n, count(*) FILTER (WHERE success) AS ok").
		Where("occurred_at >= '2026-11-24T00:00:00Z' AND occurred_at < '2026-11-25T00:00:00Z'").Where(where).
		Group("action").Scan(context.Background(), &rows)
	if err != nil {
		t.Fatal(err)
	}
	actions = map[string]int64{}
	for _, r := range rows {
		total, successful, actions[r.Action] = total+r.N, successful+r.OK, r.N
	}
	return total, successful, actions
}

// checkReport compares a report's figures with the SQL counts of where.
func checkReport(t *testing.T, name string, rep tenantReport, db *bun.DB, where string) {
	t.Helper()
	total, ok, actions := sqlCounts(t, db, where)
	if total == 0 || rep.Summary.Total != total || rep.Summary.Successful != ok || rep.Summary.Failed != total-ok {
		t.Errorf("%s: report total %d successful %d failed %d, SQL %d %d %d", name,
			rep.Summary.Total, rep.Summary.Successful, rep.Summary.Failed, total, ok, total-ok)
	}
	got := map[string]int64{}
	for _, a := range rep.Summary.ActionBreakdown {
		got[a.Action] = a.Count
	}
	if fmt.Sprint(got) != fmt.Sprint(actions) {
		t.Errorf("%s: actions %v, SQL %v", name, got, actions)
	}
}

// TestTenantReportsAndExportsCountTheirTenant: two tenants publish at once;
// each tenant's reader gets reports whose figures equal an SQL count over
// its tenant's rows, cannot get or list the other's stored reports, and
// exports its own events only; the operator's report of one tenant and of
// all equal their SQL counts; the whole chain still verifies with the
// tenants in the hashed events.
func TestTenantReportsAndExportsCountTheirTenant(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_CHECKPOINT_INTERVAL"] = "1s"
	// Small chunks, one ahead: an export goes on only as its client
	// acknowledges, across the account boundary.
	env["AUDITQ_EXPORT_CHUNK_BYTES"], env["AUDITQ_EXPORT_WINDOW"] = "4096", "1"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	counts := map[string]int{"acme": 40, "globex": 25}
	var wg sync.WaitGroup
	for tenant, r := range map[string]servicetest.Role{"acme": acmePublisher, "globex": globexPublisher} {
		wg.Add(1)
		go func() { defer wg.Done(); publishEvents(t, svc.NATSURL(), r, tenant, counts[tenant]) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); publishEvents(t, svc.NATSURL(), tenantOperator, "default", 7) }()
	wg.Wait()
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		a, g := servicetest.CountRows(t, db, "tenant = 'acme'"), servicetest.CountRows(t, db, "tenant = 'globex'")
		d := servicetest.CountRows(t, db, "id LIKE 'default-%'")
		return a == 40 && g == 25 && d == 7, fmt.Sprintf("acme %d, globex %d, default %d", a, g, d)
	})

	readers := map[string]servicetest.Role{"acme": acmeReader, "globex": globexReader}
	conns := map[string]*servicetest.RoleConn{}
	reports := map[string]tenantReport{}
	const daily = `{"reportType":"daily","date":"2026-11-24"}`
	for tenant, r := range readers {
		conns[tenant] = servicetest.ConnectAs(t, svc.NATSURL(), r)
		var rep tenantReport
		ask(t, conns[tenant].NC, contract.SubjectReport, daily).into(t, &rep)
		if rep.Tenant != tenant {
			t.Errorf("%s: report of tenant %q", tenant, rep.Tenant)
		}
		checkReport(t, tenant, rep, db, "tenant = '"+tenant+"'")
		reports[tenant] = rep
	}
	other := map[string]string{"acme": "globex", "globex": "acme"}
	for tenant := range readers {
		nc := conns[tenant].NC
		ask(t, nc, contract.SubjectReport, `{"reportType":"daily","date":"2026-11-24","tenant":"`+other[tenant]+`"}`).refused(t, "403", "tenant")
		ask(t, nc, contract.SubjectReportGet, fmt.Sprintf(`{"id":%d}`, reports[other[tenant]].ID)).refused(t, "404", "")
		var own tenantReport
		ask(t, nc, contract.SubjectReportGet, fmt.Sprintf(`{"id":%d}`, reports[tenant].ID)).into(t, &own)
		if own.Summary.Total != reports[tenant].Summary.Total {
			t.Errorf("%s: stored report total %d, generated %d", tenant, own.Summary.Total, reports[tenant].Summary.Total)
		}
		var list struct{ Reports []struct{ ID int64 } }
		ask(t, nc, contract.SubjectReportList, `{}`).into(t, &list)
		if len(list.Reports) != 1 || list.Reports[0].ID != reports[tenant].ID {
			t.Errorf("%s lists %v, want only its report %d", tenant, list.Reports, reports[tenant].ID)
		}
		ask(t, nc, contract.SubjectReportList, `{"tenant":"`+other[tenant]+`"}`).refused(t, "403", "tenant")
		// The export: its own events, every one of them.
		got := exportAll(t, conns[tenant], readers[tenant], contract.ExportRequest{Filter: contract.Filter{From: "2026-11-24T00:00:00Z", To: "2026-11-25T00:00:00Z"}})
		if len(got) != counts[tenant] {
			t.Errorf("%s exported %d events, want %d", tenant, len(got), counts[tenant])
		}
		for id, tn := range got {
			if tn != tenant {
				t.Errorf("%s exported %s of %q", tenant, id, tn)
			}
		}
		ask(t, nc, contract.SubjectExport, `{"tenant":"`+other[tenant]+`"}`).refused(t, "403", "tenant")
	}

	// The operator: one tenant's report, the default tenant's, everyone's.
	op := servicetest.ConnectAs(t, svc.NATSURL(), tenantOperator)
	for _, c := range []struct{ body, where, tenant string }{
		{`{"reportType":"daily","date":"2026-11-24","tenant":"globex"}`, "tenant = 'globex'", "globex"},
		{`{"reportType":"daily","date":"2026-11-24","tenant":""}`, "tenant = ''", ""},
		{daily, "true", ""},
	} {
		var rep tenantReport
		ask(t, op.NC, contract.SubjectReport, c.body).into(t, &rep)
		checkReport(t, "operator "+c.body, rep, db, c.where)
		if rep.Tenant != c.tenant {
			t.Errorf("operator %s: tenant %q", c.body, rep.Tenant)
		}
	}
	var acmeOnly struct{ Reports []struct{ ID int64 } }
	ask(t, op.NC, contract.SubjectReportList, `{"tenant":"acme"}`).into(t, &acmeOnly)
	if len(acmeOnly.Reports) != 1 || acmeOnly.Reports[0].ID != reports["acme"].ID {
		t.Errorf("operator lists %v for acme, want %d", acmeOnly.Reports, reports["acme"].ID)
	}
	if got := exportAll(t, op, tenantOperator, contract.ExportRequest{Filter: contract.Filter{From: "2026-11-24T00:00:00Z", To: "2026-11-25T00:00:00Z"}}); len(got) != 72 {
		t.Errorf("operator exported %d events, want 72", len(got))
	}

	// The tenant is part of each hashed event: the whole trail verifies.
	if out, err := runVerify(t, env); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// TestTenantRetention: with acme keeping 60 days and globex 400, a
// cleanup of 90 days deletes each tenant's events by its own retention
// and the rest by the job's; the trail verifies afterwards.
func TestTenantRetention(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_TENANT_RETENTION_DAYS"] = "acme:60,globex:400"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	now := time.Now().UTC()
	ago := func(days int) string { return now.AddDate(0, 0, -days).Format(time.RFC3339) }
	publish := func(r servicetest.Role, events map[string]int) {
		rc := servicetest.ConnectAs(t, svc.NATSURL(), r)
		js, err := jetstream.New(rc.NC)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []*nats.Msg
		for id, days := range events {
			body := fmt.Sprintf(`{"id":%q,"action":"retention.test","resourceType":"doc","resourceId":"d1","timestamp":%q}`, id, ago(days))
			msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, body))
		}
		servicetest.PublishAll(t, js, msgs)
	}
	publish(acmePublisher, map[string]int{"acme-100": 100, "acme-70": 70, "acme-50": 50})
	publish(globexPublisher, map[string]int{"globex-100": 100, "globex-70": 70})
	publish(tenantOperator, map[string]int{"default-100": 100, "default-70": 70})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "action = 'retention.test'")
		return n == 7, fmt.Sprintf("%d of 7 events stored", n)
	})

	result := operatorCleanup(t, svc.NATSURL(), `{"retentionDays":90}`)
	var res struct {
		DeletedCount  int64                `json:"deletedCount"`
		TenantCutoffs map[string]time.Time `json:"tenantCutoffs"`
	}
	if err := json.Unmarshal(result, &res); err != nil {
		t.Fatal(err)
	}
	if res.DeletedCount != 3 || len(res.TenantCutoffs) != 2 {
		t.Errorf("cleanup result %s: want 3 deleted and the cutoffs of acme and globex", result)
	}
	var left []string
	if err := db.NewSelect().Table("audit_logs").Column("id").Where("action = 'retention.test'").Order("id").Scan(context.Background(), &left); err != nil {
		t.Fatal(err)
	}
	if want := "[acme-50 default-70 globex-100 globex-70]"; fmt.Sprint(left) != want {
		t.Errorf("left %v, want %s", left, want)
	}
	if out, err := runVerify(t, env); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// TestTenantsSwitchedOnLater: a deployment that ran without tenants (the
// roles example, its events of the default tenant) restarts with the
// tenants example and AUDITQ_TENANTS on: the stream and its consumers take
// the tenant subjects, the earlier events stay the default tenant's, and a
// tenant's new events are its own.
func TestTenantsSwitchedOnLater(t *testing.T) {
	env := tenantsEnv(t)
	env["AUDITQ_NATS_CONFIG"] = rolesConfig
	env["AUDITQ_TENANTS"], env["AUDITQ_TENANT_UNBOUND_ACCOUNTS"] = "false", ""
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	publishAs(t, svc.NATSURL(), servicetest.Publisher, "before", 5)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'before-%'")
		return n == 5, fmt.Sprintf("%d of 5 events before", n)
	})
	_ = svc.Close()

	env["AUDITQ_NATS_CONFIG"] = tenantsConfig
	env["AUDITQ_TENANTS"], env["AUDITQ_TENANT_UNBOUND_ACCOUNTS"] = "true", "OPERATORS"
	svc = servicetest.Start(t, env)
	publishAs(t, svc.NATSURL(), acmePublisher, "after", 5)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'after-%' AND tenant = 'acme'")
		return n == 5, fmt.Sprintf("%d of 5 events of acme", n)
	})
	if n := servicetest.CountRows(t, db, "id LIKE 'before-%' AND tenant = ''"); n != 5 {
		t.Fatalf("%d of the 5 earlier events kept the default tenant", n)
	}
	// The tenants example without AUDITQ_TENANTS is refused: its tenant
	// exports would reach subjects no stream captures.
	_ = svc.Close()
	env["AUDITQ_TENANTS"], env["AUDITQ_TENANT_UNBOUND_ACCOUNTS"] = "false", ""
	if _, err := servicetest.TryStart(t, env); err == nil || !strings.Contains(err.Error(), `exports service "audit.t.*.log"`) {
		t.Fatalf("start of the tenants example without AUDITQ_TENANTS: %v", err)
	}
}
