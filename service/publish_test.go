package service_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/ports/cli"
	"github.com/auditq/auditq/service"
	"github.com/auditq/auditq/service/servicetest"
)

// eventsJSON returns n valid events with ids prefix-0, prefix-1, ...,
// joined by commas.
func eventsJSON(prefix string, n int) string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = servicetest.EventJSON(fmt.Sprintf("%s-%d", prefix, i), "doc.read")
	}
	return strings.Join(evs, ",")
}

// "auditq publish -file" refuses every file the service would reject, with
// the service's own rule texts, before publishing anything (exit 2); a bulk
// file waits for its result; a rejection by the service is exit 1.
func TestPublishFileValidatesLocallyAndWaitsForTheBulkResult(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	cenv := clientEnv(env, svc)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	ctx := context.Background()
	dir := t.TempDir()

	lastSeq := func() uint64 {
		t.Helper()
		s, err := js.Stream(ctx, "AUDIT")
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.LastSeq
	}
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// serviceReason publishes body to audit.log as any client could and
	// returns the reason the service poisoned it with.
	poisoned, err := nc.SubscribeSync("audit.poison.log")
	if err != nil {
		t.Fatal(err)
	}
	serviceReason := func(body string) string {
		t.Helper()
		id := "probe-" + fmt.Sprint(time.Now().UnixNano())
		servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", id, body)})
		for {
			m, err := poisoned.NextMsg(20 * time.Second)
			if err != nil {
				t.Fatalf("the service did not poison %.80s: %v", body, err)
			}
			if m.Header.Get(nats.MsgIdHdr) == id {
				return m.Header.Get("reason_poisoned")
			}
		}
	}

	valid := servicetest.EventJSON("v-0", "doc.read")
	bigDetails := `{"action":"a","resourceType":"doc","resourceId":"1","details":{"blob":"` + strings.Repeat("x", 200<<10) + `"}}`
	single := map[string]string{ // one event per file: the CLI says what the service says
		"wrong-case field":  `{"Action":"user.login","resourceType":"doc","resourceId":"1"}`,
		"missing field":     `{"action":"user.login","resourceType":"doc"}`,
		"bad timestamp":     `{"action":"user.login","resourceType":"doc","resourceId":"1","timestamp":"24/11/2026 10:00"}`,
		"invalid JSON":      `{"action":"user.login","resourceType":"doc",`,
		"200 KB of details": bigDetails,
	}
	type refusal struct {
		name, file, body string
		want             []string // substrings of the error
	}
	cases := []refusal{
		{"missing resourceId in an array", "events.json",
			"[" + eventsJSON("a", 3) + `,{"action":"a","resourceType":"doc"}]`,
			[]string{"events.json: event 3: resourceId: is required: a non-empty string", "nothing published to audit.log: 1 invalid event of 4"}},
		{"wrong case in an array", "events.json", "[" + valid + `,{"Action":"a","resourceType":"doc","resourceId":"1"}]`,
			[]string{"events.json: event 1: Action: unknown field"}},
		{"invalid JSON in an array", "events.json", "[" + valid + ",\n" + `{"action": ]`,
			[]string{"events.json: event 1: invalid JSON at line 2"}},
		{"bad timestamp in a bulk", "bulk.json", `{"events":[` + valid + `,{"action":"a","resourceType":"doc","resourceId":"1","timestamp":"yesterday"}]}`,
			[]string{"bulk.json: event 1: timestamp: ", "nothing published to audit.bulk"}},
		{"1,001-event bulk", "bulk.json", `{"events":[` + eventsJSON("b", 1001) + `]}`,
			[]string{"bulk.json: events: holds 1001 events, more than the limit of 1000"}},
		{"invalid JSON in a bulk", "bulk.json", `{"events":[` + valid + `,`,
			[]string{"bulk.json: "}},
		{"empty file", "empty.json", "", []string{"empty.json: is empty"}},
		{"blank file", "blank.json", " \n\t", []string{"blank.json: is empty"}},
		{"empty array", "events.json", " [ ] ", []string{"events.json: holds an empty array"}},
		{"empty bulk", "bulk.json", `{"events":[]}`, []string{"bulk.json: events: must hold at least one event"}},
		{"not JSON", "events.json", "hello", []string{"events.json: "}},
	}
	for name, body := range single {
		cases = append(cases, refusal{name, "event.json", body, []string{"event.json: " + serviceReason(body)}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := lastSeq()
			out, err := servicetest.Client(ctx, t, cenv, "publish", "-file", write(c.file, c.body))
			if code := cli.ExitCode(err); code != cli.ExitUsage {
				t.Fatalf("exit code %d (%v), want %d\n%s", code, err, cli.ExitUsage, out)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
			if out != "" {
				t.Errorf("printed %q, want nothing", out)
			}
			if after := lastSeq(); after != before {
				t.Errorf("stream AUDIT went from sequence %d to %d: something was published", before, after)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := servicetest.Client(ctx, t, cenv, "publish", "-file", filepath.Join(dir, "nope.json"))
		if cli.ExitCode(err) != cli.ExitUsage {
			t.Fatalf("got %v, want a usage error", err)
		}
	})
	if n := servicetest.CountRows(t, db, ""); n != 0 {
		t.Fatalf("%d rows stored from refused files, want 0", n)
	}

	// Valid files are published; a bulk file prints its result.
	out, err := servicetest.Client(ctx, t, cenv, "publish", "-file", write("events.json", "["+eventsJSON("arr", 3)+"]"))
	if err != nil || strings.Count(out, "audit.log seq=") != 3 || !strings.Contains(out, " id=arr-0\n") {
		t.Fatalf("array: %v\n%s", err, out)
	}
	// An event without id is stored under its message's random id, the
	// id printed.
	out, err = servicetest.Client(ctx, t, cenv, "publish", "-file", write("noid.json", `{"action":"a","resourceType":"r","resourceId":"x"}`))
	noID := strings.TrimSpace(out[strings.LastIndex(out, " id=")+len(" id="):])
	if err != nil || len(noID) != 32 {
		t.Fatalf("an event without id: %v\n%s", err, out)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id = ?", noID)
		return n == 1, fmt.Sprintf("%d rows of id %s", n, noID)
	})
	bulk := write("bulk.json", `{"events":[`+eventsJSON("blk", 3)+`]}`)
	out, err = servicetest.Client(ctx, t, cenv, "publish", "-file", bulk, "-timeout", "30s")
	if err != nil || !strings.Contains(out, ": 3 events: 3 inserted, 0 duplicates, 0 rejected") {
		t.Fatalf("bulk: %v\n%s", err, out)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "")
		return n == 7, fmt.Sprintf("%d rows, want 7", n)
	})
	// Published again: another job (its id is random per publish), whose
	// events are stored already.
	out, err = servicetest.Client(ctx, t, cenv, "publish", "-file", bulk, "-timeout", "30s")
	if err != nil || !strings.Contains(out, ": 3 events: 0 inserted, 3 duplicates, 0 rejected") {
		t.Fatalf("bulk again: %v\n%s", err, out)
	}

	// -no-validate publishes a refused file as it is, for the service to
	// reject: the example bulk job stores two events, rejects the third.
	before := lastSeq()
	out, err = servicetest.Client(ctx, t, cenv, "publish", "-no-validate", "-file", write("rejected.json", `{"action":"a","resourceType":"doc"}`))
	if err != nil || lastSeq() != before+1 {
		t.Fatalf("-no-validate: %v (sequence %d -> %d)\n%s", err, before, lastSeq(), out)
	}
	out, err = servicetest.Client(ctx, t, cenv, "publish", "-no-validate", "-file", "../docs/examples/bulk.json")
	if cli.ExitCode(err) != cli.ExitFailed || !strings.Contains(out, ": 3 events: 2 inserted, 0 duplicates, 1 rejected\n  rejected event 2: events[2].action: is required: a non-empty string") {
		t.Fatalf("-no-validate bulk: %v, want exit 1 with the rejection\n%s", err, out)
	}

	// The service rejects an event the CLI let pass (a client configured
	// with a larger future skew than the service's 1h): exit 1, listed.
	deps := service.CLIDeps(servicetest.Config(t, cenv))
	deps.Publish.FutureSkew = 3 * time.Hour
	future := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	skewed := write("skewed.json", `{"events":[`+servicetest.EventJSON("sk-0", "doc.read")+
		`,{"id":"sk-1","action":"a","resourceType":"doc","resourceId":"1","timestamp":"`+future+`"}]}`)
	var buf bytes.Buffer
	err = cli.Run(ctx, "publish", []string{"-file", skewed}, deps, &buf)
	if cli.ExitCode(err) != cli.ExitFailed || !strings.Contains(err.Error(), "1 of 2 events rejected") {
		t.Fatalf("skewed bulk: %v, want exit 1 naming the rejection\n%s", err, buf.String())
	}
	for _, w := range []string{": 2 events: 1 inserted, 0 duplicates, 1 rejected", "rejected event 1: events[1].timestamp: "} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("output does not say %q:\n%s", w, buf.String())
		}
	}
}
