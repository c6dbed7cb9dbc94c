package console_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// chromium returns Debian's chromium, skipping the test when it is absent
// outside CI and failing it in CI (the CI variable set), where .ci/run
// installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, and CI is set: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium): the console's browser tests need it")
	return ""
}

// browser starts a headless chromium with a fresh profile and returns a
// context for chromedp actions, at a 1280x900 window.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs chromedp actions with a generous deadline.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is true.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	servicetest.Eventually(t, 90*time.Second, func() (bool, string) {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err != nil {
			return false, what + ": " + err.Error()
		}
		text, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`document.querySelector("main").innerText.slice(0, 400)`))
		return ok, what + "; the page shows: " + text
	})
}

// screenshot saves the page as name.png among the test's artifacts
// (go test -artifacts keeps them).
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// unlabelled returns the form controls and buttons of the page without a
// name a screen reader can announce (a label, aria-label or
// aria-labelledby; for a button, its text).
func unlabelled(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return eval[[]string](t, ctx, `[...document.querySelectorAll("main button, main input, main select, main textarea")]
		.filter(el => !(el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || (el.labels && el.labels.length) ||
			(el.tagName === "BUTTON" && el.textContent.trim())))
		.map(el => el.outerHTML.slice(0, 120))`)
}

func rowIDs(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return eval[[]string](t, ctx, `[...document.querySelectorAll("#trail-rows tr")].map(r => r.dataset.id)`)
}

type queryAnswer struct {
	Events []struct {
		ID string `json:"id"`
	} `json:"events"`
	NextCursor *string `json:"nextCursor"`
}

func request(t *testing.T, nc *nats.Conn, subject string, body any, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	m, err := nc.Request(subject, b, 30*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	if code := m.Header.Get("Nats-Service-Error-Code"); code != "" {
		t.Fatalf("%s answered %s: %s", subject, code, m.Data)
	}
	if out != nil {
		if err := json.Unmarshal(m.Data, out); err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
	}
}

func apiIDs(a queryAnswer) []string {
	ids := make([]string, len(a.Events))
	for i, e := range a.Events {
		ids[i] = e.ID
	}
	return ids
}

// TestConsoleInBrowser drives the console in headless chromium against a
// real service: the trail and its live updates, search with paging
// forward and back, a bookmarked filter reloaded, an event's proof
// verified in the browser and shown not to match after its row is
// changed with SQL, a report whose figures equal the API's, and the
// stored reports. It keeps a screenshot of each view among its artifacts.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test boots a service and chromium")
	}
	ctx := browser(t)
	shots := t.ArtifactDir()
	env := servicetest.Env(t)
	// Small export chunks and a small window, so that the console's export
	// acknowledges chunks to get the rest.
	env["AUDITQ_EXPORT_CHUNK_BYTES"] = "4096"
	env["AUDITQ_EXPORT_WINDOW"] = "1"
	env["AUDITQ_EXPORT_PAGE_EVENTS"] = "25"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// 60 page views (times now, a second apart) and a Berlin day of
	// logins, deletions and a backup for the report.
	var msgs []*nats.Msg
	now := time.Now().UTC().Truncate(time.Second)
	for i := range 60 {
		id := fmt.Sprintf("page-%03d", i)
		body := fmt.Sprintf(`{"id":%q,"userId":"u-%d","action":"page.view","resourceType":"page","resourceId":"p%d","ipAddress":"192.0.2.%d","sessionId":"s-%d","timestamp":%q}`,
			id, i%4, i, i+1, i%3, now.Add(-time.Duration(60-i)*time.Second).Format(time.RFC3339))
		msgs = append(msgs, servicetest.EventMsg("audit.log", id, body))
	}
	day := []string{
		`{"id":"r-1","userId":"alice","action":"user.login","resourceType":"user","resourceId":"alice","timestamp":"2026-11-20T07:00:00Z"}`,
		`{"id":"r-2","userId":"bob","action":"user.login","resourceType":"user","resourceId":"bob","success":false,"errorMessage":"bad password","timestamp":"2026-11-20T08:00:00Z"}`,
		`{"id":"r-3","userId":"bob","action":"user.login","resourceType":"user","resourceId":"bob","timestamp":"2026-11-20T08:01:00Z"}`,
		`{"id":"r-4","userId":"alice","action":"document.delete","resourceType":"document","resourceId":42,"details":{"reason":"retention","n":1.5},"timestamp":"2026-11-20T12:00:00Z"}`,
		`{"id":"r-5","userId":"carol","action":"document.delete","resourceType":"document","resourceId":43,"success":false,"timestamp":"2026-11-20T22:30:00Z"}`,
		`{"action":"system.backup","id":"r-6","resourceType":"system","resourceId":"db","timestamp":"2026-11-19T23:30:00Z"}`,
		`{"id":"r-7","userId":"alice","action":"user.update","resourceType":"user","resourceId":"bob","timestamp":"2026-11-20T23:30:00Z"}`,
	}
	for i, body := range day {
		msgs = append(msgs, servicetest.EventMsg("audit.log", fmt.Sprintf("r-%d", i+1), body))
	}
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'page-%' OR id LIKE 'r-%'")
		return n == len(msgs), fmt.Sprintf("%d of %d events stored", n, len(msgs))
	})
	request(t, nc, "audit.checkpoint.write", struct{}{}, nil)
	// Records of every kind of read the service keeps, newer than the
	// events: an export's two, an operator's read, and a refusal's (which
	// needs a reader bound to a tenant, so it is published here as the
	// service writes it).
	if _, err := contract.ReceiveExport(context.Background(), nc, contract.ExportRequest{Filter: contract.Filter{Action: "user.*"}},
		io.Discard, contract.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	request(t, nc, "audit.admin.poison.list", struct{}{}, nil)
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "denied-1",
		`{"id":"denied-1","action":"audit.denied","resourceType":"audit_log","resourceId":"audit.query"}`)})
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		x := servicetest.CountRows(t, db, "action = 'audit.export'")
		a := servicetest.CountRows(t, db, "action = 'audit.admin'")
		d := servicetest.CountRows(t, db, "id = 'denied-1'")
		return x == 2 && a == 1 && d == 1, fmt.Sprintf("stored: %d of the export's 2 records, %d admin read, %d refusal", x, a, d)
	})
	readActions := quoted(query.ReadActions())
	base := "http://" + svc.HTTPAddr() + "/"

	t.Run("trail opens on the newest events, and new ones appear", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(base))
		waitFor(t, ctx, "the trail shows 50 rows", `document.querySelectorAll("#trail-rows tr").length === 50`)
		ids := rowIDs(t, ctx)
		if ids[0] != "page-059" {
			t.Errorf("the first row is %s, want the newest event page-059", ids[0])
		}
		firstRows := eval[float64](t, ctx, `performance.getEntriesByName("auditq-first-rows")[0].startTime`)
		t.Logf("first page: %.0f ms from navigation to the rows shown", firstRows)
		screenshot(t, ctx, shots, "trail")
		// The trail's own reads, of every kind, are hidden unless asked
		// for, and the checkbox names them.
		reads := eval[[]string](t, ctx, `[...document.querySelectorAll("#trail-rows tr td:nth-child(3)")].map(td => td.textContent).filter(a => [`+readActions+`].includes(a))`)
		if len(reads) != 0 {
			t.Errorf("read records shown: %v, want them hidden", reads)
		}
		label := eval[string](t, ctx, `document.querySelector('input[name="reads"]').labels[0].textContent`)
		for _, a := range query.ReadActions() {
			if !strings.Contains(label, a) {
				t.Errorf("the checkbox %q does not name %s", label, a)
			}
		}
		servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "live-1",
			`{"id":"live-1","userId":"dave","action":"user.logout","resourceType":"user","resourceId":"dave"}`)})
		waitFor(t, ctx, "live-1 appears without a reload", `document.querySelector('#trail-rows tr[data-id="live-1"]')`)
		if ids := rowIDs(t, ctx); ids[0] != "live-1" {
			t.Errorf("the first row is %s, want the new event live-1 on top", ids[0])
		}
		run(t, ctx, chromedp.Navigate(base+"#/trail?reads=1"))
		for _, a := range []string{"audit.query", "audit.export", "audit.admin", "audit.denied"} {
			waitFor(t, ctx, "with reads shown, "+a+" rows appear",
				`[...document.querySelectorAll("#trail-rows tr td:nth-child(3)")].some(td => td.textContent === `+jsString(a)+`)`)
		}
	})

	t.Run("search pages forward and back, and a bookmark reloads", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(base+"#/trail"))
		waitFor(t, ctx, "the trail is shown", `document.querySelectorAll("#trail-rows tr").length > 0`)
		run(t, ctx,
			chromedp.Click(chromedp.CSS(`details.search summary`)),
			chromedp.SetValue(chromedp.CSS(`input[name="action"]`), "page.*"),
			chromedp.SetValue(chromedp.CSS(`input[name="sessionId"]`), "s-1"),
			chromedp.SetValue(chromedp.CSS(`select[name="limit"]`), "25"),
			chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)))
		filter := map[string]any{"action": "page.*", "sessionId": "s-1", "limit": 25}
		var p1, p2 queryAnswer
		request(t, nc, "audit.query", filter, &p1)
		// 20 events in session s-1: one page of 25. Page with 8 instead.
		if len(p1.Events) != 20 {
			t.Fatalf("the API finds %d events in session s-1, want 20", len(p1.Events))
		}
		waitFor(t, ctx, "20 rows of session s-1", `document.querySelectorAll("#trail-rows tr").length === 20`)
		if got := rowIDs(t, ctx); !slices.Equal(got, apiIDs(p1)) {
			t.Errorf("filtered rows %v, the API's %v", got, apiIDs(p1))
		}

		run(t, ctx, chromedp.Navigate(base+"#/trail?action=page.*&sessionId=s-1&limit=25"))
		run(t, ctx, chromedp.Reload())
		filter["limit"] = 8
		request(t, nc, "audit.query", filter, &p1)
		request(t, nc, "audit.query", map[string]any{"action": "page.*", "sessionId": "s-1", "limit": 8, "cursor": *p1.NextCursor}, &p2)
		run(t, ctx, chromedp.Navigate(base+"#/trail?action=page.*&sessionId=s-1&limit=8"))
		// limit 8 is not among the form's choices: the URL still rules.
		waitFor(t, ctx, "page 1 of 8", `document.querySelectorAll("#trail-rows tr").length === 8`)
		if got := rowIDs(t, ctx); !slices.Equal(got, apiIDs(p1)) {
			t.Fatalf("page 1 %v, the API's %v", got, apiIDs(p1))
		}
		screenshot(t, ctx, shots, "search")
		run(t, ctx, chromedp.Click(chromedp.CSS(`a[rel="next"]`)))
		waitFor(t, ctx, "page 2", `document.querySelector("#trail-rows tr")?.dataset.id === `+jsString(apiIDs(p2)[0]))
		if got := rowIDs(t, ctx); !slices.Equal(got, apiIDs(p2)) {
			t.Fatalf("page 2 %v, the API's %v", got, apiIDs(p2))
		}
		page2URL := eval[string](t, ctx, `location.href`)
		run(t, ctx, chromedp.Click(chromedp.CSS(`a[rel="prev"]`)))
		waitFor(t, ctx, "back on page 1", `document.querySelector("#trail-rows tr")?.dataset.id === `+jsString(apiIDs(p1)[0]))
		if got := rowIDs(t, ctx); !slices.Equal(got, apiIDs(p1)) {
			t.Fatalf("page 1 again %v, the API's %v", got, apiIDs(p1))
		}
		// The bookmarked second page, in a fresh load.
		run(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(page2URL))
		waitFor(t, ctx, "the bookmarked page 2", `document.querySelectorAll("#trail-rows tr").length === 8`)
		if got := rowIDs(t, ctx); !slices.Equal(got, apiIDs(p2)) {
			t.Fatalf("bookmarked page 2 %v, the API's %v", got, apiIDs(p2))
		}
		action := eval[string](t, ctx, `document.querySelector('input[name="action"]').value`)
		if action != "page.*" {
			t.Errorf("the reloaded form shows action %q, want page.*", action)
		}
	})

	t.Run("an event is verified in the browser", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(base+"#/trail"))
		waitFor(t, ctx, "the trail", `document.querySelector('#trail-rows tr[data-id="page-059"] a')`)
		run(t, ctx, chromedp.Click(chromedp.CSS(`#trail-rows tr[data-id="page-059"] a`)))
		waitFor(t, ctx, "the proof is checked", `document.querySelector(".proof")?.dataset.state`)
		state := eval[string](t, ctx, `document.querySelector(".proof").dataset.state`)
		text := eval[string](t, ctx, `document.querySelector("#proof-state").innerText`)
		if state != "verified" || !strings.Contains(text, "Verified at checkpoint") {
			t.Fatalf("proof state %q: %s", state, text)
		}
		screenshot(t, ctx, shots, "event")
		// An event with details, integer resource id and a failure.
		run(t, ctx, chromedp.Navigate(base+"#/event/r-4"))
		waitFor(t, ctx, "r-4 verified", `document.querySelector(".proof")?.dataset.state === "verified"`)
	})

	t.Run("a report's figures equal the API's", func(t *testing.T) {
		run(t, ctx, chromedp.Navigate(base+"#/reports"))
		waitFor(t, ctx, "the report form", `document.querySelector("#report-type")`)
		run(t, ctx,
			chromedp.SetValue(chromedp.CSS(`#report-type`), "daily"),
			chromedp.SetValue(chromedp.CSS(`input[name="date"]`), "2026-11-20"),
			chromedp.SetValue(chromedp.CSS(`select[name="timeZone"]`), "Europe/Berlin"),
			chromedp.Click(chromedp.CSS(`form.report-form button[type="submit"]`)))
		waitFor(t, ctx, "the report", `document.querySelector("article.report")`)
		type shownReport struct {
			Figures   map[string]string
			Top       map[string][][2]string
			Breakdown [][2]string
		}
		shown := eval[shownReport](t, ctx, `({
			Figures: Object.fromEntries([...document.querySelectorAll("[data-figure]")].map(e => [e.dataset.figure, e.dataset.value])),
			Top: Object.fromEntries([...document.querySelectorAll("table[data-chart]")].map(t => [t.dataset.chart, [...t.rows].map(r => [r.cells[0].textContent, r.cells[1].dataset.value])])),
			Breakdown: [...document.querySelectorAll("#breakdown tbody tr")].map(r => [r.cells[0].textContent, r.cells[1].dataset.count]),
		})`)
		var api struct {
			Summary struct {
				Total, Successful, Failed int
				SuccessRate               float64
				ActionBreakdown           []struct {
					Action string
					Count  int
				}
			}
			TopActions []struct {
				Action string
				Count  int
			}
			TopUsers []struct {
				UserID string
				Count  int
			}
			FailureAnalysis []struct {
				Action string
				Failed int
			}
		}
		request(t, nc, "audit.report", map[string]string{"reportType": "daily", "date": "2026-11-20", "timeZone": "Europe/Berlin"}, &api)
		// Berlin's 20 November is 2026-11-19T23:00Z to 2026-11-20T23:00Z:
		// r-6 is in, r-7 is out.
		if api.Summary.Total != 6 {
			t.Fatalf("the API's report counts %d events, want 6", api.Summary.Total)
		}
		want := map[string]string{
			"total": fmt.Sprint(api.Summary.Total), "successful": fmt.Sprint(api.Summary.Successful),
			"failed": fmt.Sprint(api.Summary.Failed), "successRate": fmt.Sprint(api.Summary.SuccessRate),
		}
		for k, v := range want {
			if shown.Figures[k] != v {
				t.Errorf("figure %s: the console shows %q, the API says %q", k, shown.Figures[k], v)
			}
		}
		pairs := func(n int, f func(i int) (string, int)) [][2]string {
			out := make([][2]string, n)
			for i := range n {
				l, c := f(i)
				out[i] = [2]string{l, fmt.Sprint(c)}
			}
			return out
		}
		checks := map[string][][2]string{
			"Top actions":        pairs(len(api.TopActions), func(i int) (string, int) { return api.TopActions[i].Action, api.TopActions[i].Count }),
			"Top users":          pairs(len(api.TopUsers), func(i int) (string, int) { return api.TopUsers[i].UserID, api.TopUsers[i].Count }),
			"Failures by action": pairs(len(api.FailureAnalysis), func(i int) (string, int) { return api.FailureAnalysis[i].Action, api.FailureAnalysis[i].Failed }),
		}
		for name, w := range checks {
			if !slices.Equal(shown.Top[name], w) {
				t.Errorf("%s: the console shows %v, the API says %v", name, shown.Top[name], w)
			}
		}
		bd := pairs(len(api.Summary.ActionBreakdown), func(i int) (string, int) {
			return api.Summary.ActionBreakdown[i].Action, api.Summary.ActionBreakdown[i].Count
		})
		if !slices.Equal(shown.Breakdown, bd) {
			t.Errorf("breakdown: the console shows %v, the API says %v", shown.Breakdown, bd)
		}
		screenshot(t, ctx, shots, "report")

		hash := eval[string](t, ctx, `location.hash`)
		id := strings.TrimPrefix(hash, "#/stored/")
		run(t, ctx, chromedp.Navigate(base+"#/stored"))
		waitFor(t, ctx, "the stored reports", `document.querySelectorAll("#stored-rows tr").length >= 2`)
		first := eval[[]string](t, ctx, `[...document.querySelectorAll("#stored-rows tr")].map(r => r.cells[0].textContent)`)
		// Newest first: the API's report, then the console's.
		if len(first) < 2 || first[1] != "#"+id {
			t.Errorf("stored reports %v, want the console's #%s second, after the API's", first, id)
		}
		screenshot(t, ctx, shots, "stored")

		// The daily reports over time: both are of Berlin's 20 November.
		run(t, ctx, chromedp.Navigate(base+"#/stored?type=daily"))
		waitFor(t, ctx, "the daily timeline", `document.querySelector("#stored-timeline table[data-chart]")`)
		columns := eval[[][2]string](t, ctx, `[...document.querySelectorAll("#stored-timeline table[data-chart] tr")].map(r => [r.cells[1].dataset.value, r.cells[1].dataset.failed])`)
		if !slices.Equal(columns, [][2]string{{"6", "2"}, {"6", "2"}}) {
			t.Errorf("daily timeline (total, failed) %v, want the two reports' 6 and 2", columns)
		}
	})

	t.Run("export of a filter, all its events, as a download", func(t *testing.T) {
		downloads := t.TempDir()
		if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
		}); err != nil {
			t.Fatal(err)
		}
		// What the API exports for the same filter (the Go consumer).
		var apiCSV bytes.Buffer
		sum, err := contract.ReceiveExport(t.Context(), nc, contract.ExportRequest{Filter: contract.Filter{Action: "page.*"}, Format: contract.ExportCSV}, &apiCSV, contract.ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// 60 events: more than the console's page of 50, and, in chunks of
		// 4 KiB with a window of 1, more chunks than the window.
		if sum.Events != 60 || sum.Chunks < 2 {
			t.Fatalf("the API exports %d events in %d chunks, want 60 in more than one", sum.Events, sum.Chunks)
		}
		for _, format := range []string{"csv", "ndjson"} {
			run(t, ctx, chromedp.Navigate(base+"#/trail?action=page.*"))
			waitFor(t, ctx, "the first page of 50", `document.querySelectorAll("#trail-rows tr").length === 50`)
			// By keyboard: the format, then the button.
			run(t, ctx, chromedp.SetValue(chromedp.CSS(`#export-format`), format),
				chromedp.Focus(chromedp.CSS(`#export-button`)), chromedp.KeyEvent(kb.Enter))
			waitFor(t, ctx, "the export saved", `document.querySelector("#export-state").dataset.events`)
			if state := eval[string](t, ctx, `document.querySelector("#export-state").textContent`); !strings.Contains(state, "60 events") || !strings.Contains(state, "SHA-256 checked") {
				t.Errorf("%s: the export says %q", format, state)
			}
			if format == "csv" {
				screenshot(t, ctx, shots, "export")
				if bad := unlabelled(t, ctx); len(bad) > 0 {
					t.Errorf("controls without a name for screen readers: %v", bad)
				}
			}
			// Chromium creates the file under its final name, empty, and
			// renames its .crdownload over it when the download is done.
			var data []byte
			servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
				names, _ := filepath.Glob(filepath.Join(downloads, "auditq-export-*."+format))
				partial, _ := filepath.Glob(filepath.Join(downloads, "*.crdownload"))
				if len(names) != 1 || len(partial) > 0 {
					return false, fmt.Sprintf("downloads: %v, partial %v", names, partial)
				}
				var err error
				data, err = os.ReadFile(names[0])
				return err == nil && len(data) > 0, fmt.Sprintf("%s: %d bytes (%v)", names[0], len(data), err)
			})
			var ids []string
			if format == "csv" {
				if !bytes.Equal(data, apiCSV.Bytes()) {
					t.Errorf("the downloaded CSV (%d bytes) differs from the API's export (%d bytes)", len(data), apiCSV.Len())
				}
				records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
				if err != nil {
					t.Fatal(err)
				}
				if len(records) != 61 || records[0][0] != "id" {
					t.Fatalf("the CSV has %d records (first %v), want a header and 60 rows", len(records), records[0])
				}
				for _, r := range records[1:] {
					ids = append(ids, r[0])
				}
			} else {
				for line := range strings.Lines(string(data)) {
					var e struct{ ID, Action string }
					if err := json.Unmarshal([]byte(line), &e); err != nil || e.Action != "page.view" {
						t.Fatalf("NDJSON line %q: %v", line, err)
					}
					ids = append(ids, e.ID)
				}
			}
			want := make([]string, 60)
			for i := range want {
				want[i] = fmt.Sprintf("page-%03d", 59-i)
			}
			if !slices.Equal(ids, want) {
				t.Errorf("%s: the file holds %d events %v, want page-059 down to page-000", format, len(ids), ids)
			}
		}
	})

	t.Run("a changed row does not match its proof", func(t *testing.T) {
		if _, err := db.ExecContext(context.Background(), `UPDATE audit_logs SET resource_id = 'p-tampered' WHERE id = 'page-013'`); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, chromedp.Navigate(base+"#/event/page-013"))
		waitFor(t, ctx, "the proof is checked", `document.querySelector(".proof")?.dataset.state`)
		state := eval[string](t, ctx, `document.querySelector(".proof").dataset.state`)
		text := eval[string](t, ctx, `document.querySelector("#proof-state").innerText`)
		if state != "mismatch" || !strings.Contains(text, "Does not match") {
			t.Fatalf("proof state %q: %s", state, text)
		}
		screenshot(t, ctx, shots, "event-mismatch")
	})

	t.Run("phone width", func(t *testing.T) {
		run(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Navigate(base+"#/trail"))
		waitFor(t, ctx, "the trail", `document.querySelectorAll("#trail-rows tr").length > 0`)
		overflow := eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth + 1`)
		if overflow {
			t.Error("the trail is wider than a phone's screen")
		}
		screenshot(t, ctx, shots, "trail-phone")
	})
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestConsoleLogin checks that against a server that requires a user and
// password the console asks for them, refuses wrong ones, and shows the
// trail once logged in.
func TestConsoleLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test boots a service and chromium")
	}
	ctx := browser(t)
	env := servicetest.Env(t)
	env["AUDITQ_NATS_AUTH_USER"] = "console-user"
	env["AUDITQ_NATS_AUTH_PASSWORD"] = "console-password"
	env["AUDITQ_CONSOLE_INBOX_PREFIX"] = "_INBOX_console"
	svc := servicetest.Start(t, env)
	nc, err := nats.Connect(svc.NATSURL(), nats.UserInfo("console-user", "console-password"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The console's replies arrive under its configured inbox prefix.
	var inboxReplies atomic.Int64
	if _, err := nc.Subscribe("_INBOX_console.>", func(*nats.Msg) { inboxReplies.Add(1) }); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "login-1", servicetest.EventJSON("login-1", "user.login"))})
	db := servicetest.OpenDB(t, env)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = 'login-1'") == 1, "login-1 not stored"
	})

	run(t, ctx, chromedp.Navigate("http://"+svc.HTTPAddr()+"/"))
	waitFor(t, ctx, "the login form", `document.querySelector("form.login")`)
	screenshot(t, ctx, t.ArtifactDir(), "login")
	run(t, ctx,
		chromedp.SetValue(chromedp.CSS(`input[name="user"]`), "console-user"),
		chromedp.SetValue(chromedp.CSS(`input[name="pass"]`), "wrong"),
		chromedp.Click(chromedp.CSS(`form.login button[type="submit"]`)))
	waitFor(t, ctx, "wrong credentials refused", `document.querySelector("form.login .error").textContent.includes("refused")`)
	run(t, ctx,
		chromedp.SetValue(chromedp.CSS(`input[name="pass"]`), "console-password"),
		chromedp.Click(chromedp.CSS(`form.login button[type="submit"]`)))
	waitFor(t, ctx, "the trail after logging in", `document.querySelector('#trail-rows tr[data-id="login-1"]')`)
	// Without tenants the trail is as it always was: no tenant filter or column.
	if eval[bool](t, ctx, `!!document.querySelector('input[name="tenant"], td.tenant') || [...document.querySelectorAll("table.events th")].some(th => th.textContent === "Tenant")`) {
		t.Error("a single-tenant service's trail shows a tenant filter or column")
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return inboxReplies.Load() > 0, "no reply seen under _INBOX_console.>"
	})
}

// TestConsoleOperations drives the Operations view against the service's
// own audit.admin.* endpoints: the status with the checkpoint and the
// last verify; two rejected events in the poison stream with reason and
// payload, one replayed corrected (and then stored in the table), one
// discarded; the schedules with their next firing and the last cleanups,
// as the API lists them; a dry-run cleanup from its button, whose figure
// equals the API's. It keeps screenshots at 1280 px and at phone width.
func TestConsoleOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test boots a service and chromium")
	}
	ctx := browser(t)
	shots := t.ArtifactDir()
	env := servicetest.Env(t)
	env["AUDITQ_CLEANUP_CRON"] = "0 0 3 * * *"
	env["AUDITQ_RETENTION_DAYS"] = "90"
	env["AUDITQ_RETENTION_MIN_DAYS"] = "30"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + svc.HTTPAddr() + "/"

	// Events 400, 200 and 10 days old; a cleanup of what is older than a
	// year deletes one; two events without resourceId are rejected.
	now := time.Now().UTC()
	var msgs []*nats.Msg
	for i, age := range []int{400, 200, 200, 200, 10, 10} {
		id := fmt.Sprintf("ops-%d", i)
		msgs = append(msgs, servicetest.EventMsg("audit.log", id, fmt.Sprintf(`{"id":%q,"userId":"u-1","action":"doc.view","resourceType":"doc","resourceId":"d%d","timestamp":%q}`,
			id, i, now.AddDate(0, 0, -age).Format(time.RFC3339))))
	}
	msgs = append(msgs,
		servicetest.EventMsg("audit.log", "bad-1", `{"id":"bad-1","userId":"u-9","action":"doc.view","resourceType":"doc"}`),
		servicetest.EventMsg("audit.log", "bad-2", `{"id":"bad-2","action":"doc.view","resourceId":"d2"}`))
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'ops-%'")
		return n == 6, fmt.Sprintf("%d of 6 events stored", n)
	})
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.cleanup", "cleanup-ops", `{"retentionDays":365}`)})
	var runs struct {
		Cleanups []struct {
			JobID        string `json:"jobId"`
			DeletedCount int    `json:"deletedCount"`
		}
	}
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		request(t, nc, "audit.admin.cleanups", map[string]any{}, &runs)
		return len(runs.Cleanups) == 1, fmt.Sprintf("%d cleanup runs", len(runs.Cleanups))
	})
	if runs.Cleanups[0].DeletedCount != 1 {
		t.Fatalf("the cleanup deleted %d events, want the one 400 days old", runs.Cleanups[0].DeletedCount)
	}
	var poison struct {
		Messages []struct {
			Seq    int
			ID     string
			Reason string
		}
	}
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		request(t, nc, "audit.admin.poison.list", map[string]any{}, &poison)
		return len(poison.Messages) == 2, fmt.Sprintf("%d poison messages", len(poison.Messages))
	})
	seqOf := map[string]int{}
	for _, m := range poison.Messages {
		seqOf[m.ID] = m.Seq
	}
	var cp struct{ Checkpoint struct{ Seq int } }
	request(t, nc, "audit.checkpoint.write", struct{}{}, &cp)
	// The last verify, as an operator's "auditq verify" records it.
	cli := maps.Clone(env)
	cli["AUDITQ_NATS_URL"] = svc.NATSURL()
	if out, err := servicetest.Client(t.Context(), t, cli, "verify"); err != nil {
		t.Fatalf("auditq verify: %v\n%s", err, out)
	}

	run(t, ctx, chromedp.Navigate(base))
	waitFor(t, ctx, "the Operations link", `document.querySelector('nav a[data-view="operations"]')`)
	run(t, ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="operations"]`)))
	waitFor(t, ctx, "the poison rows", `document.querySelectorAll("#poison-rows tbody tr[data-seq]").length === 2`)
	waitFor(t, ctx, "status, schedules and cleanups", `document.querySelector("#status-verify") && document.querySelector("#schedule-rows") && document.querySelector("#cleanup-rows")`)
	if text := eval[string](t, ctx, `document.querySelector("#status-checkpoint").innerText`); !strings.Contains(text, fmt.Sprintf("#%d", cp.Checkpoint.Seq)) || !strings.Contains(text, "ago") {
		t.Errorf("the checkpoint shows %q, want #%d and its age", text, cp.Checkpoint.Seq)
	}
	if text := eval[string](t, ctx, `document.querySelector("#status-verify").innerText`); !strings.HasPrefix(text, "ok") || !strings.Contains(text, "auditq verify") ||
		!strings.Contains(text, fmt.Sprintf("up to checkpoint #%d", cp.Checkpoint.Seq)) {
		t.Errorf("the last verify shows %q", text)
	}
	if text := eval[string](t, ctx, `document.querySelector("#status-poison").innerText`); !strings.Contains(text, "log 2") {
		t.Errorf("the poison backlog shows %q, want log 2", text)
	}
	reason := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('#poison-rows tr[data-seq="%d"] td.reason').textContent`, seqOf["bad-1"]))
	if reason != poison.Messages[1].Reason && reason != poison.Messages[0].Reason || !strings.Contains(reason, "resourceId") {
		t.Errorf("bad-1's reason shows %q", reason)
	}

	// The schedule and its next firing; the cleanup run: as the API says.
	var sched struct {
		Schedules []struct {
			Name string
			Next time.Time
		}
	}
	request(t, nc, "audit.admin.schedules", struct{}{}, &sched)
	shownNext := eval[string](t, ctx, `document.querySelector('#schedule-rows tr[data-name="cleanup"] td.next time')?.getAttribute("datetime") || ""`)
	if len(sched.Schedules) != 1 || shownNext == "" {
		t.Fatalf("schedules: the API lists %+v, the console shows next %q", sched.Schedules, shownNext)
	}
	if next, err := time.Parse(time.RFC3339Nano, shownNext); err != nil || !next.Equal(sched.Schedules[0].Next) {
		t.Errorf("the cleanup's next firing shows %q, the API says %s", shownNext, sched.Schedules[0].Next)
	}
	deleted := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('#cleanup-rows tr[data-job=%s] td[data-count]')?.dataset.count || ""`, jsString(runs.Cleanups[0].JobID)))
	if deleted != "1" {
		t.Errorf("the cleanup run %s shows %q deleted, want 1", runs.Cleanups[0].JobID, deleted)
	}
	screenshot(t, ctx, shots, "operations")

	// bad-1: its payload shown, corrected in place, replayed: stored.
	b1 := seqOf["bad-1"]
	run(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Show the payload of message %d"]`, b1))))
	waitFor(t, ctx, "bad-1's payload", fmt.Sprintf(`document.querySelector("#payload-%d")?.value.includes('"id":"bad-1"')`, b1))
	if focused := eval[string](t, ctx, `document.activeElement.id`); focused != fmt.Sprintf("payload-%d", b1) {
		t.Errorf("the focus is on %q after opening the payload, want the payload", focused)
	}
	fixed := `{"id":"bad-1","userId":"u-9","action":"doc.view","resourceType":"doc","resourceId":"d-fixed"}`
	run(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const a = document.querySelector("#payload-%d"); a.value = %s; a.dispatchEvent(new Event("input")); })()`, b1, jsString(fixed))))
	screenshot(t, ctx, shots, "operations-payload")
	run(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Replay message %d"]`, b1))))
	waitFor(t, ctx, "bad-1 replayed", `document.querySelector("#poison-note").textContent.includes("replayed to audit.log as bad-1")`)
	waitFor(t, ctx, "one poison row left", `document.querySelectorAll("#poison-rows tbody tr[data-seq]").length === 1`)
	if focused := eval[string](t, ctx, `document.activeElement.id`); focused != "poison-note" {
		t.Errorf("after the replay the focus is on %q, want the outcome (poison-note)", focused)
	}
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id = 'bad-1' AND resource_id = 'd-fixed' AND user_id = 'u-9'")
		return n == 1, fmt.Sprintf("%d rows of the replayed bad-1", n)
	})

	// bad-2: discarded by keyboard, in two presses.
	b2 := fmt.Sprintf(`button[aria-label="Discard message %d"]`, seqOf["bad-2"])
	run(t, ctx, chromedp.Focus(chromedp.CSS(b2)), chromedp.KeyEvent(kb.Enter))
	if text := eval[string](t, ctx, `document.querySelector(`+jsString(b2)+`).textContent`); text != "Discard for good?" {
		t.Fatalf("after one press Discard says %q", text)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#poison-rows tbody tr[data-seq]").length`); n != 1 {
		t.Fatalf("one press of Discard left %d rows, want 1", n)
	}
	run(t, ctx, chromedp.KeyEvent(kb.Enter))
	waitFor(t, ctx, "the poison stream empty", `document.querySelector("#poison-empty")`)
	request(t, nc, "audit.admin.poison.list", map[string]any{}, &poison)
	if len(poison.Messages) != 0 {
		t.Errorf("the API still lists %d poison messages", len(poison.Messages))
	}
	if n := servicetest.CountRows(t, db, "id = 'bad-2'"); n != 0 {
		t.Errorf("the discarded bad-2 is stored (%d rows)", n)
	}

	// A dry run from its button: the scheduled cleanup's (90 days), then
	// 150 days; the figures equal the API's.
	for _, c := range []struct {
		days string
		body map[string]any
		want int
	}{{"", map[string]any{}, 3}, {"150", map[string]any{"retentionDays": 150}, 3}, {"300", map[string]any{"retentionDays": 300}, 0}} {
		var api struct{ WouldDelete int }
		request(t, nc, "audit.admin.cleanup.dryrun", c.body, &api)
		if api.WouldDelete != c.want {
			t.Fatalf("the API's dry run %v counts %d, want %d", c.body, api.WouldDelete, c.want)
		}
		run(t, ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector("#dryrun-result").replaceChildren()`),
			chromedp.SetValue(chromedp.CSS(`input[name="retentionDays"]`), c.days),
			chromedp.Click(chromedp.CSS(`#dryrun-button`)))
		waitFor(t, ctx, "the dry run's figures", `document.querySelector("#dryrun-result [data-would-delete]")`)
		if got := eval[string](t, ctx, `document.querySelector("#dryrun-result [data-would-delete]").dataset.wouldDelete`); got != fmt.Sprint(api.WouldDelete) {
			t.Errorf("dry run %v: the console shows %s, the API %d", c.body, got, api.WouldDelete)
		}
	}
	if n := servicetest.CountRows(t, db, "id LIKE 'ops-%'"); n != 5 {
		t.Errorf("%d events after the dry runs, want the 5 the cleanup kept", n)
	}
	screenshot(t, ctx, shots, "operations-dryrun")
	if bad := unlabelled(t, ctx); len(bad) > 0 {
		t.Errorf("controls without a name for screen readers: %v", bad)
	}

	run(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), chromedp.Reload())
	waitFor(t, ctx, "the view at phone width", `document.querySelector("#status-verify") && document.querySelector("#cleanup-rows")`)
	if eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
		t.Error("the Operations view is wider than a phone's screen")
	}
	screenshot(t, ctx, shots, "operations-phone")
}

// TestConsoleReaderRefused logs in to the console with the shipped roles
// (deploy/nats/auditq-roles.conf), each user on its own inbox
// (AUDITQ_CONSOLE_INBOX_PREFIX=_INBOX_{user}): the reader sees the trail
// and exports it, has no Operations link, and when it opens the view
// anyway, the server's refusal is shown for each operator subject; the
// operator gets the view and its answers.
func TestConsoleReaderRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test boots a service and chromium")
	}
	ctx := browser(t)
	env := servicetest.Env(t)
	env["AUDITQ_NATS_CONFIG"] = "../../deploy/nats/auditq-roles.conf"
	env["AUDITQ_CONSOLE_INBOX_PREFIX"] = "_INBOX_{user}"
	// Several chunks with a window of 1: the reader's acknowledgements
	// must cross into auditq's account for the export to finish.
	env["AUDITQ_EXPORT_CHUNK_BYTES"] = "4096"
	env["AUDITQ_EXPORT_WINDOW"] = "1"
	svc := servicetest.Start(t, env)
	nc, err := nats.Connect(svc.NATSURL(), nats.UserInfo("operator", "operator-example"), nats.CustomInboxPrefix("_INBOX_operator"), nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for i := range 40 {
		id := fmt.Sprintf("role-%02d", i)
		msgs = append(msgs, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "user.login")))
	}
	servicetest.PublishAll(t, js, msgs)
	db := servicetest.OpenDB(t, env)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'role-%'")
		return n == 40, fmt.Sprintf("%d of 40 events stored", n)
	})
	base := "http://" + svc.HTTPAddr() + "/"
	login := func(user, password string) {
		t.Helper()
		run(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(base))
		waitFor(t, ctx, "the login form", `document.querySelector("form.login")`)
		run(t, ctx,
			chromedp.SetValue(chromedp.CSS(`input[name="user"]`), user),
			chromedp.SetValue(chromedp.CSS(`input[name="pass"]`), password),
			chromedp.Click(chromedp.CSS(`form.login button[type="submit"]`)))
		waitFor(t, ctx, "the trail as "+user, `document.querySelector('#trail-rows tr[data-id="role-39"]')`)
		waitFor(t, ctx, "the operator probe", `document.body.dataset.operator`)
	}

	login("reader", "reader-example")
	if got := eval[string](t, ctx, `document.body.dataset.operator`); got != "no" {
		t.Fatalf("the reader is taken for an operator (%q)", got)
	}
	if eval[bool](t, ctx, `!!document.querySelector('nav a[data-view="operations"]')`) {
		t.Fatal("the reader sees the Operations link")
	}
	// The reader may export: the chunks cross from auditq's account.
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
	}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.Navigate(base+"#/trail?action=user.login"))
	waitFor(t, ctx, "the reader's search", `document.querySelectorAll("#trail-rows tr").length === 40`)
	run(t, ctx, chromedp.SetValue(chromedp.CSS(`#export-format`), "ndjson"), chromedp.Click(chromedp.CSS(`#export-button`)))
	waitFor(t, ctx, "the reader's export saved", `document.querySelector("#export-state").dataset.events === "40"`)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		names, _ := filepath.Glob(filepath.Join(downloads, "auditq-export-*.ndjson"))
		if len(names) != 1 {
			return false, fmt.Sprintf("downloads: %v", names)
		}
		data, err := os.ReadFile(names[0])
		return err == nil && strings.Count(string(data), "\n") == 40, fmt.Sprintf("%d lines (%v)", strings.Count(string(data), "\n"), err)
	})
	// The export came in more than one chunk (as the operator sees it).
	if sum, err := contract.ReceiveExport(t.Context(), nc, contract.ExportRequest{Filter: contract.Filter{Action: "user.login"}}, io.Discard, contract.ExportOptions{}); err != nil || sum.Chunks < 2 {
		t.Fatalf("the operator's export of the same filter: %+v, %v; want more than one chunk", sum, err)
	}

	// Asked anyway: refused by the server, plainly.
	run(t, ctx, chromedp.Navigate(base+"#/operations"))
	waitFor(t, ctx, "the refusals", `document.querySelectorAll("main section .error").length >= 4`)
	for _, c := range []struct{ section, subject string }{
		{"ops-status", "audit.admin.status"}, {"ops-poison", "audit.admin.poison.list"},
		{"ops-schedules", "audit.admin.schedules"}, {"ops-cleanups", "audit.admin.cleanups"},
	} {
		text := eval[string](t, ctx, `document.querySelector("#`+c.section+` .error")?.textContent || ""`)
		if !strings.Contains(text, "Refused by the NATS server") || !strings.Contains(text, `Publish to "`+c.subject+`"`) {
			t.Errorf("%s shows %q, want the server's refusal of %s", c.section, text, c.subject)
		}
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`#dryrun-button`)))
	waitFor(t, ctx, "the dry run refused", `document.querySelector("#dryrun-result .error")?.textContent.includes('Publish to "audit.admin.cleanup.dryrun"')`)
	if text := eval[string](t, ctx, `document.querySelector("main").innerText`); !strings.Contains(text, "not an operator") {
		t.Errorf("the view does not say that this login is not an operator's: %q", text[:min(len(text), 300)])
	}
	screenshot(t, ctx, t.ArtifactDir(), "operations-refused")

	login("operator", "operator-example")
	if got := eval[string](t, ctx, `document.body.dataset.operator`); got != "yes" {
		t.Fatalf("the operator is not taken for one (%q)", got)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="operations"]`)))
	waitFor(t, ctx, "the operator's status", `document.querySelector("#status-verify")`)
	waitFor(t, ctx, "the operator's poison stream", `document.querySelector("#poison-empty")`)
	if n := eval[int](t, ctx, `document.querySelectorAll("main .error").length`); n != 0 {
		t.Errorf("the operator's view shows %d errors: %s", n, eval[string](t, ctx, `document.querySelector("main .error").textContent`))
	}
}
