package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
)

// publishAll publishes msgs asynchronously, as a busy service would, and
// waits for every ack.
func publishAll(t *testing.T, js jetstream.JetStream, msgs []*nats.Msg) []*jetstream.PubAck {
	t.Helper()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		futures[i] = f
	}
	acks := make([]*jetstream.PubAck, len(msgs))
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			acks[i] = ack
		case err := <-f.Err():
			t.Fatalf("publish %d not acked: %v", i, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("publish %d: no ack", i)
		}
	}
	return acks
}

func eventMsg(subject, msgID string, body string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte(body)
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	return m
}

func eventJSON(id, action string) string {
	return fmt.Sprintf(`{"id":%q,"userId":"u-%s","action":%q,"resourceType":"doc","resourceId":"d1","ipAddress":"192.0.2.1","timestamp":"2026-11-24T10:00:00Z"}`, id, id, action)
}

// metric returns the value of one sample on /metrics, e.g.
// `auditq_events_duplicate_total{handler="audit.log"}`; 0 when absent.
func metric(t *testing.T, svc *service, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + svc.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func TestIngestSinglesBulkDuplicatesPoisonAndRestart(t *testing.T) {
	env := testEnv(t)
	svc := startService(t, env)
	db := openDB(t, env)
	nc, js := natstest.Connect(t, svc.natsURL)
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
		singles = append(singles, eventMsg("audit.log", id, eventJSON(id, "doc.read")))
	}
	publishAll(t, js, singles)
	var bulk []string
	for i := range 500 {
		bulk = append(bulk, eventJSON(fmt.Sprintf("bulk-%03d", i), "doc.write"))
	}
	publishAll(t, js, []*nats.Msg{eventMsg("audit.bulk", "bulk-job-1", `{"events":[`+strings.Join(bulk, ",")+`]}`)})
	eventually(t, 60*time.Second, func() (bool, string) {
		n := countRows(t, db, "")
		return n == 1500, fmt.Sprintf("%d rows, want 1500", n)
	})
	t.Logf("1,000 singles + a 500-event bulk stored in %s", time.Since(began).Round(time.Millisecond))
	if n := countRows(t, db, "action = 'doc.write'"); n != 500 {
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
	acks := publishAll(t, js, singles[:10])
	for _, a := range acks {
		if !a.Duplicate {
			t.Fatalf("re-publish with the same Nats-Msg-Id was not a stream duplicate: %+v", a)
		}
	}
	var again []*nats.Msg
	for i := range 1000 {
		id := fmt.Sprintf("single-%04d", i)
		again = append(again, eventMsg("audit.log", "again-"+id, eventJSON(id, "doc.read")))
	}
	publishAll(t, js, again)
	eventually(t, 60*time.Second, func() (bool, string) {
		d := metric(t, svc, `auditq_events_duplicate_total{handler="audit.log"}`)
		return d == 1000, fmt.Sprintf("%v duplicates counted, want 1000", d)
	})
	if n := countRows(t, db, ""); n != 1500 {
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
		mixed = append(mixed, eventMsg("audit.log", fmt.Sprintf("bad-%d", i+1), b.body))
		id := fmt.Sprintf("after-bad-%d", i)
		mixed = append(mixed, eventMsg("audit.log", id, eventJSON(id, "doc.read")))
	}
	publishAll(t, js, mixed)
	eventually(t, 30*time.Second, func() (bool, string) {
		n := countRows(t, db, "id LIKE 'after-bad-%'")
		return n == 5, fmt.Sprintf("%d valid events around the bad ones stored, want 5", n)
	})
	poison, err := js.Stream(ctx, "AUDIT_POISON")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		info, err := poison.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.State.Msgs == 5, fmt.Sprintf("%d poison messages, want 5", info.State.Msgs)
	})
	for i, b := range bad {
		m, err := poison.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "audit.poison.log" {
			t.Errorf("poison subject = %q", m.Subject)
		}
		if r := m.Header.Get("reason_poisoned"); !strings.HasPrefix(r, b.reason) {
			t.Errorf("poison %d reason = %q, want prefix %q", i+1, r, b.reason)
		}
		if h := m.Header.Get("handler_poisoned"); h != "audit.log" {
			t.Errorf("poison %d handler = %q", i+1, h)
		}
		if string(m.Data) != b.body {
			t.Errorf("poison %d does not hold the original payload", i+1)
		}
	}
	if n := countRows(t, db, "id LIKE 'bad-%'"); n != 0 {
		t.Fatalf("%d malformed events stored", n)
	}

	// A restart continues where the consumers stopped: nothing acked is
	// replayed, and new events still flow.
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	svc2 := startService(t, env)
	_, js2 := natstest.Connect(t, svc2.natsURL)
	publishAll(t, js2, []*nats.Msg{eventMsg("audit.log", "after-restart", eventJSON("after-restart", "doc.read"))})
	eventually(t, 30*time.Second, func() (bool, string) {
		n := countRows(t, db, "")
		return n == 1506, fmt.Sprintf("%d rows, want 1506", n)
	})
	if d := metric(t, svc2, `auditq_events_duplicate_total{handler="audit.log"}`); d != 0 {
		t.Fatalf("restart replayed %v acked messages", d)
	}
	if i := metric(t, svc2, `auditq_events_ingested_total{handler="audit.log"}`); i != 1 {
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
	env := testEnv(t)
	svc := startService(t, env)
	db := openDB(t, env)
	nc, js := natstest.Connect(t, svc.natsURL)
	results, err := nc.SubscribeSync("audit.results.bulk")
	if err != nil {
		t.Fatal(err)
	}
	// One event already stored, so the bulk counts a duplicate too.
	publishAll(t, js, []*nats.Msg{eventMsg("audit.log", "dup", eventJSON("dup", "doc.read"))})
	eventually(t, 10*time.Second, func() (bool, string) { return countRows(t, db, "") == 1, "first event not stored" })

	body := `{"events":[` + eventJSON("ok-1", "doc.read") + `,{"action":"x"},` + eventJSON("dup", "doc.read") + `,"nope",` + eventJSON("ok-2", "doc.read") + `]}`
	publishAll(t, js, []*nats.Msg{eventMsg("audit.bulk", "job-mixed", body)})
	m, err := results.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"job-mixed","total":5,"inserted":2,"duplicates":1,"rejected":[{"index":1,"error":"events[1].resourceType: is required: a non-empty string"},{"index":3,"error":"events[3]: must be a JSON object, got a string"}]}`
	if string(m.Data) != want {
		t.Fatalf("result\n got  %s\n want %s", m.Data, want)
	}
	if n := countRows(t, db, ""); n != 3 {
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
	env := testEnv(t)
	env["AUDITQ_RETRY_ATTEMPTS"] = "2"
	svc := startService(t, env)
	db := openDB(t, env)
	_, js := natstest.Connect(t, svc.natsURL)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "ALTER TABLE audit_logs RENAME TO audit_logs_away"); err != nil {
		t.Fatal(err)
	}
	publishAll(t, js, []*nats.Msg{eventMsg("audit.log", "late", eventJSON("late", "doc.read"))})
	eventually(t, 20*time.Second, func() (bool, string) {
		n := metric(t, svc, `auditq_handler_duration_seconds_count{handler="audit.log",outcome="error"}`)
		return n >= 1, "the failing attempt was not observed"
	})
	if _, err := db.ExecContext(ctx, "ALTER TABLE audit_logs_away RENAME TO audit_logs"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		n := countRows(t, db, "id = 'late'")
		return n == 1, "event not stored after the failure cleared"
	})
	if p := metric(t, svc, `auditq_messages_poisoned_total{handler="audit.log"}`); p != 0 {
		t.Fatalf("%v messages poisoned by a transient failure", p)
	}
}

func TestReadyzAndHealthz(t *testing.T) {
	svc := startService(t, testEnv(t))
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + svc.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d", path, resp.StatusCode)
		}
	}
}
