package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/config"
)

// testEnv returns the environment of a service on a fresh database, a fresh
// embedded NATS store and random ports. Tests add or override variables.
func testEnv(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"AUDITQ_DATABASE_URL":  pgtest.NewDatabase(t),
		"AUDITQ_NATS_LISTEN":   "127.0.0.1:-1",
		"AUDITQ_DATA_DIR":      t.TempDir(),
		"AUDITQ_HTTP_ADDR":     "127.0.0.1:0",
		"AUDITQ_LOG_LEVEL":     "warn",
		"AUDITQ_RETRY_BACKOFF": "100ms",
		// No nightly jobs in the middle of a test that counts rows; tests of
		// the schedules turn theirs back on.
		"AUDITQ_CLEANUP_CRON": "off",
		"AUDITQ_REPORT_CRON":  "off",
	}
}

// startService boots the whole service in process with env, the way
// "auditq serve" does, and closes it when the test ends (Close is
// idempotent, so a test may stop it earlier to restart it).
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	svc, err := start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// openDB opens the test database of env for assertions.
func openDB(t *testing.T, env map[string]string) *bun.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), env["AUDITQ_DATABASE_URL"], 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// countRows returns the rows of audit_logs matching where (SQL, may be "").
func countRows(t *testing.T, db *bun.DB, where string, args ...any) int {
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

// eventually polls cond until it holds or timeout passes, then fails with
// the last description cond returned.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
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
