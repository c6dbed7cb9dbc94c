package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/service/servicetest"
)

func TestIngestSinglesBulkDuplicatesPoisonAndRestart(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	ctx := context.Background()

	results, err := nc.SubscribeSync("audit.results.bulk")
	if err != nil {
		t.Fatal(err)
	}

	// 1,000 single events and one bulk job of 500.
	began := time.Now()
	var singles []*nats.Msg
	for i := range 1000 {
		id := fmt.Sprintf("single-%04d", i)
		singles = append(singles, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "doc.read")))
	}
	servicetest.PublishAll(t, js, singles)
	var bulk []string
	for i := range 500 {
		bulk = append(bulk, servicetest.EventJSON(fmt.Sprintf("bulk-%03d", i), "doc.write"))
	}
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.bulk", "bulk-job-1", `{"events":[`+strings.Join(bulk, ",")+`]}`)})
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "")
		return n == 1500, fmt.Sprintf("%d rows, want 1500", n)
	})
	t.Logf("1,000 singles + a 500-event bulk stored in %s", time.Since(began).Round(time.Millisecond))
	if n := servicetest.CountRows(t, db, "action = 'doc.write'"); n != 500 {
		t.Fatalf("bulk rows = %d, want 500", n)
	}

	res, err := results.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no bulk result: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(map[string]any{"id": "bulk-job-1", "total": 500.0, "inserted": 500.0, "duplicates": 0.0, "rejected": []any{}}) {
		t.Fatalf("bulk result = %s", res.Data)
	}

	// Re-publishing the same 1,000 ids adds nothing. JetStream drops the
	// ones with the same Nats-Msg-Id; the table drops the ones sent under a
	// new message id.
	acks := servicetest.PublishAll(t, js, singles[:10])
	for _, a := range acks {
		if !a.Duplicate {
			t.Fatalf("re-publish with the same Nats-Msg-Id was not a stream duplicate: %+v", a)
		}
	}
	var again []*nats.Msg
	for i := range 1000 {
		id := fmt.Sprintf("single-%04d", i)
		again = append(again, servicetest.EventMsg("audit.log", "again-"+id, servicetest.EventJSON(id, "doc.read")))
	}
	servicetest.PublishAll(t, js, again)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		d := servicetest.Metric(t, svc.HTTPAddr(), `auditq_events_duplicate_total{handler="audit.log"}`)
		return d == 1000, fmt.Sprintf("%v duplicates counted, want 1000", d)
	})
	if n := servicetest.CountRows(t, db, ""); n != 1500 {
		t.Fatalf("rows after re-publish = %d, want 1500", n)
	}

	// Five malformed messages go to the poison stream with a reason naming
	// the field; valid traffic around them is unaffected.
	bad := []struct{ body, reason string }{
		{`{"id":"bad-1","action":`, "action: is not valid JSON: unexpected end of input"},
		{`{"id":"bad-2","resourceType":"doc","resourceId":"d1"}`, "action: is required"},
		{`{"id":"bad-3","action":"a","resourceType":"doc","resourceId":"d1","success":"yes"}`, "success: must be true or false"},
		{`{"id":"bad-4","action":"a\u0000","resourceType":"doc","resourceId":"d1"}`, "action: must not contain NUL"},
		{`{"id":"bad-5","action":"a","resourceType":"doc","resourceId":"d1","details":{"blob":"` + strings.Repeat("x", 2<<20) + `"}}`, "details: is 2097163 bytes, more than the limit of 65536"},
	}
	var mixed []*nats.Msg
	for i, b := range bad {
		mixed = append(mixed, servicetest.EventMsg("audit.log", fmt.Sprintf("bad-%d", i+1), b.body))
		id := fmt.Sprintf("after-bad-%d", i)
		mixed = append(mixed, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "doc.read")))
	}
	servicetest.PublishAll(t, js, mixed)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'after-bad-%'")
		return n == 5, fmt.Sprintf("%d valid events around the bad ones stored, want 5", n)
	})
	poison, err := js.Stream(ctx, "AUDIT_POISON")
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		info, err := poison.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.State.Msgs == 5, fmt.Sprintf("%d poison messages, want 5", info.State.Msgs)
	})
	// Handlers run concurrently, so the poison stream's order is not the
	// publish order: each bad message is found by its original payload.
	byBody := map[string]*jetstream.RawStreamMsg{}
	for seq := uint64(1); seq <= uint64(len(bad)); seq++ {
		m, err := poison.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		byBody[string(m.Data)] = m
	}
	for i, b := range bad {
		m := byBody[b.body]
		if m == nil {
			t.Errorf("bad message %d: no poison message holds its original payload", i+1)
			continue
		}
		if m.Subject != "audit.poison.log" {
			t.Errorf("poison subject = %q", m.Subject)
		}
		if r := m.Header.Get("reason_poisoned"); !strings.HasPrefix(r, b.reason) {
			t.Errorf("bad message %d: reason = %q, want prefix %q", i+1, r, b.reason)
		}
		if h := m.Header.Get("handler_poisoned"); h != "audit.log" {
			t.Errorf("bad message %d: handler = %q", i+1, h)
		}
	}
	if n := servicetest.CountRows(t, db, "id LIKE 'bad-%'"); n != 0 {
		t.Fatalf("%d malformed events stored", n)
	}

	// A restart continues where the consumers stopped: nothing acked is
	// replayed, and new events still flow.
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	svc2 := servicetest.Start(t, env)
	_, js2 := natstest.Connect(t, svc2.NATSURL())
	servicetest.PublishAll(t, js2, []*nats.Msg{servicetest.EventMsg("audit.log", "after-restart", servicetest.EventJSON("after-restart", "doc.read"))})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "")
		return n == 1506, fmt.Sprintf("%d rows, want 1506", n)
	})
	if d := servicetest.Metric(t, svc2.HTTPAddr(), `auditq_events_duplicate_total{handler="audit.log"}`); d != 0 {
		t.Fatalf("restart replayed %v acked messages", d)
	}
	if i := servicetest.Metric(t, svc2.HTTPAddr(), `auditq_events_ingested_total{handler="audit.log"}`); i != 1 {
		t.Fatalf("after restart %v events ingested, want 1", i)
	}
	stream, err := js2.Stream(ctx, "AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("audit.>"))
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"audit.log", "audit.bulk"} {
		if n := info.State.Subjects[subj]; n != 0 {
			t.Fatalf("AUDIT still holds %d messages on %s; acked jobs must leave the work queue", n, subj)
		}
	}
}

func TestBulkWithInvalidEventsReportsEachAndPoisonsThem(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	results, err := nc.SubscribeSync("audit.results.bulk")
	if err != nil {
		t.Fatal(err)
	}
	// One event already stored, so the bulk counts a duplicate too.
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "dup", servicetest.EventJSON("dup", "doc.read"))})
	servicetest.Eventually(t, 10*time.Second, func() (bool, string) { return servicetest.CountRows(t, db, "") == 1, "first event not stored" })

	body := `{"events":[` + servicetest.EventJSON("ok-1", "doc.read") + `,{"action":"x"},` + servicetest.EventJSON("dup", "doc.read") + `,"nope",` + servicetest.EventJSON("ok-2", "doc.read") + `]}`
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.bulk", "job-mixed", body)})
	m, err := results.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"job-mixed","total":5,"inserted":2,"duplicates":1,"rejected":[{"index":1,"error":"events[1].resourceType: is required: a non-empty string"},{"index":3,"error":"events[3]: must be a JSON object, got a string"}]}`
	if string(m.Data) != want {
		t.Fatalf("result\n got  %s\n want %s", m.Data, want)
	}
	if n := servicetest.CountRows(t, db, ""); n != 3 {
		t.Fatalf("rows = %d, want 3", n)
	}
	poison, err := js.Stream(context.Background(), "AUDIT_POISON")
	if err != nil {
		t.Fatal(err)
	}
	for seq, idx := range map[uint64]string{1: "1", 2: "3"} {
		pm, err := poison.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if pm.Subject != "audit.poison.bulk" || pm.Header.Get("bulk_index") != idx || pm.Header.Get("bulk_id") != "job-mixed" {
			t.Fatalf("poison %d: subject %s headers %v", seq, pm.Subject, pm.Header)
		}
	}
}

// A transient failure (here: the table is briefly unavailable) is retried
// and redelivered, never poisoned, and the event is stored once it clears.
func TestTransientFailureIsRetriedNotPoisoned(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_RETRY_ATTEMPTS"] = "2"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	_, js := natstest.Connect(t, svc.NATSURL())
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "ALTER TABLE audit_logs RENAME TO audit_logs_away"); err != nil {
		t.Fatal(err)
	}
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "late", servicetest.EventJSON("late", "doc.read"))})
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		n := servicetest.Metric(t, svc.HTTPAddr(), `auditq_handler_duration_seconds_count{handler="audit.log",outcome="error"}`)
		return n >= 1, "the failing attempt was not observed"
	})
	if _, err := db.ExecContext(ctx, "ALTER TABLE audit_logs_away RENAME TO audit_logs"); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id = 'late'")
		return n == 1, "event not stored after the failure cleared"
	})
	if p := servicetest.Metric(t, svc.HTTPAddr(), `auditq_messages_poisoned_total{handler="audit.log"}`); p != 0 {
		t.Fatalf("%v messages poisoned by a transient failure", p)
	}
}

func TestReadyzAndHealthz(t *testing.T) {
	svc := servicetest.Start(t, servicetest.Env(t))
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + svc.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d", path, resp.StatusCode)
		}
	}
}
