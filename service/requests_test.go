package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service"
	"github.com/auditq/auditq/service/servicetest"
)

// clientConn connects a plain NATS client to svc.
func natsClient(t *testing.T, svc *service.Service) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// answer is a reply of the request service.
type answer struct {
	data        []byte
	code, error string // Nats-Service-Error-Code and Nats-Service-Error; "" on success
}

func ask(t *testing.T, nc *nats.Conn, subject, body string, header ...string) answer {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = []byte(body)
	for i := 0; i+1 < len(header); i += 2 {
		m.Header.Set(header[i], header[i+1])
	}
	reply, err := nc.RequestMsg(m, 20*time.Second)
	if err != nil {
		t.Fatalf("request %s %s: %v", subject, body, err)
	}
	return answer{reply.Data, reply.Header.Get("Nats-Service-Error-Code"), reply.Header.Get("Nats-Service-Error")}
}

func (a answer) ok(t *testing.T) answer {
	t.Helper()
	if a.code != "" {
		t.Fatalf("error %s: %s", a.code, a.error)
	}
	return a
}

func (a answer) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.data, &m); err != nil {
		t.Fatalf("decode %s: %v", a.data, err)
	}
	return m
}

// seed writes the events straight through the repository (fast, no NATS).
func seed(t testing.TB, db *bun.DB, events ...audit.Event) {
	t.Helper()
	if _, err := postgres.NewRepository(db).Write(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

func at(s string) time.Time {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return v
}

func newEvent(id, when, user, action, resourceType string, ok bool) audit.Event {
	t := at(when)
	return audit.Event{ID: id, UserID: user, Action: action, ResourceType: resourceType, ResourceID: "r-" + id,
		Success: ok, OccurredAt: t, ReceivedAt: t}
}

// berlinDST are events around Berlin's spring-forward day 2026-03-29,
// [2026-03-28T23:00Z, 2026-03-29T22:00Z) there: five of them fall in it.
func berlinDST() []audit.Event {
	return []audit.Event{
		newEvent("s1", "2026-03-28T22:59:59.999999Z", "u1", "user.login", "user", true), // out
		newEvent("s2", "2026-03-28T23:00:00Z", "u1", "user.login", "user", true),
		newEvent("s3", "2026-03-29T00:59:59Z", "u1", "user.login", "user", true),
		newEvent("s4", "2026-03-29T01:00:00Z", "u2", "user.login", "user", false),
		newEvent("s5", "2026-03-29T12:00:00Z", "u2", "guild.update", "guild", true),
		newEvent("s6", "2026-03-29T21:59:59.999999Z", "", "system.backup", "system", true),
		newEvent("s7", "2026-03-29T22:00:00Z", "u3", "user.logout", "user", true), // out
	}
}

// readEvents returns the details of the audit events recording reads.
func readEvents(t *testing.T, db *bun.DB, action string) []map[string]any {
	t.Helper()
	var rows []struct {
		Details    json.RawMessage `bun:"details"`
		ResourceID string          `bun:"resource_id"`
		Success    bool            `bun:"success"`
	}
	err := db.NewSelect().Table("audit_logs").Column("details", "resource_id", "success").
		Where("action = ? AND resource_type = 'audit_log'", action).OrderExpr("occurred_at, id").Scan(context.Background(), &rows)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal(r.Details, &out[i]); err != nil {
			t.Fatal(err)
		}
		if out[i]["endpoint"] != r.ResourceID {
			t.Errorf("read event resource id %q, endpoint %v", r.ResourceID, out[i]["endpoint"])
		}
		out[i]["_success"] = r.Success
	}
	return out
}

func TestReportOverNATSIsStoredListedAndAudited(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seed(t, db, berlinDST()...)
	nc := natsClient(t, svc)

	rep := ask(t, nc, "audit.report", `{"reportType":"daily","date":"2026-03-29","timeZone":"Europe/Berlin"}`,
		"Auditq-Requester", "alice").ok(t).object(t)
	id := rep["id"].(float64)
	if id < 1 || rep["trigger"] != "request" || rep["reportType"] != "daily" {
		t.Fatalf("report header: %v", rep)
	}
	wantPeriod := map[string]any{"startDate": "2026-03-29T00:00:00+01:00", "endDate": "2026-03-30T00:00:00+02:00", "timeZone": "Europe/Berlin"}
	if !reflect.DeepEqual(rep["period"], wantPeriod) {
		t.Fatalf("period %v", rep["period"])
	}
	summary, _ := json.Marshal(rep["summary"])
	if string(summary) != `{"actionBreakdown":[{"action":"user.login","count":3},{"action":"guild.update","count":1},{"action":"system.backup","count":1}],"failed":1,"successRate":80,"successful":4,"total":5}` {
		t.Fatalf("summary %s", summary)
	}
	users, _ := json.Marshal(rep["topUsers"])
	failures, _ := json.Marshal(rep["failureAnalysis"])
	if string(users) != `[{"count":2,"userId":"u1"},{"count":2,"userId":"u2"}]` ||
		string(failures) != `[{"action":"user.login","failed":1,"failureRate":33.33,"total":3}]` {
		t.Fatalf("topUsers %s, failureAnalysis %s", users, failures)
	}

	// Stored: audit.report.get returns the same report.
	got := ask(t, nc, "audit.report.get", fmt.Sprintf(`{"id":%d}`, int64(id))).ok(t).object(t)
	if !reflect.DeepEqual(got, rep) {
		t.Fatalf("audit.report.get:\n got  %v\n want %v", got, rep)
	}
	if a := ask(t, nc, "audit.report.get", `{"id":999999}`); a.code != "404" {
		t.Fatalf("missing report: %+v", a)
	}

	// A second report; the list is newest first and pages by cursor.
	ask(t, nc, "audit.report", `{"reportType":"weekly","date":"2026-03-29"}`).ok(t)
	page1 := ask(t, nc, "audit.report.list", `{"limit":1}`).ok(t).object(t)
	reports := page1["reports"].([]any)
	if len(reports) != 1 || reports[0].(map[string]any)["reportType"] != "weekly" || page1["nextCursor"] == nil {
		t.Fatalf("list page 1: %v", page1)
	}
	page2 := ask(t, nc, "audit.report.list", fmt.Sprintf(`{"limit":1,"cursor":%q}`, page1["nextCursor"])).ok(t).object(t)
	reports = page2["reports"].([]any)
	if len(reports) != 1 || reports[0].(map[string]any)["id"] != id || page2["nextCursor"] != nil {
		t.Fatalf("list page 2 (the last): %v", page2)
	}
	daily := ask(t, nc, "audit.report.list", `{"reportType":"daily"}`).ok(t).object(t)
	if len(daily["reports"].([]any)) != 1 {
		t.Fatalf("daily reports: %v", daily)
	}

	// Every read is an audit event, with the request and who asked.
	reads := readEvents(t, db, "audit.report")
	var endpoints []string
	for _, r := range reads {
		endpoints = append(endpoints, r["endpoint"].(string))
	}
	want := []string{"audit.report", "audit.report.get", "audit.report.get", "audit.report", "audit.report.list", "audit.report.list", "audit.report.list"}
	if !reflect.DeepEqual(endpoints, want) {
		t.Fatalf("recorded reads %v, want %v", endpoints, want)
	}
	first := reads[0]
	if first["reportId"] != id || first["trigger"] != "request" || first["_success"] != true ||
		!reflect.DeepEqual(first["request"], map[string]any{"reportType": "daily", "date": "2026-03-29", "timeZone": "Europe/Berlin"}) ||
		!reflect.DeepEqual(first["requester"], map[string]any{"unverifiedClaim": "alice"}) {
		t.Fatalf("recorded report read: %v", first)
	}
	if reads[2]["_success"] != false {
		t.Fatalf("the 404 read is recorded as failed: %v", reads[2])
	}

	// Discoverable as a micro service (what "nats micro ls" asks).
	info := ask(t, nc, "$SRV.INFO.auditq", "").object(t)
	var subjects []string
	for _, e := range info["endpoints"].([]any) {
		subjects = append(subjects, e.(map[string]any)["subject"].(string))
	}
	if info["name"] != "auditq" || !reflect.DeepEqual(slices.Sorted(slices.Values(subjects)), slices.Sorted(slices.Values(contract.RequestSubjects()))) {
		t.Fatalf("service info: %v", info)
	}
}

func TestRequestErrorsName400TheField(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_REPORT_MAX_DAYS"] = "31"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc := natsClient(t, svc)
	cases := []struct {
		subject, body, field string
	}{
		{"audit.report", `{}`, "reportType"},
		{"audit.report", ``, "reportType"},
		{"audit.report", `{"reportType":"yearly"}`, "reportType"},
		{"audit.report", `{"reportType":7}`, "reportType"},
		{"audit.report", `{"reportType":"daily","date":"2026-02-30"}`, "date"},
		{"audit.report", `{"reportType":"daily","date":"yesterday"}`, "date"},
		{"audit.report", `{"reportType":"daily","timeZone":"Mars/Olympus"}`, "timeZone"},
		{"audit.report", `{"reportType":"daily","startDate":"2026-03-01T00:00:00Z"}`, "startDate"},
		{"audit.report", `{"reportType":"custom","endDate":"2026-03-01T00:00:00Z"}`, "startDate"},
		{"audit.report", `{"reportType":"custom","startDate":"2026-03-01","endDate":"2026-03-02T00:00:00Z"}`, "startDate"},
		{"audit.report", `{"reportType":"custom","startDate":"2026-03-02T00:00:00Z","endDate":"2026-03-01T00:00:00Z"}`, "endDate"},
		{"audit.report", `{"reportType":"custom","startDate":"2026-01-01T00:00:00Z","endDate":"2026-03-01T00:00:00Z"}`, "endDate"}, // > 31 days
		{"audit.report", `{"reportType":"daily","dat":"2026-03-01"}`, "dat"},                                                       // unknown field
		{"audit.report", `{"reportType":"daily","timezone":"UTC"}`, "timezone"},                                                    // field names are case-sensitive
		{"audit.report", `{"reportType":"daily","reportType":"weekly"}`, "reportType"},                                             // repeated
		{"audit.report", `{"reportType":"daily"} {}`, "(request)"},
		{"audit.report", `[{"reportType":"daily"}]`, "(request)"},
		{"audit.report", `{"reportType":"daily"`, "(request)"},
		{"audit.query", `{"limit":0}`, "limit"},
		{"audit.query", `{"limit":1001}`, "limit"},
		{"audit.query", `{"limit":"10"}`, "limit"},
		{"audit.query", `{"limit":1.5}`, "limit"},
		{"audit.query", `{"cursor":"not-a-cursor"}`, "cursor"},
		{"audit.query", `{"cursor":"eyJ0IjoieCJ9"}`, "cursor"}, // base64 of {"t":"x"}
		{"audit.query", `{"from":"2026-13-01T00:00:00Z"}`, "from"},
		{"audit.query", `{"from":"2026-03-02T00:00:00Z","to":"2026-03-01T00:00:00Z"}`, "to"},
		{"audit.query", `{"success":"yes"}`, "success"},
		{"audit.query", `{"userId":"a\u0000b"}`, "userId"},
		{"audit.query", `{"action":"` + strings.Repeat("x", 300) + `"}`, "action"},
		{"audit.query", `{"user":"u1"}`, "user"}, // unknown field: userId is meant
		{"audit.event.get", `{}`, "id"},
		{"audit.event.get", `{"id":42}`, "id"},
		{"audit.report.get", `{}`, "id"},
		{"audit.report.get", `{"id":"7"}`, "id"},
		{"audit.report.list", `{"limit":101}`, "limit"},
		{"audit.report.list", `{"cursor":"%%%"}`, "cursor"},
		{"audit.report.list", `{"reportType":"hourly"}`, "reportType"},
	}
	for _, c := range cases {
		a := ask(t, nc, c.subject, c.body)
		if a.code != "400" || !strings.HasPrefix(a.error, c.field+": ") {
			t.Errorf("%s %s: got %q %q, want 400 naming %s", c.subject, c.body, a.code, a.error, c.field)
			continue
		}
		var body struct{ Code, Error, Field string }
		if err := json.Unmarshal(a.data, &body); err != nil || body.Code != "400" || body.Field != c.field || body.Error != a.error {
			t.Errorf("%s %s: error body %s", c.subject, c.body, a.data)
		}
	}
	if a := ask(t, nc, "audit.event.get", `{"id":"nope"}`); a.code != "404" || a.error != `event "nope": not found` {
		t.Errorf("unknown event: %+v", a)
	}
	// Rejected requests read nothing and are not recorded as reads.
	if n := servicetest.CountRows(t, db, "action IN ('audit.report', 'audit.query') AND success"); n != 0 {
		t.Errorf("%d successful reads recorded", n)
	}
}

func TestSearchOverNATSPagesWithoutSkipsOrRepeats(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc := natsClient(t, svc)
	base := at("2026-05-01T00:00:00Z")
	var evs []audit.Event
	for i := range 130 {
		user := fmt.Sprintf("u%d", i%3)
		if i%10 == 0 {
			user = "" // system
		}
		e := newEvent(fmt.Sprintf("q%03d", i), base.Add(time.Duration(i/2)*time.Second).Format(time.RFC3339Nano), user,
			[]string{"guild.create", "guild.member.add", "user.login"}[i%3], "doc", i%7 != 0)
		e.SessionID = "sess-" + user
		evs = append(evs, e)
	}
	seed(t, db, evs...)

	seen := map[string]int{}
	cursor := ""
	var pages int
	for {
		body := `{"resourceType":"doc","limit":50}`
		if cursor != "" {
			body = fmt.Sprintf(`{"resourceType":"doc","limit":50,"cursor":%q}`, cursor)
		}
		page := ask(t, nc, "audit.query", body).ok(t)
		var res struct {
			Events []struct {
				ID        string    `json:"id"`
				Timestamp time.Time `json:"timestamp"`
			} `json:"events"`
			NextCursor *string `json:"nextCursor"`
		}
		if err := json.Unmarshal(page.data, &res); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range res.Events {
			seen[e.ID]++
		}
		if res.NextCursor == nil {
			break
		}
		cursor = *res.NextCursor
		// Between pages: one newer event and one far older (late) one.
		seed(t, db,
			newEvent(fmt.Sprintf("new%d", pages), "2026-06-01T00:00:00Z", "u1", "guild.create", "doc", true),
			newEvent(fmt.Sprintf("late%d", pages), base.Add(-time.Duration(pages)*time.Hour).Format(time.RFC3339Nano), "u1", "guild.create", "doc", true))
	}
	for _, e := range evs {
		if seen[e.ID] != 1 {
			t.Errorf("%s seen %d times", e.ID, seen[e.ID])
		}
	}
	for id, n := range seen {
		if n != 1 || strings.HasPrefix(id, "new") {
			t.Errorf("%s seen %d times", id, n)
		}
	}
	if pages != 3 || len(seen) != 130+2 { // 130 + the late events inserted before pages 2 and 3
		t.Errorf("%d pages, %d events", pages, len(seen))
	}

	// Filters compose: a prefix, a user, failures only; newest first.
	res := ask(t, nc, "audit.query", `{"action":"guild.*","userId":"u1","success":false,"to":"2026-05-01T00:01:00Z"}`).ok(t).object(t)
	var ids []string
	for _, e := range res["events"].([]any) {
		ids = append(ids, e.(map[string]any)["id"].(string))
	}
	// u1: i%3==1 (guild.member.add) but not i%10==0 (system); failures:
	// i%7==0; before 00:01:00: i < 120.
	if want := []string{"q112", "q091", "q049", "q028", "q007"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("filtered search %v, want %v", ids, want)
	}

	// One event, as stored; a system event has userId null.
	ev := ask(t, nc, "audit.event.get", `{"id":"q010"}`).ok(t).object(t)
	if ev["userId"] != nil || ev["action"] != "guild.member.add" || ev["timestamp"] != "2026-05-01T00:00:05Z" || ev["success"] != true || ev["sessionId"] != "sess-" {
		t.Fatalf("event: %v", ev)
	}

	reads := readEvents(t, db, "audit.query")
	if len(reads) != pages+2 || reads[0]["returned"] != float64(50) || reads[len(reads)-1]["endpoint"] != "audit.event.get" {
		t.Fatalf("recorded %d query reads: %v", len(reads), reads)
	}
}

func TestReadsAreNotRecordedWhenTurnedOff(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_AUDIT_READS"] = "false"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc := natsClient(t, svc)
	ask(t, nc, "audit.report", `{"reportType":"monthly"}`).ok(t)
	ask(t, nc, "audit.query", `{}`).ok(t)
	if n := servicetest.CountRows(t, db, ""); n != 0 {
		t.Fatalf("%d events recorded", n)
	}
}

// A request that cannot finish in time is answered 504 at its deadline;
// the service keeps answering afterwards.
func TestRequestDeadline(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_REQUEST_TIMEOUT"] = "500ms"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc := natsClient(t, svc)

	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "LOCK TABLE audit_reports IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a := ask(t, nc, "audit.report", `{"reportType":"daily"}`)
	if a.code != "504" || time.Since(start) > 10*time.Second {
		t.Fatalf("blocked report: %+v after %s", a, time.Since(start))
	}
	_ = tx.Rollback()
	ask(t, nc, "audit.report", `{"reportType":"daily"}`).ok(t)
}

func TestReportGenerateJobStoresAndPublishes(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_REPORT_CRON"] = "0 0 0 1 1 *" // schedules on (stream AUDIT allows them), none firing during the test
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seed(t, db, berlinDST()...)
	nc := natsClient(t, svc)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	results, err := js.OrderedConsumer(ctx, natsjs.StreamResults, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"audit.results.report"}})
	if err != nil {
		t.Fatal(err)
	}
	job := servicetest.EventMsg("audit.report.generate", "job-1", `{"reportType":"daily","date":"2026-03-29","timeZone":"Europe/Berlin"}`)
	// A real one-shot JetStream schedule, so the fired job carries
	// Nats-Scheduler as the nightly one will.
	scheduled := servicetest.EventMsg("audit.schedule.test-report", "", `{"reportType":"daily","date":"2026-03-29"}`)
	scheduled.Header.Set(jetstream.ScheduleHeader, "@at "+time.Now().Add(time.Second).UTC().Format(time.RFC3339))
	scheduled.Header.Set(jetstream.ScheduleTargetHeader, "audit.report.generate")
	servicetest.PublishAll(t, js, []*nats.Msg{job, scheduled,
		servicetest.EventMsg("audit.report.generate", "bad-type", `{"reportType":"yearly"}`),
		servicetest.EventMsg("audit.report.generate", "bad-field", `{"reportType":"daily","timezone":"UTC"}`),
	})

	got := map[string]audit.StoredReport{}
	for len(got) < 2 {
		m, err := results.Next(jetstream.FetchMaxWait(20 * time.Second))
		if err != nil {
			t.Fatalf("waiting for results (have %d): %v", len(got), err)
		}
		var r audit.StoredReport
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatal(err)
		}
		if m.Headers().Get("report_id") != fmt.Sprint(r.ID) {
			t.Fatalf("report_id header %q for report %d", m.Headers().Get("report_id"), r.ID)
		}
		got[m.Headers().Get("job_id")] = r
	}
	r := got["job-1"]
	if r.Trigger != "job" || r.Summary.Total != 5 || r.Summary.Failed != 1 || r.Period.TimeZone != "Europe/Berlin" {
		t.Fatalf("job-1 result: %+v", r)
	}
	var sched audit.StoredReport
	for id, rep := range got {
		if id != "job-1" {
			sched = rep
		}
	}
	if sched.Trigger != "schedule" || sched.Summary.Total != 5 { // the UTC day holds s3..s7
		t.Fatalf("scheduled result: %+v", sched)
	}

	// Stored, once per job, with its job id.
	var stored []struct {
		ID      int64  `bun:"id"`
		Trigger string `bun:"trigger"`
		JobID   string `bun:"job_id"`
	}
	if err := db.NewSelect().Table("audit_reports").Column("id", "trigger", "job_id").OrderExpr("id").Scan(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[0].JobID == "" || stored[1].JobID == "" {
		t.Fatalf("stored reports: %+v", stored)
	}
	// Each run recorded as a read, keyed by its job so a redelivery adds none.
	if n := servicetest.CountRows(t, db, "action = 'audit.report' AND id LIKE 'audit.report.generate:%'"); n != 2 {
		t.Fatalf("%d recorded report jobs", n)
	}

	// Invalid jobs are poisoned with the field named, and store nothing.
	reasons := map[string]string{}
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		cons, err := js.OrderedConsumer(ctx, natsjs.StreamPoison, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"audit.poison.report"}})
		if err != nil {
			return false, err.Error()
		}
		batch, err := cons.Fetch(10, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return false, err.Error()
		}
		for m := range batch.Messages() {
			reasons[m.Headers().Get(nats.MsgIdHdr)] = m.Headers().Get("reason_poisoned")
		}
		return len(reasons) == 2, fmt.Sprint(reasons)
	})
	if !strings.Contains(reasons["bad-type"], "reportType: must be one of") || !strings.Contains(reasons["bad-field"], "timezone: unknown field") {
		t.Fatalf("poison reasons: %v", reasons)
	}
}

func TestNoStreamCapturesRequestSubjects(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	js, err := jetstream.New(natsClient(t, svc))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, subj := range contract.RequestSubjects() {
		if name, err := js.StreamNameBySubject(ctx, subj); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("%s is captured by stream %q (%v)", subj, name, err)
		}
	}
	if name, err := js.StreamNameBySubject(ctx, contract.SubjectReportGenerate); err != nil || name != natsjs.StreamAudit {
		t.Errorf("%s: stream %q, %v", contract.SubjectReportGenerate, name, err)
	}
	if _, err := js.Consumer(ctx, natsjs.StreamAudit, "auditq-report-generate"); err != nil {
		t.Errorf("consumer auditq-report-generate: %v", err)
	}
}

func TestReportAndQueryCLI(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seed(t, db, berlinDST()...)

	out, err := runCLI(t, env, svc, "report", "--type", "daily", "--date", "2026-03-29", "--tz", "Europe/Berlin")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"daily report, 2026-03-29T00:00:00+01:00 to 2026-03-30T00:00:00+02:00 (Europe/Berlin)",
		"events 5, successful 4, failed 1, success rate 80.00%",
		"user.login     3", "u1    2", "user.login  1       3      33.33%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, env, svc, "report", "--type", "weekly", "--date", "2026-03-29", "--json")
	var rep audit.StoredReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Summary.Total != 7 || rep.ID < 1 { // the UTC week holds s1..s7
		t.Fatalf("report --json: %v\n%s", err, out)
	}
	out, err = runCLI(t, env, svc, "report", "--id", fmt.Sprint(rep.ID))
	if err != nil || !strings.Contains(out, fmt.Sprintf("report %d, generated", rep.ID)) {
		t.Fatalf("report --id: %v\n%s", err, out)
	}

	out, err = runCLI(t, env, svc, "query", "--action", "user.*", "--user", "u1", "--limit", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "2026-03-29T00:59:59Z") ||
		!strings.Contains(lines[1], "user.login") || !strings.Contains(lines[1], "user/r-s3") || !strings.HasPrefix(lines[3], "2 events; more with --cursor ") {
		t.Fatalf("query output:\n%s", out)
	}
	cursor := strings.TrimPrefix(lines[3], "2 events; more with --cursor ")
	out, err = runCLI(t, env, svc, "query", "--action", "user.*", "--user", "u1", "--limit", "2", "--cursor", cursor, "--json")
	var page struct {
		Events     []map[string]any `json:"events"`
		NextCursor *string          `json:"nextCursor"`
	}
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Events) != 1 || page.Events[0]["id"] != "s1" || page.NextCursor != nil {
		t.Fatalf("query page 2: %v\n%s", err, out)
	}
	out, err = runCLI(t, env, svc, "query", "--id", "s6")
	if err != nil || !strings.Contains(out, "(system)") || !strings.Contains(out, "system.backup") {
		t.Fatalf("query --id: %v\n%s", err, out)
	}

	// Service errors are printed and fail the command.
	_, err = runCLI(t, env, svc, "report", "--type", "yearly")
	var se interface{ Error() string }
	if se = err; err == nil || !strings.Contains(se.Error(), "audit.report answered 400: reportType: must be one of") {
		t.Fatalf("report --type yearly: %v", err)
	}
	if _, err = runCLI(t, env, svc, "query", "--limit", "5000"); err == nil || !strings.Contains(err.Error(), "400: limit:") {
		t.Fatalf("query --limit 5000: %v", err)
	}
	if _, err = runCLI(t, env, svc, "query", "--id", "missing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("query --id missing: %v", err)
	}
	// The CLI names its user, recorded as an unverified claim.
	reads := readEvents(t, db, "audit.report")
	if who, _ := reads[0]["requester"].(map[string]any); who == nil || !strings.HasPrefix(fmt.Sprint(who["unverifiedClaim"]), "cli:") {
		t.Fatalf("requester of a CLI read: %v", reads[0]["requester"])
	}
}
