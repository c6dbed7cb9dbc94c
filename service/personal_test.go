package service_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/adapters/keyfile"
	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// kekFile writes a fresh key-encryption key and returns its path.
func kekFile(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// personalEnv is the environment of a service encrypting personal data.
func personalEnv(t *testing.T) map[string]string {
	env := servicetest.Env(t)
	env["AUDITQ_PERSONAL_DATA"] = "encrypt"
	env["AUDITQ_KEK_FILE"] = kekFile(t)
	env["AUDITQ_PERSONAL_DETAILS_KEYS"] = "email"
	env["AUDITQ_RETENTION_HOLD_USERS"] = "held-user"
	return env
}

// personalEvent is an event of user with every personal field.
func personalEvent(id, user string) string {
	return fmt.Sprintf(`{"id":%q,"userId":%q,"action":"user.login","resourceType":"user","resourceId":"profile",
		"ipAddress":"198.51.100.7","userAgent":"agent of %s","sessionId":"session-%s","details":{"email":"%s@example.org","k":"v"},
		"timestamp":"2026-11-24T10:00:00Z"}`, id, user, user, user, user)
}

type view struct {
	ID            string          `json:"id"`
	UserID        *string         `json:"userId"`
	UserPseudonym string          `json:"userPseudonym"`
	Erased        bool            `json:"erased"`
	IPAddress     string          `json:"ipAddress"`
	UserAgent     string          `json:"userAgent"`
	SessionID     string          `json:"sessionId"`
	ResourceID    string          `json:"resourceId"`
	Details       json.RawMessage `json:"details"`
}

func search(t *testing.T, nc *nats.Conn, body string) []view {
	t.Helper()
	var page struct{ Events []view }
	if err := json.Unmarshal(ask(t, nc, contract.SubjectQuery, body).ok(t).data, &page); err != nil {
		t.Fatal(err)
	}
	return page.Events
}

// checkRevealed fails unless v shows every personal field of user.
func checkRevealed(t *testing.T, v view, user string) {
	t.Helper()
	if v.Erased || v.UserID == nil || *v.UserID != user || v.IPAddress != "198.51.100.7" || v.UserAgent != "agent of "+user ||
		v.SessionID != "session-"+user || !strings.HasPrefix(v.UserPseudonym, "psn_") ||
		!strings.Contains(string(v.Details), `"email":"`+user+`@example.org"`) || !strings.Contains(string(v.Details), `"k":"v"`) {
		t.Fatalf("event %s of %s: %+v (details %s)", v.ID, user, v, v.Details)
	}
}

// checkErased fails unless v shows user's event erased: no personal field
// left, the rest intact.
func checkErased(t *testing.T, v view, pseudonym string) {
	t.Helper()
	if !v.Erased || v.UserID == nil || *v.UserID != "[erased]" || v.IPAddress != "" || v.UserAgent != "" || v.SessionID != "" ||
		v.UserPseudonym != pseudonym || strings.Contains(string(v.Details), "email") || !strings.Contains(string(v.Details), `"k":"v"`) {
		t.Fatalf("erased event %s: %+v (details %s)", v.ID, v, v.Details)
	}
}

// Events of three users are stored encrypted; erasing one records the
// erasure in the trail, then every read path (search, event get, the
// report's top users, the proof) shows that user's personal fields
// erased, and only that user's; a search by pseudonym still finds the
// events; rows restored from a copy taken before the erasure stay
// unreadable; auditq verify passes and counts the erased events; a user
// under legal hold cannot be erased.
func TestErasureShredsOneSubjectAndKeepsTheTrailVerifiable(t *testing.T) {
	env := personalEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	schemas := schemasServed(t, nc)
	ctx := context.Background()
	cenv := clientEnv(env, svc)

	users := []string{"alice", "bob", "carol"}
	var msgs []*nats.Msg
	for _, u := range users {
		for i := range 3 {
			id := fmt.Sprintf("%c-%d", u[0], i) // ids must not name the user: they are not encrypted
			msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, personalEvent(id, u)))
		}
	}
	msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, "system-1",
		`{"id":"system-1","action":"system.backup","resourceType":"system","resourceId":"db","ipAddress":"192.0.2.9","sessionId":"session-sys","timestamp":"2026-11-24T11:00:00Z"}`))
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "resource_type IN ('user', 'system')")
		return n == 10, fmt.Sprintf("%d rows", n)
	})

	// Stored: pseudonyms and ciphertext, no personal field in clear; the
	// session id's keyed pseudonym in session_id.
	if n := servicetest.CountRows(t, db, `resource_type = 'user' AND (pseudonymous IS NOT TRUE OR personal IS NULL OR ip_address IS NOT NULL OR user_agent IS NOT NULL
		OR session_id NOT LIKE 'ssn\_%' OR length(session_id) <> 26 OR details ? 'email')`); n != 0 {
		t.Fatalf("%d user rows hold personal fields in clear", n)
	}
	for _, u := range users {
		if n := servicetest.CountRows(t, db, "audit_logs::text LIKE ?", "%"+u+"%"); n != 0 {
			t.Fatalf("%d rows hold %q in clear", n, u)
		}
	}
	if n := servicetest.CountRows(t, db, "id = 'system-1' AND ip_address = '192.0.2.9' AND personal IS NULL"); n != 1 {
		t.Fatal("the system event (no data subject) is not stored as sent")
	}

	before := search(t, nc, `{"userId":"alice"}`)
	if len(before) != 3 {
		t.Fatalf("search alice: %d events", len(before))
	}
	for _, v := range before {
		checkRevealed(t, v, "alice")
	}
	pseudonym := before[0].UserPseudonym
	// A search by session finds encrypted events through the session id's
	// pseudonym, and events stored in clear by the session id itself.
	for session, want := range map[string]int{"session-alice": 3, "session-bob": 3, "session-sys": 1, "session-nobody": 0} {
		got := search(t, nc, fmt.Sprintf(`{"sessionId":%q}`, session))
		if len(got) != want {
			t.Fatalf("search session %s: %d events, want %d", session, len(got), want)
		}
		for _, v := range got {
			if v.SessionID != session {
				t.Fatalf("search session %s: event %s shows session %q", session, v.ID, v.SessionID)
			}
		}
	}
	// A copy of alice's rows taken before the erasure (a backup).
	if _, err := db.ExecContext(ctx, `CREATE TABLE backup_rows AS SELECT * FROM audit_logs WHERE user_id = ?`, pseudonym); err != nil {
		t.Fatal(err)
	}

	if a := ask(t, nc, contract.SubjectAdminErase, `{"userId":"held-user"}`); a.code != "409" || !strings.Contains(a.error, "legal hold") {
		t.Fatalf("erase a held user: %s %s", a.code, a.error)
	}
	if a := ask(t, nc, contract.SubjectAdminErase, `{"user":"alice"}`); a.code != "400" {
		t.Fatalf("erase with a bad request: %s %s", a.code, a.error)
	}
	out, err := servicetest.Client(ctx, t, cenv, "erase", "--user", "alice")
	if err != nil || !strings.Contains(out, "erased: pseudonym "+pseudonym+", 1 subject keys destroyed") {
		t.Fatalf("auditq erase: %v\n%s", err, out)
	}
	again := ask(t, nc, contract.SubjectAdminErase, `{"userId":"alice"}`).ok(t)
	if err := schemaErr(t, schemas["erase"], again.data); err != nil {
		t.Fatalf("erase reply %s: %v", again.data, err)
	}
	if !strings.Contains(string(again.data), `"keysDestroyed":0`) {
		t.Fatalf("second erasure of alice: %s", again.data)
	}

	// The erasure is in the trail, naming the pseudonym and who asked.
	erasures := search(t, nc, `{"action":"audit.subject.erase"}`)
	if len(erasures) != 2 || erasures[0].ResourceID != pseudonym || !strings.Contains(string(erasures[1].Details), `"unverifiedClaim":"cli:`) {
		t.Fatalf("erasure events: %+v", erasures)
	}

	// Every read path: search by user id, by pseudonym and by session
	// (which still matches, through the session's pseudonym), event get.
	for _, q := range []string{`{"userId":"alice"}`, fmt.Sprintf(`{"userPseudonym":%q}`, pseudonym), `{"sessionId":"session-alice"}`} {
		got := search(t, nc, q)
		if len(got) != 3 {
			t.Fatalf("search %s after the erasure: %d events", q, len(got))
		}
		for _, v := range got {
			checkErased(t, v, pseudonym)
		}
	}
	a := ask(t, nc, contract.SubjectEventGet, `{"id":"a-1"}`).ok(t)
	if err := schemaErr(t, schemas["event-view"], a.data); err != nil {
		t.Fatalf("erased event view %s: %v", a.data, err)
	}
	var v view
	_ = json.Unmarshal(a.data, &v)
	checkErased(t, v, pseudonym)
	for _, u := range []string{"bob", "carol"} {
		got := search(t, nc, fmt.Sprintf(`{"userId":%q}`, u))
		if len(got) != 3 {
			t.Fatalf("search %s: %d events", u, len(got))
		}
		for _, v := range got {
			checkRevealed(t, v, u)
		}
	}

	// The report's top users: alice erased, the others by name.
	rep := ask(t, nc, contract.SubjectReport, `{"reportType":"daily","date":"2026-11-24"}`).ok(t)
	if err := schemaErr(t, schemas["report"], rep.data); err != nil {
		t.Fatalf("report %s: %v", rep.data, err)
	}
	var report struct {
		ID       int64
		TopUsers []struct {
			UserID, UserPseudonym string
			Erased                bool
			Count                 int
		}
	}
	_ = json.Unmarshal(rep.data, &report)
	seen := map[string]int{}
	for _, u := range report.TopUsers {
		seen[u.UserID] = u.Count
		if (u.UserID == "[erased]") != u.Erased || (u.Erased && u.UserPseudonym != pseudonym) {
			t.Fatalf("top user %+v", u)
		}
	}
	if seen["[erased]"] != 3 || seen["bob"] != 3 || seen["carol"] != 3 || seen["alice"] != 0 {
		t.Fatalf("top users %+v", report.TopUsers)
	}
	if strings.Contains(string(ask(t, nc, contract.SubjectReportGet, fmt.Sprintf(`{"id":%d}`, report.ID)).ok(t).data), "alice") {
		t.Fatal("the stored report names alice")
	}

	// A copy from before the erasure, restored, still cannot be read.
	if _, err := db.ExecContext(ctx, `DELETE FROM audit_logs WHERE user_id = ?`, pseudonym); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO audit_logs SELECT * FROM backup_rows`); err != nil {
		t.Fatal(err)
	}
	for _, v := range search(t, nc, `{"userId":"alice"}`) {
		checkErased(t, v, pseudonym)
	}

	// The proof holds only the sealed form; the trail verifies.
	proof := ask(t, nc, contract.SubjectEventProof, `{"id":"a-2"}`)
	servicetest.Eventually(t, 10*time.Second, func() (bool, string) {
		proof = ask(t, nc, contract.SubjectEventProof, `{"id":"a-2"}`)
		return proof.code == "", proof.error
	})
	if p := string(proof.data); strings.Contains(p, "alice") || strings.Contains(p, "198.51.100.7") || !strings.Contains(p, `\"personal\":`) {
		t.Fatalf("proof of an erased event: %s", p)
	}
	if out, err := servicetest.Client(ctx, t, cenv, "checkpoint"); err != nil {
		t.Fatalf("checkpoint: %v\n%s", err, out)
	}
	if out, err := runVerify(t, cenv, "--event", "a-2"); err != nil {
		t.Fatalf("verify --event of an erased event: %v\n%s", err, out)
	}
	out, err = runVerify(t, env)
	if err != nil || !strings.Contains(out, "3 events erased") || !strings.Contains(out, "OK: no tampering found") {
		t.Fatalf("verify after the erasure: %v\n%s", err, out)
	}

	// Alice seen again: a new key; her old events stay erased.
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg(contract.SubjectLog, "alice-new", personalEvent("alice-new", "alice"))})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = 'alice-new'") == 1, "alice-new not stored"
	})
	got := search(t, nc, `{"userId":"alice"}`)
	if len(got) != 4 || got[0].ID != "alice-new" {
		t.Fatalf("alice after her return: %+v", got)
	}
	checkRevealed(t, got[0], "alice")
	for _, v := range got[1:] {
		checkErased(t, v, pseudonym)
	}
}

// Without the key-encryption key, or with another one, the service does
// not start (so no event is stored unprotected), and says why; with the
// right key it starts and stores the events encrypted.
func TestPersonalDataNeedsTheRightKEK(t *testing.T) {
	env := personalEnv(t)
	good := env["AUDITQ_KEK_FILE"]
	missing := servicetest.Env(t)
	missing["AUDITQ_PERSONAL_DATA"] = "encrypt"
	if _, err := config.Load(func(k string) string { return missing[k] }); err == nil || !strings.Contains(err.Error(), "AUDITQ_KEK_FILE: required") {
		t.Fatalf("encrypt without AUDITQ_KEK_FILE: %v", err)
	}

	svc := servicetest.Start(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg(contract.SubjectLog, "e1", personalEvent("e1", "dora"))})
	db := servicetest.OpenDB(t, env)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = 'e1'") == 1, "e1 not stored"
	})
	nc.Close()
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ name, file, want string }{
		{"missing", filepath.Join(t.TempDir(), "nope"), "AUDITQ_KEK_FILE: key-encryption key: open"},
		{"malformed", writeFile(t, "not a key"), "must hold 32 bytes as 64 hexadecimal digits"},
		{"another key", kekFile(t), "the stored keys are wrapped under key-encryption key"},
	} {
		env["AUDITQ_KEK_FILE"] = c.file
		if _, err := servicetest.TryStart(t, env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("start with a %s KEK: %v", c.name, err)
		}
	}
	if n := servicetest.CountRows(t, db, "user_id IS NOT NULL AND (pseudonymous IS NOT TRUE OR personal IS NULL)"); n != 0 {
		t.Fatalf("%d rows stored unencrypted", n)
	}
	env["AUDITQ_KEK_FILE"] = good
	svc = servicetest.Start(t, env)
	nc = natsClient(t, svc)
	got := search(t, nc, `{"userId":"dora"}`)
	if len(got) != 1 {
		t.Fatalf("dora: %+v", got)
	}
	checkRevealed(t, got[0], "dora")
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Pseudonymise-only: the user id is stored as its pseudonym, shown as
// such, and searches by user id still find the events; nothing can be
// erased.
func TestPseudonymiseOnly(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_PERSONAL_DATA"] = "pseudonymise"
	env["AUDITQ_KEK_FILE"] = kekFile(t)
	svc := servicetest.Start(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg(contract.SubjectLog, "p1", personalEvent("p1", "erin"))})
	db := servicetest.OpenDB(t, env)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = 'p1'") == 1, "p1 not stored"
	})
	if n := servicetest.CountRows(t, db, "user_id = 'erin' OR pseudonymous IS NOT TRUE"); n != 0 {
		t.Fatal("the user id is stored in clear")
	}
	got := search(t, nc, `{"userId":"erin"}`)
	if len(got) != 1 || got[0].UserID == nil || *got[0].UserID != got[0].UserPseudonym || got[0].IPAddress != "198.51.100.7" {
		t.Fatalf("pseudonymised event: %+v", got)
	}
	if a := ask(t, nc, contract.SubjectAdminErase, `{"userId":"erin"}`); a.code != "501" {
		t.Fatalf("erase while pseudonymising: %s %s", a.code, a.error)
	}
	if out, err := runVerify(t, env); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// A backup taken before an erasure (pg_dump), restored into another
// database after it, cannot be decrypted with the key-encryption key the
// operator has then: the erasure replaced that key and rewrapped every
// remaining key under the new one, so no key in the backup opens under it
// (not the erased user's, and not the others' either: what a
// pre-erasure backup loses). The service refuses to start on it with an
// error naming both keys and the reason. Only a copy of the old key file
// kept by hand would open the backup, which the docs say. The pseudonym
// key is under its own key, which erasures never replace: served as the
// docs say, the restored backup keeps its pseudonyms, so a search by a
// user id (erased or not) finds the user's old events, which read as
// erased, and a new event of the user joins them under the same
// pseudonym.
func TestErasureDefeatsABackupTakenBefore(t *testing.T) {
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	env := personalEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	var msgs []*nats.Msg
	for i, u := range []string{"alice", "alice", "bob"} {
		id := fmt.Sprintf("b-%d", i)
		msgs = append(msgs, servicetest.EventMsg(contract.SubjectLog, id, personalEvent(id, u)))
	}
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "resource_type = 'user'")
		return n == 3, fmt.Sprintf("%d rows", n)
	})
	kekPath := env["AUDITQ_KEK_FILE"]
	oldKEK, err := keyfile.LoadKEK(kekPath) // the copy an operator should not keep
	if err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "before.dump")
	if out, err := exec.Command("pg_dump", "-Fc", "-f", dump, env["AUDITQ_DATABASE_URL"]).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}

	ask(t, nc, contract.SubjectAdminErase, `{"userId":"alice"}`).ok(t)
	newKEK, err := keyfile.LoadKEK(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	if newKEK.ID() == oldKEK.ID() {
		t.Fatal("the erasure did not replace the key-encryption key")
	}
	if _, err := os.Stat(kekPath + ".next"); !os.IsNotExist(err) {
		t.Fatalf("a prepared key is left after the erasure: %v", err)
	}
	var state, retired string
	if err := db.QueryRowContext(context.Background(), `SELECT kek_id, retired_kek_id FROM audit_kek_state WHERE retired_at IS NOT NULL`).Scan(&state, &retired); err != nil {
		t.Fatal(err)
	}
	if state != newKEK.ID() || retired != oldKEK.ID() {
		t.Fatalf("key generation: under %s (retired %s), want %s (retired %s)", state, retired, newKEK.ID(), oldKEK.ID())
	}
	got := search(t, nc, `{"userId":"bob"}`)
	if len(got) != 1 {
		t.Fatalf("bob after the erasure: %+v", got)
	}
	checkRevealed(t, got[0], "bob")
	nc.Close()
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}

	restoredURL := pgtest.NewDatabase(t)
	if out, err := exec.Command("pg_restore", "--no-owner", "-d", restoredURL, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	restored, err := postgres.Open(context.Background(), restoredURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = restored.Close() }()
	// Every subject key of the backup: none opens under the current key,
	// each opens under the old one. The pseudonym key opens under its own.
	pseudonymKEK, err := keyfile.LoadKEK(kekPath + ".pseudonym")
	if err != nil {
		t.Fatal(err)
	}
	var wrappedPseudonymKey []byte
	if err := restored.QueryRowContext(context.Background(), `SELECT wrapped FROM audit_personal_keys WHERE name = 'pseudonym'`).Scan(&wrappedPseudonymKey); err != nil {
		t.Fatal(err)
	}
	if _, err := pseudonymKEK.Unwrap(wrappedPseudonymKey, []byte("auditq pseudonym key v1")); err != nil {
		t.Fatalf("the pseudonym key of the backup does not open under its own key: %v", err)
	}
	rows, err := restored.QueryContext(context.Background(), `SELECT 'auditq subject key v1'||chr(10)||pseudonym, wrapped FROM audit_subject_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	keys := 0
	for rows.Next() {
		var ad string
		var wrapped []byte
		if err := rows.Scan(&ad, &wrapped); err != nil {
			t.Fatal(err)
		}
		keys++
		if _, err := newKEK.Unwrap(wrapped, []byte(ad)); err == nil {
			t.Fatalf("the current key-encryption key opens a key of the backup (%q)", ad)
		}
		if _, err := oldKEK.Unwrap(wrapped, []byte(ad)); err != nil {
			t.Fatalf("the old key does not open a key of the backup (%q): %v", ad, err)
		}
	}
	if err := rows.Err(); err != nil || keys != 2 {
		t.Fatalf("%d subject keys in the backup (%v), want 2", keys, err)
	}

	renv := map[string]string{}
	for k, v := range env {
		renv[k] = v
	}
	renv["AUDITQ_DATABASE_URL"] = restoredURL
	_, err = servicetest.TryStart(t, renv)
	if err == nil || !strings.Contains(err.Error(), oldKEK.ID()) || !strings.Contains(err.Error(), newKEK.ID()) ||
		!strings.Contains(err.Error(), "backup taken before an erasure") {
		t.Fatalf("start on the restored backup with the current key: %v", err)
	}
	if _, err := os.Stat(kekPath + ".next"); !os.IsNotExist(err) {
		t.Fatalf("the refused start left a prepared key: %v", err)
	}

	// The documented way to serve such a backup: drop the keys no key
	// opens; every encrypted event then reads as erased.
	if _, err := restored.ExecContext(context.Background(), restoreSQL); err != nil {
		t.Fatal(err)
	}
	rsvc := servicetest.Start(t, renv)
	rnc := natsClient(t, rsvc)
	got = search(t, rnc, `{"resourceType":"user"}`)
	if len(got) != 3 {
		t.Fatalf("the restored backup serves %d events, want 3", len(got))
	}
	pseudonyms := map[string]string{}
	for _, v := range got {
		if !v.Erased || v.IPAddress != "" || v.SessionID != "" || strings.Contains(string(v.Details), "email") {
			t.Fatalf("event %s of the restored backup: %+v", v.ID, v)
		}
		pseudonyms[v.ID] = v.UserPseudonym
	}
	// Searches by user id find the old events: bob's (not erased), and the
	// erased alice's, whose fields stay erased.
	for user, want := range map[string][]string{"bob": {"b-2"}, "alice": {"b-1", "b-0"}} {
		got := search(t, rnc, fmt.Sprintf(`{"userId":%q}`, user))
		if len(got) != len(want) {
			t.Fatalf("%s in the restored backup: %+v", user, got)
		}
		for i, v := range got {
			if v.ID != want[i] {
				t.Fatalf("%s in the restored backup: %+v", user, got)
			}
			checkErased(t, v, pseudonyms[v.ID])
		}
	}
	// A new event of bob: the same pseudonym, readable; his old one stays erased.
	_, rjs := natstest.Connect(t, rsvc.NATSURL())
	servicetest.PublishAll(t, rjs, []*nats.Msg{servicetest.EventMsg(contract.SubjectLog, "b-3", personalEvent("b-3", "bob"))})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		got = search(t, rnc, `{"userId":"bob"}`)
		return len(got) == 2, fmt.Sprintf("bob: %+v", got)
	})
	checkRevealed(t, got[0], "bob")
	if got[0].ID != "b-3" || got[0].UserPseudonym != pseudonyms["b-2"] {
		t.Fatalf("bob's new event %+v, his old pseudonym %s", got[0], pseudonyms["b-2"])
	}
	checkErased(t, got[1], pseudonyms["b-2"])
}

// restoreSQL is the statement docs/personal-data.md gives for serving a
// backup taken before an erasure.
const restoreSQL = `DELETE FROM audit_subject_keys; DELETE FROM audit_kek_state`
