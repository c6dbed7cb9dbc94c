package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/service"
	"github.com/auditq/auditq/service/servicetest"
)

// poisonLine is one line of "auditq poison list --json" or "show --json".
type poisonLine struct {
	Seq      uint64              `json:"seq"`
	Time     time.Time           `json:"time"`
	Subject  string              `json:"subject"`
	Job      string              `json:"job"`
	ID       string              `json:"id"`
	EventID  string              `json:"eventId"`
	Reason   string              `json:"reason"`
	Handler  string              `json:"handler"`
	ReplayTo string              `json:"replayTo"`
	Headers  map[string][]string `json:"headers"`
	Payload  *string             `json:"payload"`
}

// clientEnv is env for a client of svc: the same, with the URL of its
// NATS server.
func clientEnv(env map[string]string, svc *service.Service) map[string]string {
	c := make(map[string]string, len(env)+1)
	for k, v := range env {
		c[k] = v
	}
	c["AUDITQ_NATS_URL"] = svc.NATSURL()
	return c
}

// poisonJSON runs "auditq poison <args> --json" and decodes its lines.
func poisonJSON(t *testing.T, env map[string]string, args ...string) []poisonLine {
	t.Helper()
	out, err := servicetest.Client(context.Background(), t, env, append(append([]string{"poison"}, args...), "--json")...)
	if err != nil {
		t.Fatalf("poison %v: %v\n%s", args, err, out)
	}
	var lines []poisonLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var pl poisonLine
		if err := json.Unmarshal([]byte(l), &pl); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", l, err)
		}
		lines = append(lines, pl)
	}
	return lines
}

// poisonCmd runs "auditq poison <args>" and fails the test on an error.
func poisonCmd(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, err := servicetest.Client(context.Background(), t, env, append([]string{"poison"}, args...)...)
	if err != nil {
		t.Fatalf("poison %v: %v\n%s", args, err, out)
	}
	return out
}

// waitPoison waits until stream AUDIT_POISON holds n messages.
func waitPoison(t *testing.T, js jetstream.JetStream, n uint64) {
	t.Helper()
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		s, err := js.Stream(context.Background(), natsjs.StreamPoison)
		if err != nil {
			return false, err.Error()
		}
		got := s.CachedInfo().State.Msgs
		return got == n, fmt.Sprintf("AUDIT_POISON holds %d messages, want %d", got, n)
	})
}

func seqs(lines []poisonLine) string {
	var s []string
	for _, l := range lines {
		s = append(s, strconv.FormatUint(l.Seq, 10))
	}
	return strings.Join(s, " ")
}

// An event without resourceType: the service rejects it.
func incomplete(id string) string {
	return fmt.Sprintf(`{"id":%q,"userId":"u1","action":"doc.read","resourceId":"d1"}`, id)
}

func TestPoisonListShowFiltersJSONDiscardAndMetrics(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	env = clientEnv(env, svc)
	_, js := natstest.Connect(t, svc.NATSURL())

	// seq 1, 2: singles; 3, 4: two rejected events of one bulk job (the
	// second without an id); 5: a cleanup job with a bad body.
	// One at a time: handled concurrently, two would be poisoned in
	// either order.
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "m-1", incomplete("ev-1"))})
	waitPoison(t, js, 1)
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "m-2", `{"id":"ev-2","action":`)})
	waitPoison(t, js, 2)
	bulk := `{"events":[` + servicetest.EventJSON("ok-1", "doc.read") + `,{"id":"ev-3","action":"x"},{"action":"y"}]}`
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.bulk", "AUDIT-bulk-1", bulk)})
	waitPoison(t, js, 4)
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.cleanup", "cleanup-1", `{"retentionDays":"soon"}`)})
	waitPoison(t, js, 5)

	// Plain: a header line and one aligned line per message, newest first,
	// with the reason and the event id on each.
	out := poisonCmd(t, env, "list")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "SEQ ") || !strings.Contains(lines[0], "EVENT ID") {
		t.Fatalf("poison list:\n%s", out)
	}
	for i, want := range [][]string{
		{"5 ", "cleanup", "cleanup-1", " - ", "retentionDays"},
		{"4 ", "bulk", "AUDIT-bulk-1:2", "AUDIT-bulk-1:2", "events[2].resourceType: is required"},
		{"3 ", "bulk", "AUDIT-bulk-1:1", "ev-3", "events[1].resourceType"},
		{"2 ", "log", "m-2", "ev-2", "action: is not valid JSON"},
		{"1 ", "log", "m-1", "ev-1", "resourceType: is required"},
	} {
		line := lines[i+1]
		if !strings.HasPrefix(line, want[0]) {
			t.Errorf("line %d = %q, want seq %s", i+1, line, want[0])
		}
		for _, w := range want[1:] {
			if !strings.Contains(line, w) {
				t.Errorf("line %d = %q, want %q in it", i+1, line, w)
			}
		}
	}

	// Filters and --json (one object per line).
	all := poisonJSON(t, env, "list")
	if seqs(all) != "5 4 3 2 1" || all[1].EventID != "AUDIT-bulk-1:2" || all[1].ReplayTo != "audit.log" ||
		all[0].ReplayTo != "audit.cleanup" || all[0].EventID != "" || all[4].ID != "m-1" || all[4].Job != "log" {
		t.Fatalf("list --json: %+v", all)
	}
	if all[0].Headers != nil || all[0].Payload != nil {
		t.Errorf("list --json carries headers or payload: %+v", all[0])
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "--job", "bulk"}, "4 3"},
		{[]string{"list", "--job", "log", "--limit", "1"}, "2"},
		{[]string{"list", "--reason", "RESOURCETYPE"}, "4 3 1"},
		{[]string{"list", "--job", "bulk", "--reason", "events[1]"}, "3"},
		{[]string{"list", "--limit", "2"}, "5 4"},
		{[]string{"list", "--job", "report"}, ""},
	} {
		if got := seqs(poisonJSON(t, env, c.args...)); got != c.want {
			t.Errorf("poison %v: seqs %q, want %q", c.args, got, c.want)
		}
	}
	if out := poisonCmd(t, env, "list", "--job", "report"); !strings.HasPrefix(out, "no messages in AUDIT_POISON with job report") {
		t.Errorf("empty list: %q", out)
	}
	if _, err := servicetest.Client(context.Background(), t, env, "poison", "list", "--job", "nope"); err == nil {
		t.Error("an unknown job was accepted")
	}

	// show: the summary, the headers sorted by name, a blank line, the
	// payload; --payload the payload alone; --json all of it.
	out = poisonCmd(t, env, "show", "3")
	head, payload, ok := strings.Cut(out, "\n\n")
	if !ok || payload != `{"id":"ev-3","action":"x"}`+"\n" {
		t.Fatalf("show 3:\n%s", out)
	}
	hl := strings.Split(head, "\n")
	if !strings.HasPrefix(hl[0], "seq 3 on audit.poison.bulk, stored ") || hl[1] != "id AUDIT-bulk-1:1, event id ev-3, replay to audit.log" {
		t.Fatalf("show 3 summary:\n%s", head)
	}
	var names []string
	for _, h := range hl[2:] {
		name, _, _ := strings.Cut(h, ": ")
		names = append(names, name)
	}
	want := "Nats-Msg-Id _watermill_message_uuid bulk_id bulk_index handler_poisoned reason_poisoned topic_poisoned"
	if strings.Join(names, " ") != want {
		t.Errorf("show 3 headers %v, want %s", names, want)
	}
	if p := poisonCmd(t, env, "show", "--payload", "2"); p != `{"id":"ev-2","action":` {
		t.Errorf("show --payload 2 = %q", p)
	}
	shown := poisonJSON(t, env, "show", "1")
	if len(shown) != 1 || shown[0].Payload == nil || *shown[0].Payload != incomplete("ev-1") ||
		shown[0].Headers["reason_poisoned"][0] != all[4].Reason || shown[0].Headers[nats.MsgIdHdr][0] != "m-1" {
		t.Fatalf("show --json 1: %+v", shown)
	}
	if _, err := servicetest.Client(context.Background(), t, env, "poison", "show", "99"); err == nil ||
		!strings.Contains(err.Error(), "no such message") {
		t.Errorf("show 99: %v", err)
	}

	// Metrics: messages and the oldest's age, by job, 0 for a job with none.
	metric := func(name, job string) float64 {
		return servicetest.Metric(t, svc.HTTPAddr(), name+`{job="`+job+`"}`)
	}
	for job, n := range map[string]float64{"log": 2, "bulk": 2, "cleanup": 1, "report": 0} {
		if got := metric("auditq_poison_messages", job); got != n {
			t.Errorf("auditq_poison_messages{job=%q} = %v, want %v", job, got, n)
		}
	}
	oldestLog := time.Since(all[4].Time).Seconds()
	if age := metric("auditq_poison_oldest_age_seconds", "log"); age <= 0 || age > oldestLog+5 {
		t.Errorf("oldest log age %v s, want about %v", age, oldestLog)
	}
	if age := metric("auditq_poison_oldest_age_seconds", "report"); age != 0 {
		t.Errorf("oldest report age %v, want 0", age)
	}

	// discard removes for good; the gauges follow.
	if out := poisonCmd(t, env, "discard", "1", "5"); out != "discarded 1 (audit.poison.log, id m-1, event id ev-1)\n"+
		"discarded 5 (audit.poison.cleanup, id cleanup-1, event id -)\n" {
		t.Errorf("discard: %q", out)
	}
	if got := seqs(poisonJSON(t, env, "list")); got != "4 3 2" {
		t.Errorf("after discard: %s", got)
	}
	if _, err := servicetest.Client(context.Background(), t, env, "poison", "discard", "1"); err == nil {
		t.Error("discarding a discarded message succeeded")
	}
	if got := metric("auditq_poison_messages", "log"); got != 1 {
		t.Errorf("log messages after discard = %v", got)
	}
	if got := metric("auditq_poison_messages", "cleanup"); got != 0 {
		t.Errorf("cleanup messages after discard = %v", got)
	}
	if age := metric("auditq_poison_oldest_age_seconds", "log"); age > time.Since(all[3].Time).Seconds()+1 {
		t.Errorf("oldest log age %v after discarding the oldest", age)
	}
}

// Replays: a corrected single event and a corrected bulk event are stored
// (the bulk event, which names no id, under the id it would have had);
// a replay rejected again returns with its new reason; a payload valid
// by now goes through unchanged.
func TestPoisonReplayCorrectedRejectedAgainAndUnchanged(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_MAX_FUTURE_SKEW"] = "1s"
	svc := servicetest.Start(t, env)
	env = clientEnv(env, svc)
	db := servicetest.OpenDB(t, env)
	_, js := natstest.Connect(t, svc.NATSURL())
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// 1: an event from 6 seconds ahead (valid once that time is less than
	// the allowed skew of 1 s away);
	// replayed unchanged at once, it is rejected again and returns with its
	// new reason.
	future := time.Now().Add(6 * time.Second).UTC().Format(time.RFC3339Nano)
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "m-1",
		`{"id":"late-1","userId":"u3","action":"doc.read","resourceType":"doc","resourceId":"d3","timestamp":"`+future+`"}`)})
	waitPoison(t, js, 1)
	first := poisonJSON(t, env, "show", "1")[0]
	poisonCmd(t, env, "replay", "1")
	var back []poisonLine
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		back = poisonJSON(t, env, "list")
		return len(back) == 1 && back[0].Seq > 1, fmt.Sprintf("AUDIT_POISON holds %s, want one new message", seqs(back))
	})
	again := poisonJSON(t, env, "show", strconv.FormatUint(back[0].Seq, 10))[0]
	if again.ID != "m-1" || again.EventID != "late-1" || !strings.HasPrefix(again.Reason, "timestamp: ") ||
		again.Headers[natsjs.HeaderReplayedFrom][0] != "AUDIT_POISON:1" ||
		*again.Payload != *first.Payload {
		t.Fatalf("rejected replay: %+v\nfirst rejection: %+v", again, first)
	}

	// A single event and a bulk event without an id, both corrected.
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "m-2", incomplete("fix-1"))})
	waitPoison(t, js, 2)
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.bulk", "job-9",
		`{"events":[`+servicetest.EventJSON("ok-1", "doc.read")+`,{"userId":"u2","action":"doc.write","resourceId":"d2"}]}`)})
	waitPoison(t, js, 3)
	list := poisonJSON(t, env, "list")
	single, inBulk := list[1], list[0]
	if single.ID != "m-2" || inBulk.ID != "job-9:1" || inBulk.EventID != "job-9:1" {
		t.Fatalf("poison list: %+v", list)
	}
	out := poisonCmd(t, env, "replay", strconv.FormatUint(single.Seq, 10), "--file", file("fix-1.json", servicetest.EventJSON("fix-1", "doc.read")))
	if !strings.HasPrefix(out, "replayed "+strconv.FormatUint(single.Seq, 10)+" to audit.log as seq ") ||
		!strings.HasSuffix(out, ", id m-2; removed from AUDIT_POISON\n") {
		t.Errorf("replay: %q", out)
	}
	poisonCmd(t, env, "replay", "--file", file("fix-2.json", `{"userId":"u2","action":"doc.write","resourceType":"doc","resourceId":"d2"}`),
		strconv.FormatUint(inBulk.Seq, 10))
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id IN ('fix-1', 'job-9:1')")
		return n == 2, fmt.Sprintf("%d of the corrected events stored", n)
	})
	if got := seqs(poisonJSON(t, env, "list")); got != strconv.FormatUint(again.Seq, 10) {
		t.Fatalf("after the replays AUDIT_POISON holds %s, want %d", got, again.Seq)
	}

	// Its time has come: the same payload goes through.
	time.Sleep(time.Until(mustTime(t, future)) + 100*time.Millisecond)
	poisonCmd(t, env, "replay", strconv.FormatUint(again.Seq, 10))
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = 'late-1'") == 1, "late-1 not stored"
	})
	if n := len(poisonJSON(t, env, "list")); n != 0 {
		t.Fatalf("%d messages left in AUDIT_POISON", n)
	}
	// Besides the operator's reads and actions, recorded as audit.* events.
	if n := servicetest.CountRows(t, db, "action NOT LIKE 'audit.%'"); n != 4 {
		t.Fatalf("%d rows, want 4 (ok-1, fix-1, job-9:1, late-1)", n)
	}
	if n := servicetest.CountRows(t, db, "action = 'audit.poison.replay'"); n < 4 {
		t.Fatalf("%d replays recorded, want at least 4", n)
	}
	if _, err := servicetest.Client(context.Background(), t, env, "poison", "replay", "1"); err == nil {
		t.Error("replaying a replayed message succeeded")
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// A replay that dies after its publish was acknowledged and before the
// poison message was removed leaves the event in both streams. Replaying
// it again then is harmless: inside the duplicate window JetStream drops
// the repeat, beyond it the table's unique id does; either way one row,
// and the poison message is gone.
func TestPoisonReplayThatDiedHalfWayIsHarmlessToRepeat(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_DUPLICATE_WINDOW"] = "5s"
	svc := servicetest.Start(t, env)
	env = clientEnv(env, svc)
	db := servicetest.OpenDB(t, env)
	_, js := natstest.Connect(t, svc.NATSURL())
	ctx := context.Background()
	poison, err := service.NewPoison(js)
	if err != nil {
		t.Fatal(err)
	}
	fixed := filepath.Join(t.TempDir(), "fixed.json")
	for i, within := range []bool{true, false} {
		id := fmt.Sprintf("crash-%d", i)
		servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "m-"+id, incomplete(id))})
		waitPoison(t, js, 1)
		pm := poisonJSON(t, env, "list")[0]
		body := servicetest.EventJSON(id, "doc.read")
		if err := os.WriteFile(fixed, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}

		// The first half of "poison replay --file fixed SEQ", then death.
		m, err := poison.Get(ctx, pm.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := poison.Republish(ctx, m, []byte(body)); err != nil {
			t.Fatal(err)
		}
		servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
			return servicetest.CountRows(t, db, "id = ?", id) == 1, id + " not stored"
		})
		if got := seqs(poisonJSON(t, env, "list")); got != strconv.FormatUint(pm.Seq, 10) {
			t.Fatalf("the poison message went away without its delete: %s", got)
		}
		dupsBefore := servicetest.Metric(t, svc.HTTPAddr(), `auditq_events_duplicate_total{handler="audit.log"}`)
		if !within {
			time.Sleep(11 * time.Second) // past the 5 s duplicate window
		}

		out := poisonCmd(t, env, "replay", "--file", fixed, strconv.FormatUint(pm.Seq, 10))
		if got := strings.Contains(out, "already there"); got != within {
			t.Errorf("within the window %v: replay said %q", within, out)
		}
		if !within {
			// The repeat reached the service, which counted it a duplicate.
			servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
				d := servicetest.Metric(t, svc.HTTPAddr(), `auditq_events_duplicate_total{handler="audit.log"}`)
				return d == dupsBefore+1, fmt.Sprintf("%v duplicates, want %v", d, dupsBefore+1)
			})
		}
		if n := servicetest.CountRows(t, db, "id = ?", id); n != 1 {
			t.Fatalf("%d rows for %s, want 1", n, id)
		}
		if n := len(poisonJSON(t, env, "list")); n != 0 {
			t.Fatalf("%d messages left in AUDIT_POISON", n)
		}
	}
}
