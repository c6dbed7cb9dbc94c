// Package servicetest boots the whole service in process for tests, on a
// fresh database, a fresh embedded NATS store and random ports, and gives
// them the assertions they share.
package servicetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports/cli"
	"github.com/auditq/auditq/service"
)

// Env returns the environment of a service on a fresh database, a fresh
// embedded NATS store and random ports. Tests add or override variables.
func Env(t testing.TB) map[string]string {
	t.Helper()
	return map[string]string{
		"AUDITQ_DATABASE_URL":   pgtest.NewDatabase(t),
		"AUDITQ_NATS_LISTEN":    "127.0.0.1:-1",
		"AUDITQ_NATS_WEBSOCKET": "127.0.0.1:-1",
		"AUDITQ_DATA_DIR":       t.TempDir(),
		"AUDITQ_HTTP_ADDR":      "127.0.0.1:0",
		"AUDITQ_LOG_LEVEL":      "warn",
		"AUDITQ_RETRY_BACKOFF":  "100ms",
		// No nightly jobs in the middle of a test that counts rows; tests of
		// the schedules turn theirs back on.
		"AUDITQ_CLEANUP_CRON": "off",
		"AUDITQ_REPORT_CRON":  "off",
		// The soft memory limit is the process's: a test process holds
		// several services, the test harness and its databases' pools.
		"AUDITQ_MEMORY_LIMIT": "off",
	}
}

// Config loads the configuration of env, failing the test when it is
// invalid.
func Config(t testing.TB, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Start boots the whole service in process with env, the way
// "auditq serve" does, and closes it when the test ends (Close is
// idempotent, so a test may stop it earlier to restart it).
func Start(t testing.TB, env map[string]string) *service.Service {
	t.Helper()
	svc, err := TryStart(t, env)
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	return svc
}

// TryStart is Start for tests of a failing start-up: it returns the error
// of Run instead of failing the test.
func TryStart(t testing.TB, env map[string]string) (*service.Service, error) {
	t.Helper()
	cfg := Config(t, env)
	out := io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	svc := service.New(cfg, log)
	if err := svc.Run(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc, nil
}

// OpenDB opens the test database of env for assertions.
func OpenDB(t testing.TB, env map[string]string) *bun.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), env["AUDITQ_DATABASE_URL"], 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// CountRows returns the rows of audit_logs matching where (SQL, may be "").
func CountRows(t testing.TB, db *bun.DB, where string, args ...any) int {
	t.Helper()
	q := db.NewSelect().Table("audit_logs")
	if where != "" {
		q = q.Where(where, args...)
	}
	n, err := q.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// Eventually polls cond until it holds or timeout passes, then fails with
// the last description cond returned.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, desc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client runs an auditq client command (args[0] is its name, e.g.
// "report") against the service env configures, as main dispatches it,
// and returns its output.
func Client(ctx context.Context, t testing.TB, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := cli.Run(ctx, args[0], args[1:], service.CLIDeps(Config(t, env)), &out)
	return out.String(), err
}

// Metric returns the value of one sample on the /metrics of the service
// at httpAddr, e.g. `auditq_events_duplicate_total{handler="audit.log"}`;
// 0 when absent.
func Metric(t testing.TB, httpAddr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
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

// PublishAll publishes msgs asynchronously, as a busy service would, and
// waits for every ack.
func PublishAll(t testing.TB, js jetstream.JetStream, msgs []*nats.Msg) []*jetstream.PubAck {
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

// EventMsg returns a message on subject with body, and msgID as its
// Nats-Msg-Id unless empty.
func EventMsg(subject, msgID string, body string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte(body)
	if msgID != "" {
		m.Header.Set(nats.MsgIdHdr, msgID)
	}
	return m
}

// EventJSON returns a valid event with id and action.
func EventJSON(id, action string) string {
	return fmt.Sprintf(`{"id":%q,"userId":"u-%s","action":%q,"resourceType":"doc","resourceId":"d1","ipAddress":"192.0.2.1","timestamp":"2026-11-24T10:00:00Z"}`, id, id, action)
}
