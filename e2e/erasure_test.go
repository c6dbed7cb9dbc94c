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

	"github.com/auditq/auditq/adapters/keyfile"
	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// Scenario: kill -9 in the middle of an erasure, at each of its steps:
// after the pending erasure is recorded (the erasure event cannot be
// written: the test holds a lock on audit_logs); after the erasure event
// is in the trail (the keys cannot be destroyed: the test holds
// postgres.ErasureLock); after the new key-encryption key is prepared in
// AUDITQ_KEK_FILE.next (the keys cannot be deleted: the test holds a lock
// on audit_subject_keys); and after the transaction that destroyed the
// keys and rewrapped the others under the new key committed, before the
// old key file is destroyed (the test holds postgres.KEKFileLock). The
// restarted service completes the erasure at start: the erasure event is
// in the trail exactly once, the subject's keys are gone, the key file
// holds a new key that the database is under, no prepared key is left,
// the old key opens no stored key, the subject's events read as erased,
// the other user's do not, and the trail verifies. The key-encryption key
// never appears in the log. The same holds for an erasure of two users in
// one request (userIds): at each step both are where one would be, and
// the restart completes both under one key replacement.
func TestErasureKill9BetweenStepsIsCompletedAtStart(t *testing.T) {
	skipIfShort(t)
	lock := func(key int64) (string, string) {
		return fmt.Sprintf("SELECT pg_advisory_lock(%d)", key), fmt.Sprintf("SELECT pg_advisory_unlock(%d)", key)
	}
	erasureBlock, erasureFree := lock(postgres.ErasureLock)
	fileBlock, fileFree := lock(postgres.KEKFileLock)
	for _, step := range []struct {
		name  string
		block string // SQL run on the test's connection to hold the step
		free  string // SQL releasing it
		// At the kill: how many erasure events the trail holds, whether the
		// erasure's transaction committed (keys destroyed), and whether a
		// prepared key-encryption key is on disk.
		events    int
		committed bool
		prepared  bool
		victims   []string // erased in one request
	}{
		{"before the erasure event", "BEGIN; LOCK TABLE audit_logs IN SHARE MODE", "ROLLBACK", 0, false, false, []string{"victim"}},
		{"before the keys are destroyed", erasureBlock, erasureFree, 1, false, false, []string{"victim"}},
		{"after the new key is prepared", "BEGIN; LOCK TABLE audit_subject_keys IN SHARE MODE", "ROLLBACK", 1, false, true, []string{"victim"}},
		{"before the old key is destroyed", fileBlock, fileFree, 1, true, true, []string{"victim"}},
		{"before the erasure events of two", "BEGIN; LOCK TABLE audit_logs IN SHARE MODE", "ROLLBACK", 0, false, false, []string{"victim", "victim2"}},
		{"before the keys of two are destroyed", erasureBlock, erasureFree, 1, false, false, []string{"victim", "victim2"}},
		{"after the new key for two is prepared", "BEGIN; LOCK TABLE audit_subject_keys IN SHARE MODE", "ROLLBACK", 1, false, true, []string{"victim", "victim2"}},
		{"before the old key is destroyed for two", fileBlock, fileFree, 1, true, true, []string{"victim", "victim2"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			ctx := context.Background()
			n := len(step.victims)
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
			users := []string{"victim", "victim", "victim", "other"}
			if n > 1 {
				users = append(users, "victim2")
			}
			for i, user := range users {
				id := fmt.Sprintf("e%d", i)
				msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, fmt.Sprintf(
					`{"id":%q,"userId":%q,"action":"user.login","resourceType":"user","resourceId":"r","ipAddress":"192.0.2.1","timestamp":"2026-11-24T10:00:00Z"}`, id, user)))
			}
			servicetest.PublishAll(t, js, msgs)
			waitRows(t, db, len(users), time.Minute)

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
			body := `{"userId":"victim"}`
			if n > 1 {
				body = `{"userIds":["victim","victim2"]}`
			}
			go func() { _, _ = nc.Request(contract.SubjectAdminErase, []byte(body), time.Minute) }()
			oldID := kekID(t, key)
			nextPath := env["AUDITQ_KEK_FILE"] + ".next"
			servicetest.Eventually(t, time.Minute, func() (bool, string) {
				pending := count(t, db, `SELECT count(*) FROM audit_erasures WHERE completed_at IS NULL`)
				events := count(t, db, `SELECT count(*) FROM audit_logs WHERE action = 'audit.subject.erase'`)
				_, err := os.Stat(nextPath)
				prepared := err == nil
				return pending == map[bool]int{true: 0, false: n}[step.committed] && events == step.events*n && prepared == step.prepared,
					fmt.Sprintf("%d pending erasures, %d erasure events, prepared key %v", pending, events, prepared)
			})
			// Let the blocked step wait a moment longer: it must not get past the block.
			time.Sleep(500 * time.Millisecond)
			if got, want := count(t, db, `SELECT count(*) FROM audit_subject_keys`), map[bool]int{true: 1, false: 1 + n}[step.committed]; got != want {
				t.Fatalf("%d subject keys before the kill, want %d", got, want)
			}
			if state := kekState(t, db); (state == oldID) == step.committed {
				t.Fatalf("the database is under key %s at the kill (the old key is %s), committed %v", state, oldID, step.committed)
			}
			if got := kekID(t, readKey(t, env["AUDITQ_KEK_FILE"])); got != oldID {
				t.Fatalf("the key file holds %s before the old key is destroyed, want %s", got, oldID)
			}
			svc.kill9()
			killed := svc
			if _, err := conn.ExecContext(ctx, step.free); err != nil {
				t.Fatal(err)
			}
			nc.Close()

			svc = startChild(t, "serve", env)
			if got := count(t, db, `SELECT count(*) FROM audit_erasures WHERE completed_at IS NOT NULL AND keys_erased = 1`); got != n {
				t.Fatalf("%d completed erasures after the restart, want %d", got, n)
			}
			if got := count(t, db, `SELECT count(*) FROM audit_logs WHERE action = 'audit.subject.erase'`); got != n {
				t.Fatalf("%d erasure events, want %d", got, n)
			}
			if n := count(t, db, `SELECT count(*) FROM audit_subject_keys`); n != 1 {
				t.Fatalf("%d subject keys after the erasure, want 1 (other's)", n)
			}
			if _, err := os.Stat(nextPath); !os.IsNotExist(err) {
				t.Fatalf("a prepared key is left after the restart: %v", err)
			}
			current := readKey(t, env["AUDITQ_KEK_FILE"])
			if state := kekState(t, db); state != kekID(t, current) || state == oldID {
				t.Fatalf("after the restart the database is under %s, the key file holds %s, the old key was %s", state, kekID(t, current), oldID)
			}
			var ps string
			var wrapped []byte
			if err := db.QueryRowContext(ctx, `SELECT pseudonym, wrapped FROM audit_subject_keys`).Scan(&ps, &wrapped); err != nil {
				t.Fatal(err)
			}
			for k, opens := range map[string]bool{hex.EncodeToString(key): false, hex.EncodeToString(current): true} {
				kek, err := keyfile.LoadKEK(writeKey(t, k))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := kek.Unwrap(wrapped, []byte("auditq subject key v1\n"+ps)); (err == nil) != opens {
					t.Fatalf("key %s opens the remaining subject key: %v, want %v", kek.ID(), err == nil, opens)
				}
			}
			nc, _ = natstest.Connect(t, svc.natsURL())
			for user, erased := range map[string]bool{"victim": true, "other": false, "victim2": n > 1} {
				reply, err := nc.Request(contract.SubjectQuery, fmt.Appendf(nil, `{"userId":%q}`, user), 30*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				var page contract.SearchPage
				if err := json.Unmarshal(reply.Data, &page); err != nil {
					t.Fatalf("%s: %s", err, reply.Data)
				}
				want := map[string]int{"victim": 3, "other": 1, "victim2": map[bool]int{true: 1, false: 0}[n > 1]}[user]
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
			if err != nil || !strings.Contains(out, fmt.Sprintf("%d events erased", 2+n)) {
				t.Fatalf("verify: %v\n%s", err, out)
			}
			for _, c := range []*child{killed, svc} {
				if strings.Contains(c.output(), hex.EncodeToString(key)) || strings.Contains(c.output(), hex.EncodeToString(current)) {
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

// kekID returns the public id of the key-encryption key key.
func kekID(t *testing.T, key []byte) string {
	t.Helper()
	k, err := keyfile.NewKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

// readKey returns the key in a key-encryption key file.
func readKey(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// writeKey writes a key-encryption key file holding hexKey.
func writeKey(t *testing.T, hexKey string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(hexKey), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// kekState returns the key-encryption key the database records its keys
// are wrapped under.
func kekState(t *testing.T, db *bun.DB) string {
	t.Helper()
	var id string
	if err := db.QueryRowContext(context.Background(), `SELECT kek_id FROM audit_kek_state WHERE id = 1`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
