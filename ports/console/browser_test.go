package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
		// The trail's own searches are hidden unless asked for.
		reads := eval[int](t, ctx, `[...document.querySelectorAll("#trail-rows tr td:nth-child(3)")].filter(td => td.textContent === "audit.query").length`)
		if reads != 0 {
			t.Errorf("%d audit.query rows shown, want them hidden", reads)
		}
		servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "live-1",
			`{"id":"live-1","userId":"dave","action":"user.logout","resourceType":"user","resourceId":"dave"}`)})
		waitFor(t, ctx, "live-1 appears without a reload", `document.querySelector('#trail-rows tr[data-id="live-1"]')`)
		if ids := rowIDs(t, ctx); ids[0] != "live-1" {
			t.Errorf("the first row is %s, want the new event live-1 on top", ids[0])
		}
		run(t, ctx, chromedp.Navigate(base+"#/trail?reads=1"))
		waitFor(t, ctx, "with reads shown, audit.query rows appear",
			`[...document.querySelectorAll("#trail-rows tr td:nth-child(3)")].some(td => td.textContent === "audit.query")`)
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
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return inboxReplies.Load() > 0, "no reply seen under _INBOX_console.>"
	})
}

// operatorStandIn answers the operator subjects (audit.admin.*) on nc
// with the request and reply shapes the console assumes (docs/console.md,
// Operations): a stand-in for the service's own endpoints, which another
// branch adds. It records the sequence numbers replayed and discarded.
type operatorStandIn struct {
	mu        sync.Mutex
	poison    []map[string]any
	replayed  []float64
	discarded []float64
}

func startOperatorStandIn(t *testing.T, nc *nats.Conn) *operatorStandIn {
	t.Helper()
	o := &operatorStandIn{poison: []map[string]any{
		{"seq": 5, "time": "2026-12-01T10:00:00Z", "subject": "audit.poison.log", "job": "log", "id": "bad-1", "reason": "action: is required: a non-empty string", "payload": `{"id":"bad-1"}`},
		{"seq": 7, "time": "2026-12-01T11:00:00Z", "subject": "audit.poison.log", "job": "log", "id": "bad-2", "reason": "resourceId: is required: a non-empty string", "payload": `{"id":"bad-2","action":"x"}`},
	}}
	reply := func(m *nats.Msg, v any) {
		b, _ := json.Marshal(v)
		_ = m.Respond(b)
	}
	seqOf := func(m *nats.Msg) float64 {
		var req struct{ Seq float64 }
		_ = json.Unmarshal(m.Data, &req)
		return req.Seq
	}
	handlers := map[string]nats.MsgHandler{
		"audit.admin.status": func(m *nats.Msg) {
			reply(m, map[string]any{"checkpoint": map[string]any{"seq": 3, "time": "2026-12-02T10:00:00Z", "ageSeconds": 120},
				"lastVerify": map[string]any{"time": "2026-12-02T09:00:00Z", "ok": true, "summary": "verified 60 events"}})
		},
		"audit.admin.poison.list": func(m *nats.Msg) {
			o.mu.Lock()
			defer o.mu.Unlock()
			reply(m, map[string]any{"messages": o.poison, "nextCursor": nil})
		},
		"audit.admin.poison.get": func(m *nats.Msg) {
			o.mu.Lock()
			defer o.mu.Unlock()
			for _, p := range o.poison {
				if float64(p["seq"].(int)) == seqOf(m) {
					reply(m, p)
					return
				}
			}
			reply(m, map[string]any{})
		},
		"audit.admin.poison.replay":  func(m *nats.Msg) { o.remove(seqOf(m), &o.replayed); reply(m, map[string]any{"replayed": true}) },
		"audit.admin.poison.discard": func(m *nats.Msg) { o.remove(seqOf(m), &o.discarded); reply(m, map[string]any{"discarded": true}) },
		"audit.admin.schedules": func(m *nats.Msg) {
			reply(m, map[string]any{"schedules": []map[string]any{{"subject": "audit.schedule.cleanup", "pattern": "0 0 3 * * *", "timeZone": "UTC", "target": "audit.cleanup", "next": "2026-12-03T03:00:00Z"}}})
		},
		"audit.admin.cleanups": func(m *nats.Msg) {
			reply(m, map[string]any{"cleanups": []map[string]any{{"id": "cleanup-1", "cutoff": "2025-12-02T03:00:00Z", "deletedCount": 12, "dryRun": false, "durationMs": 40, "trigger": "schedule"}}})
		},
	}
	for subject, h := range handlers {
		sub, err := nc.Subscribe(subject, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *operatorStandIn) remove(seq float64, into *[]float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	*into = append(*into, seq)
	o.poison = slices.DeleteFunc(o.poison, func(p map[string]any) bool { return float64(p["seq"].(int)) == seq })
}

func (o *operatorStandIn) done() (replayed, discarded []float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.replayed), slices.Clone(o.discarded)
}

// TestConsoleOperations checks that the Operations view is offered only
// when the operator subjects answer, and that it shows the poison stream,
// schedules, cleanups and checkpoint status and sends replay and discard.
func TestConsoleOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test boots a service and chromium")
	}
	t.Skip("the operations view was written against assumed audit.admin.* shapes and this test answers them with a stand-in; the real subjects now exist and answer differently: reconcile the view and test it against the service (issue 18)")
	ctx := browser(t)
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	base := "http://" + svc.HTTPAddr() + "/"

	// Nothing answers audit.admin.*: no Operations link.
	run(t, ctx, chromedp.Navigate(base))
	waitFor(t, ctx, "the operator probe", `document.body.dataset.operator`)
	if got := eval[string](t, ctx, `document.body.dataset.operator`); got != "no" {
		t.Fatalf("operator probe %q without operator subjects, want no", got)
	}
	if eval[bool](t, ctx, `!!document.querySelector('nav a[data-view="operations"]')`) {
		t.Fatal("the Operations link is shown though audit.admin.status does not answer")
	}

	o := startOperatorStandIn(t, nc)
	run(t, ctx, chromedp.Navigate("about:blank"), chromedp.Navigate(base+"#/operations"))
	waitFor(t, ctx, "the poison rows", `document.querySelectorAll("#poison-rows tbody tr[data-seq]").length === 2`)
	waitFor(t, ctx, "schedules and cleanups", `document.querySelector("#schedule-rows") && document.querySelector("#cleanup-rows")`)
	if text := eval[string](t, ctx, `document.querySelector("#ops-status").innerText`); !strings.Contains(text, "#3") || !strings.Contains(text, "ok") {
		t.Errorf("status shows %q, want checkpoint #3 and the verify result", text)
	}
	screenshot(t, ctx, t.ArtifactDir(), "operations")
	run(t, ctx, chromedp.Click(chromedp.CSS(`#poison-rows tr[data-seq="5"] button[aria-label="Show the payload of message 5"]`)))
	waitFor(t, ctx, "the payload", `document.querySelector("#poison-rows pre")?.textContent === '{"id":"bad-1"}'`)
	run(t, ctx, chromedp.Click(chromedp.CSS(`#poison-rows tr[data-seq="5"] button[aria-label="Replay message 5"]`)))
	waitFor(t, ctx, "message 5 gone after its replay", `document.querySelectorAll("#poison-rows tbody tr[data-seq]").length === 1`)
	// Discard asks first: one press arms it, the second discards.
	run(t, ctx, chromedp.Click(chromedp.CSS(`#poison-rows tr[data-seq="7"] button[aria-label="Discard message 7"]`)))
	if r, d := o.done(); !slices.Equal(r, []float64{5}) || len(d) != 0 {
		t.Fatalf("after one press of Discard: replayed %v, discarded %v", r, d)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`#poison-rows tr[data-seq="7"] button[aria-label="Discard message 7"]`)))
	waitFor(t, ctx, "the poison stream empty", `document.querySelector("#poison-rows") === null`)
	if r, d := o.done(); !slices.Equal(r, []float64{5}) || !slices.Equal(d, []float64{7}) {
		t.Errorf("replayed %v, discarded %v; want 5 and 7", r, d)
	}
}
