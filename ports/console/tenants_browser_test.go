package console_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/service/servicetest"
)

// Publishers of the tenants example.
var (
	acmePublisher   = servicetest.Role{Name: "acme-publisher", User: "acme-publisher", Password: "acme-publisher-example", Inbox: "_INBOX_acme_publisher"}
	globexPublisher = servicetest.Role{Name: "globex-publisher", User: "globex-publisher", Password: "globex-publisher-example", Inbox: "_INBOX_globex_publisher"}
)

// publishTenant publishes the events ids through JetStream as r, a
// publisher of the tenants example, waiting for each acknowledgement.
func publishTenant(t *testing.T, url string, r servicetest.Role, ids []string) {
	t.Helper()
	rc := servicetest.ConnectAs(t, url, r)
	js, err := jetstream.New(rc.NC)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for _, id := range ids {
		msgs = append(msgs, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "tenant.test")))
	}
	servicetest.PublishAll(t, js, msgs)
}

// TestConsoleTenants runs the console against the shipped tenants example
// (deploy/nats/auditq-tenants.conf, AUDITQ_TENANTS=true, OPERATORS
// unbound), each user on its own inbox: the operator's trail has a Tenant
// filter and column, lists both tenants' events with the filter empty and
// only acme's with it set to acme, keeps the filter in the address across
// a reload and exports acme's events (and the reads of acme's trail) only; acme's reader is shown acme's
// events only, and its request for globex's shows auditq's refusal.
func TestConsoleTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test boots a service and chromium")
	}
	ctx := browser(t)
	env := servicetest.Env(t)
	env["AUDITQ_NATS_CONFIG"] = "../../deploy/nats/auditq-tenants.conf"
	env["AUDITQ_TENANTS"] = "true"
	env["AUDITQ_TENANT_UNBOUND_ACCOUNTS"] = "OPERATORS"
	env["AUDITQ_CONSOLE_INBOX_PREFIX"] = "_INBOX_{user}"
	svc := servicetest.Start(t, env)
	acme := []string{"acme-ev-0", "acme-ev-1", "acme-ev-2"}
	globex := []string{"globex-ev-0", "globex-ev-1", "globex-ev-2"}
	publishTenant(t, svc.NATSURL(), acmePublisher, acme)
	publishTenant(t, svc.NATSURL(), globexPublisher, globex)
	db := servicetest.OpenDB(t, env)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		a := servicetest.CountRows(t, db, "tenant = 'acme' AND id LIKE 'acme-ev-%'")
		g := servicetest.CountRows(t, db, "tenant = 'globex' AND id LIKE 'globex-ev-%'")
		return a == 3 && g == 3, fmt.Sprintf("stored: %d of acme's 3, %d of globex's 3", a, g)
	})

	base := "http://" + svc.HTTPAddr() + "/"
	// rowsAre is true when the trail lists exactly ids, in any order.
	rowsAre := func(ids []string) string {
		return `JSON.stringify([...document.querySelectorAll("#trail-rows tr")].map(r => r.dataset.id).sort()) === JSON.stringify([` + quoted(slices.Sorted(slices.Values(ids))) + `])`
	}
	login := func(user, password string) {
		t.Helper()
		waitFor(t, ctx, "the login form", `document.querySelector("form.login")`)
		run(t, ctx,
			chromedp.SetValue(chromedp.CSS(`input[name="user"]`), user),
			chromedp.SetValue(chromedp.CSS(`input[name="pass"]`), password),
			chromedp.Click(chromedp.CSS(`form.login button[type="submit"]`)))
		waitFor(t, ctx, "the trail as "+user, `document.querySelector("#trail-status") && !document.querySelector("#trail-status").textContent.startsWith("Loading")`)
	}
	cellOf := func(id string) string {
		return eval[string](t, ctx, `document.querySelector('#trail-rows tr[data-id="`+id+`"] td.tenant')?.textContent || ""`)
	}

	// The operator, unbound: every tenant with the filter empty.
	run(t, ctx, chromedp.Navigate(base))
	login("operator", "operator-example")
	both := append(slices.Clone(acme), globex...)
	waitFor(t, ctx, "both tenants' events", `[`+quoted(both)+`].every(id => document.querySelector('#trail-rows tr[data-id="' + id + '"]'))`)
	if label := eval[string](t, ctx, `document.querySelector('input[name="tenant"]')?.labels[0]?.textContent || ""`); !strings.HasPrefix(label, "Tenant") {
		t.Fatalf("the tenant field's label is %q, want Tenant", label)
	}
	if heads := eval[[]string](t, ctx, `[...document.querySelectorAll("table.events th")].map(th => th.textContent)`); !slices.Contains(heads, "Tenant") {
		t.Errorf("the trail's columns are %v, want a Tenant column", heads)
	}
	if a, g := cellOf("acme-ev-0"), cellOf("globex-ev-0"); a != "acme" || g != "globex" {
		t.Errorf("the tenant column shows %q and %q, want acme and globex", a, g)
	}
	if u := unlabelled(t, ctx); len(u) > 0 {
		t.Errorf("controls without a label: %v", u)
	}

	// The filter acme, from the form: acme's events only, in the address.
	run(t, ctx, chromedp.Click(chromedp.CSS(`details.search summary`)),
		chromedp.SetValue(chromedp.CSS(`input[name="tenant"]`), "acme"),
		chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)))
	waitFor(t, ctx, "acme's events only", `location.hash.includes("tenant=acme") && `+rowsAre(acme))
	screenshot(t, ctx, t.ArtifactDir(), "tenant-filter")

	// Reloaded (credentials live in the page only: log in again), the
	// filter holds.
	run(t, ctx, chromedp.Reload())
	login("operator", "operator-example")
	waitFor(t, ctx, "acme's events after the reload", rowsAre(acme))
	if v := eval[string](t, ctx, `document.querySelector('input[name="tenant"]').value`); v != "acme" {
		t.Errorf("after the reload the tenant field holds %q, want acme", v)
	}

	// The export of the filter holds acme's events only.
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
	}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.SetValue(chromedp.CSS(`#export-format`), "ndjson"), chromedp.Click(chromedp.CSS(`#export-button`)))
	waitFor(t, ctx, "the export saved", `document.querySelector("#export-state").dataset.events !== undefined`)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		names, _ := filepath.Glob(filepath.Join(downloads, "auditq-export-*.ndjson"))
		if len(names) != 1 {
			return false, fmt.Sprintf("downloads: %v", names)
		}
		data, err := os.ReadFile(names[0])
		if err != nil {
			return false, err.Error()
		}
		// acme's events, and the reads of acme's trail, which are
		// recorded in acme (the export has no filter to leave them out).
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		events := 0
		for _, l := range lines {
			if !strings.Contains(l, `"tenant":"acme"`) {
				return false, "a line not of acme: " + l
			}
			if strings.Contains(l, `"id":"acme-ev-`) {
				events++
			}
		}
		return events == 3, fmt.Sprintf("%d of acme's 3 events in %d lines", events, len(lines))
	})

	// acme's reader: acme's events only; globex's are refused.
	run(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(base+"#/trail"))
	login("acme-reader", "acme-reader-example")
	// Its trail also lists the operator's exports of acme above, recorded
	// in acme (the trail hides audit.query reads, not exports).
	waitFor(t, ctx, "acme's events for its reader", `[`+quoted(acme)+`].every(id => document.querySelector('#trail-rows tr[data-id="' + id + '"]')) && `+
		`[...document.querySelectorAll("#trail-rows tr")].every(r => r.querySelector("td.tenant")?.textContent === "acme")`)
	if c := cellOf("acme-ev-1"); c != "acme" {
		t.Errorf("the reader's tenant column shows %q, want acme", c)
	}
	run(t, ctx, chromedp.Navigate(base+"#/trail?tenant=globex"))
	waitFor(t, ctx, "the refusal of globex", `document.querySelector("main .error")`)
	msg := eval[string](t, ctx, `document.querySelector("main .error").textContent`)
	if !strings.Contains(msg, "Refused by auditq (403)") || !strings.Contains(msg, `bound to tenant "acme"`) || !strings.Contains(msg, `"globex"`) {
		t.Errorf("the refusal reads %q, want auditq's 403 naming acme and globex", msg)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#trail-rows tr").length`); n != 0 {
		t.Errorf("the refused search lists %d events", n)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`#export-button`)))
	waitFor(t, ctx, "the export refused", `document.querySelector("#export-state.error")?.textContent.includes("403")`)
	screenshot(t, ctx, t.ArtifactDir(), "tenant-refused")

	// One id in both tenants (each under a Nats-Msg-Id of its own): the
	// operator opens globex's from the trail and is shown globex's event,
	// with its own proof, not acme's.
	for _, p := range []struct {
		r      servicetest.Role
		tenant string
	}{{acmePublisher, "acme"}, {globexPublisher, "globex"}} {
		js, err := jetstream.New(servicetest.ConnectAs(t, svc.NATSURL(), p.r).NC)
		if err != nil {
			t.Fatal(err)
		}
		servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", p.tenant+"-shared", servicetest.EventJSON("shared-ev", p.tenant+".shared"))})
	}
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id = 'shared-ev'")
		return n == 2, fmt.Sprintf("shared-ev stored %d times, want once per tenant", n)
	})
	run(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(base+"#/trail?tenant=globex"))
	login("operator", "operator-example")
	waitFor(t, ctx, "globex's shared-ev", `document.querySelector('#trail-rows tr[data-id="shared-ev"] a')`)
	run(t, ctx, chromedp.Click(chromedp.CSS(`#trail-rows tr[data-id="shared-ev"] a`)))
	waitFor(t, ctx, "the event page's proof checked", `["verified", "pending", "mismatch"].includes(document.querySelector(".proof")?.dataset.state)`)
	if raw, state := eval[string](t, ctx, `document.querySelector("#raw-json").textContent`), eval[string](t, ctx, `document.querySelector(".proof").dataset.state`); !strings.Contains(raw, `"action": "globex.shared"`) || !strings.Contains(raw, `"tenant": "globex"`) || state == "mismatch" {
		t.Errorf("the event page of globex's shared-ev shows (proof %s):\n%s", state, raw)
	}
}

// quoted is ids as a JavaScript array's elements.
func quoted(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = jsString(id)
	}
	return strings.Join(q, ",")
}
