package e2e

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// Scenario: kill -9 in the middle of an erasure, at each of its steps:
// after the pending erasure is recorded (the erasure event cannot be
// written: the test holds a lock on audit_logs), and after the erasure
// event is in the trail (the keys cannot be destroyed: the test holds
// postgres.ErasureLock). The restarted service completes the erasure at
// start: the erasure event is in the trail exactly once, the subject's
// keys are gone, its events read as erased, the other user's do not, and
// the trail verifies. The key-encryption key never appears in the log.
func TestErasureKill9BetweenStepsIsCompletedAtStart(t *testing.T) {
	skipIfShort(t)
	for _, step := range []struct {
		name  string
		block string // SQL run on the test's connection to hold the step
		free  string // SQL releasing it
		// events is how many erasure events the trail holds when the
		// service is killed.
		events int
	}{
		{"before the erasure event", "BEGIN; LOCK TABLE audit_logs IN SHARE MODE", "ROLLBACK", 0},
		{"before the keys are destroyed", fmt.Sprintf("SELECT pg_advisory_lock(%d)", int64(postgres.ErasureLock)),
			fmt.Sprintf("SELECT pg_advisory_unlock(%d)", int64(postgres.ErasureLock)), 1},
	} {
		t.Run(step.name, func(t *testing.T) {
			ctx := context.Background()
			env := childEnv(t, pgtest.NewDatabase(t))
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			env["AUDITQ_KEK_FILE"] = filepath.Join(t.TempDir(), "kek")
			if err := os.WriteFile(env["AUDITQ_KEK_FILE"], []byte(hex.EncodeToString(key)), 0o600); err != nil {
				t.Fatal(err)
			}
			env["AUDITQ_PERSONAL_DATA"] = "encrypt"
			db := servicetest.OpenDB(t, env)
			svc := startChild(t, "serve", env)
			nc, js := natstest.Connect(t, svc.natsURL())
			var msgs []*nats.Msg
			for i, user := range []string{"victim", "victim", "victim", "other"} {
				id := fmt.Sprintf("e%d", i)
				msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, fmt.Sprintf(
					`{"id":%q,"userId":%q,"action":"user.login","resourceType":"user","resourceId":"r","ipAddress":"192.0.2.1","timestamp":"2026-11-24T10:00:00Z"}`, id, user)))
			}
			servicetest.PublishAll(t, js, msgs)
			waitRows(t, db, 4, time.Minute)

			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			for _, stmt := range strings.Split(step.block, "; ") {
				if _, err := conn.ExecContext(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
			go func() { _, _ = nc.Request(contract.SubjectAdminErase, []byte(`{"userId":"victim"}`), time.Minute) }()
			servicetest.Eventually(t, time.Minute, func() (bool, string) {
				pending := count(t, db, `SELECT count(*) FROM audit_erasures WHERE completed_at IS NULL`)
				events := count(t, db, `SELECT count(*) FROM audit_logs WHERE action = 'audit.subject.erase'`)
				return pending == 1 && events == step.events, fmt.Sprintf("%d pending erasures, %d erasure events", pending, events)
			})
			// Let the blocked step wait a moment longer: it must not get past the block.
			time.Sleep(500 * time.Millisecond)
			if n := count(t, db, `SELECT count(*) FROM audit_subject_keys`); n != 2 {
				t.Fatalf("%d subject keys before the kill, want 2", n)
			}
			svc.kill9()
			killed := svc
			if _, err := conn.ExecContext(ctx, step.free); err != nil {
				t.Fatal(err)
			}
			nc.Close()

			svc = startChild(t, "serve", env)
			if n := count(t, db, `SELECT count(*) FROM audit_erasures WHERE completed_at IS NOT NULL AND keys_erased = 1`); n != 1 {
				t.Fatalf("%d completed erasures after the restart, want 1", n)
			}
			if n := count(t, db, `SELECT count(*) FROM audit_logs WHERE action = 'audit.subject.erase'`); n != 1 {
				t.Fatalf("%d erasure events, want 1", n)
			}
			if n := count(t, db, `SELECT count(*) FROM audit_subject_keys`); n != 1 {
				t.Fatalf("%d subject keys after the erasure, want 1 (other's)", n)
			}
			nc, _ = natstest.Connect(t, svc.natsURL())
			for user, erased := range map[string]bool{"victim": true, "other": false} {
				reply, err := nc.Request(contract.SubjectQuery, fmt.Appendf(nil, `{"userId":%q}`, user), 30*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				var page contract.SearchPage
				if err := json.Unmarshal(reply.Data, &page); err != nil {
					t.Fatalf("%s: %s", err, reply.Data)
				}
				want := map[bool]int{true: 3, false: 1}[erased]
				if len(page.Events) != want {
					t.Fatalf("search %s: %d events, want %d", user, len(page.Events), want)
				}
				for _, e := range page.Events {
					if e.Erased != erased || (e.IPAddress == "") != erased {
						t.Fatalf("event of %s: erased %v, ip %q", user, e.Erased, e.IPAddress)
					}
				}
			}
			cenv := map[string]string{}
			for k, v := range env {
				cenv[k] = v
			}
			cenv["AUDITQ_NATS_URL"] = svc.natsURL()
			if out, err := servicetest.Client(ctx, t, cenv, "checkpoint"); err != nil {
				t.Fatalf("checkpoint: %v\n%s", err, out)
			}
			out, err := servicetest.Client(ctx, t, cenv, "verify")
			if err != nil || !strings.Contains(out, "3 events erased") {
				t.Fatalf("verify: %v\n%s", err, out)
			}
			for _, c := range []*child{killed, svc} {
				if strings.Contains(c.output(), hex.EncodeToString(key)) {
					t.Fatal("the key-encryption key is in the service's output")
				}
			}
		})
	}
}

func count(t *testing.T, db *bun.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query).Scan(&n); err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	return n
}
