package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/ports/streams/streamstest"
	"github.com/auditq/auditq/service/servicetest"
)

// Log streams across damage: while 20,000 events are ingested, a webhook
// stream and a file stream deliver them; the service is killed with
// SIGKILL mid-stream (likely while the webhook holds a batch unanswered)
// and restarted, then the webhook answers 503 for 20
// seconds. Every event reaches both sinks at least once, in commit order;
// repeats come only as a re-send after the kill (a rewind to the stored
// cursor) and carry the same id and seal.
func TestStreamsSurviveKill9AndSinkOutage(t *testing.T) {
	skipIfShort(t)
	const total = 20_000
	const secret = "e2e-stream-secret-0123"
	hook, err := streamstest.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hook.Close() })
	// Each batch is taken 300ms before the answer: the kill likely falls
	// between, and the re-send after the restart repeats that batch.
	hook.SetDelay(300 * time.Millisecond)
	dir := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"streams": []map[string]any{
		{"name": "hook", "sink": "webhook", "url": hook.URL(), "secretEnv": "E2E_HOOK_SECRET", "batchSize": 200},
		{"name": "files", "sink": "file", "path": dir, "maxBytes": 1 << 20, "batchSize": 200},
	}})
	streamsFile := filepath.Join(t.TempDir(), "streams.json")
	if err := os.WriteFile(streamsFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	dbURL := pgtest.NewDatabase(t)
	env := childEnv(t, dbURL)
	env["AUDITQ_STREAMS_FILE"] = streamsFile
	env["E2E_HOOK_SECRET"] = secret
	svc := startChild(t, "serve", env)

	pub := newCarefulPublisher(t, svc.natsURL())
	stop := pub.run("strm", 1000, 16, total)
	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("3,000 events at the webhook", 90*time.Second, func() bool { return len(hook.Events()) >= 3000 })
	at := len(hook.Events())
	svc.kill9()
	t.Logf("kill -9 with %d events at the webhook", at)
	svc = startChild(t, "serve", env)

	hook.SetDelay(0)
	waitFor("8,000 events at the webhook", 90*time.Second, func() bool { return len(hook.Events()) >= 8000 })
	hook.SetDown(true)
	t.Logf("webhook down at %d events", len(hook.Events()))
	time.Sleep(20 * time.Second)
	lag := svc.metric(`auditq_stream_lag_events{stream="hook"}`)
	hook.SetDown(false)
	t.Logf("webhook up again; lag was %v events", lag)

	ids := stop()
	if len(ids) != total {
		t.Fatalf("%d publishes acked, want %d", len(ids), total)
	}
	for name, got := range map[string]func() []streamstest.Received{
		"hook": hook.Events,
		"files": func() []streamstest.Received {
			r, _, err := streamstest.ReadFiles(dir, "files")
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	} {
		servicetest.Eventually(t, 90*time.Second, func() (bool, string) {
			r := streamstest.Check(got(), ids)
			return len(r.Missing) == 0, name + ": " + r.String()
		})
		r := streamstest.Check(got(), ids)
		t.Logf("%s: %s", name, r)
		if len(r.Unexpected) > 0 || len(r.Disorder) > 0 || r.Rewinds > 1 || (r.Duplicates > 0 && r.Rewinds == 0) {
			t.Errorf("%s: %s; want every event, in order, repeats only in the one re-send after the kill", name, r)
		}
	}
	if lag <= 0 {
		t.Errorf("auditq_stream_lag_events of the webhook while it was down: %v", lag)
	}
	if hook.BadSignatures() != 0 {
		t.Errorf("%d webhook requests with a bad signature", hook.BadSignatures())
	}
}
