package postgres_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/keyfile"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// newKEK writes a fresh key-encryption key file and returns it.
func newKEK(t testing.TB) *keyfile.File {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyfile.NewFile(path)
}

// kekID returns the id of the current key in f.
func kekID(t testing.TB, f *keyfile.File) string {
	t.Helper()
	cur, _, err := f.Keys()
	if err != nil {
		t.Fatal(err)
	}
	return cur.ID()
}

// personalConfig is the configuration of mode with kek, the pseudonym
// key's own key in a file beside it (as the service keeps it).
func personalConfig(t testing.TB, mode postgres.PersonalMode, kek *keyfile.File) postgres.PersonalConfig {
	t.Helper()
	pk, err := keyfile.LoadOrCreateKEK(strings.TrimSuffix(kek.NextPath(), ".next") + ".pseudonym")
	if err != nil {
		t.Fatal(err)
	}
	return postgres.PersonalConfig{Mode: mode, KEK: kek, PseudonymKEK: pk, DetailKeys: []string{"email"}}
}

func openPersonal(t testing.TB, db *bun.DB, mode postgres.PersonalMode, kek *keyfile.File) *postgres.Personal {
	t.Helper()
	p, err := postgres.OpenPersonal(context.Background(), db, personalConfig(t, mode, kek))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func personalEvent(id, user string) audit.Event {
	e := event(id)
	e.UserID = user
	e.Details = json.RawMessage(`{"email":"x@example.org","k":"v"}`)
	return e
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// Encrypted events read back as written; the row holds none of the
// personal fields; a sealed field moved to another row (same subject,
// same key) fails authentication instead of showing another event's data.
func TestPersonalEncryptRoundTripAndTamper(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	p := openPersonal(t, db, postgres.PersonalEncrypt, newKEK(t))
	repo := postgres.NewRepository(db).WithPersonal(p)
	in := []audit.Event{personalEvent("p1", "ann"), personalEvent("p2", "ann"), personalEvent("p3", "ben")}
	in[1].UserAgent, in[1].SessionID = "", ""
	if _, err := repo.Write(ctx, in); err != nil {
		t.Fatal(err)
	}
	for _, want := range in {
		got, err := repo.Get(ctx, audit.DefaultTenant, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != want.UserID || got.IPAddress != want.IPAddress || got.UserAgent != want.UserAgent ||
			got.SessionID != want.SessionID || !sameJSON(got.Details, want.Details) || got.Erased ||
			got.Pseudonym != p.Pseudonym(want.UserID) || got.Personal != nil {
			t.Fatalf("read back %+v, wrote %+v", got, want)
		}
	}
	var raw string
	if err := db.QueryRowContext(ctx, `SELECT audit_logs::text FROM audit_logs WHERE id = 'p1'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"ann", "203.0.113.7", "x@example.org", `"ua"`} {
		if strings.Contains(raw, s) {
			t.Fatalf("row holds %q in clear: %s", s, raw)
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_logs SET personal = (SELECT personal FROM audit_logs WHERE id = 'p2') WHERE id = 'p1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Get(ctx, audit.DefaultTenant, "p1"); err == nil || !strings.Contains(err.Error(), "fail authentication") {
		t.Fatalf("read a row holding another row's sealed fields: %v", err)
	}
	if _, err := postgres.NewRepository(db).Search(ctx, audit.SearchFilter{UserPseudonym: p.Pseudonym("ben"), Limit: 10}); err == nil ||
		!strings.Contains(err.Error(), "no key-encryption key is configured") {
		t.Fatalf("read encrypted events without a KEK: %v", err)
	}
}

// The key-encryption key must be the one the stored keys are wrapped
// under; the pseudonym key survives restarts, so pseudonyms are stable.
func TestPersonalKEKChecked(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	kek := newKEK(t)
	p := openPersonal(t, db, postgres.PersonalEncrypt, kek)
	if _, err := postgres.NewRepository(db).WithPersonal(p).Write(ctx, []audit.Event{personalEvent("k1", "cat")}); err != nil {
		t.Fatal(err)
	}
	again := openPersonal(t, db, postgres.PersonalEncrypt, kek)
	if again.Pseudonym("cat") != p.Pseudonym("cat") || !strings.HasPrefix(p.Pseudonym("cat"), "psn_") || len(p.Pseudonym("cat")) != 26 {
		t.Fatalf("pseudonyms %q and %q", p.Pseudonym("cat"), again.Pseudonym("cat"))
	}
	other := newKEK(t)
	cfg := personalConfig(t, postgres.PersonalEncrypt, kek)
	cfg.KEK = other
	_, err := postgres.OpenPersonal(ctx, db, cfg)
	if err == nil || !strings.Contains(err.Error(), kekID(t, kek)) || !strings.Contains(err.Error(), kekID(t, other)) {
		t.Fatalf("open with another KEK: %v", err)
	}
	// Another pseudonym key's key: the stored pseudonym key does not open.
	cfg = personalConfig(t, postgres.PersonalEncrypt, kek)
	cfg.PseudonymKEK = personalConfig(t, postgres.PersonalEncrypt, other).PseudonymKEK
	if _, err := postgres.OpenPersonal(ctx, db, cfg); err == nil || !strings.Contains(err.Error(), "AUDITQ_PSEUDONYM_KEY_FILE") {
		t.Fatalf("open with another pseudonym key's key: %v", err)
	}
	if _, err := postgres.OpenPersonal(ctx, db, postgres.PersonalConfig{Mode: postgres.PersonalEncrypt}); err == nil {
		t.Fatal("encrypt without a KEK opened")
	}
	// Off with the KEK: written as sent, earlier encrypted events still read.
	off := openPersonal(t, db, postgres.PersonalOff, kek)
	repo := postgres.NewRepository(db).WithPersonal(off)
	if _, err := repo.Write(ctx, []audit.Event{personalEvent("k2", "cat")}); err != nil {
		t.Fatal(err)
	}
	got, err := repo.Search(ctx, audit.SearchFilter{UserID: "cat", Limit: 10})
	if err != nil || len(got) != 2 || got[0].UserID != "cat" || got[1].UserID != "cat" {
		t.Fatalf("search cat across modes: %v %+v", err, got)
	}
	if _, err := postgres.NewRepository(db).WithPersonal(nil).Get(ctx, audit.DefaultTenant, "k2"); err != nil {
		t.Fatalf("an event written as sent, read without a KEK: %v", err)
	}
}

// Destroying a subject's keys erases its events, not others'; the
// subject's next event gets a new key and can be read.
func TestPersonalDestroyKeys(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	p := openPersonal(t, db, postgres.PersonalEncrypt, newKEK(t))
	repo := postgres.NewRepository(db).WithPersonal(p)
	if _, err := repo.Write(ctx, []audit.Event{personalEvent("d1", "dan"), personalEvent("d2", "eve")}); err != nil {
		t.Fatal(err)
	}
	e, err := beginErasure(ctx, p, audit.Erasure{EventID: "erase-1", Pseudonym: p.Pseudonym("dan"), RequestedAt: event("x").OccurredAt, RequestedBy: []byte(`{"who":"test"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := p.PendingErasures(ctx); err != nil || len(pending) != 1 || !bytes.Contains(pending[0].RequestedBy, []byte("test")) {
		t.Fatalf("pending erasures %v %+v", err, pending)
	}
	if dup, err := beginErasure(ctx, p, audit.Erasure{EventID: "erase-2", Pseudonym: p.Pseudonym("dan"), RequestedAt: event("x").OccurredAt}); err != nil || dup.EventID != "erase-1" {
		t.Fatalf("a second erasure while one is pending: %v %+v", err, dup)
	}
	if e, err = p.DestroyKeys(ctx, e); err != nil || !e.Completed || e.KeysErased != 1 {
		t.Fatalf("destroy: %v %+v", err, e)
	}
	if e, err = p.DestroyKeys(ctx, e); err != nil || e.KeysErased != 1 {
		t.Fatalf("destroy again: %v %+v", err, e)
	}
	dan, err := repo.Get(ctx, audit.DefaultTenant, "d1")
	if err != nil || !dan.Erased || dan.UserID != audit.ErasedUserID || dan.IPAddress != "" || strings.Contains(string(dan.Details), "email") {
		t.Fatalf("erased event: %v %+v", err, dan)
	}
	if eve, err := repo.Get(ctx, audit.DefaultTenant, "d2"); err != nil || eve.Erased || eve.UserID != "eve" {
		t.Fatalf("other subject: %v %+v", err, eve)
	}
	users, err := p.RevealUsers(ctx, []string{p.Pseudonym("dan"), p.Pseudonym("eve"), "plain-user"})
	if err != nil || users[p.Pseudonym("dan")] != audit.ErasedUserID || users[p.Pseudonym("eve")] != "eve" || len(users) != 2 {
		t.Fatalf("reveal users: %v %v", err, users)
	}
	if _, err := repo.Write(ctx, []audit.Event{personalEvent("d3", "dan")}); err != nil {
		t.Fatal(err)
	}
	if again, err := repo.Get(ctx, audit.DefaultTenant, "d3"); err != nil || again.Erased || again.UserID != "dan" {
		t.Fatalf("the subject's next event: %v %+v", err, again)
	}
}

// A writer remembers the subject keys it found, and follows an erasure
// by another instance: its next event of the erased user gets a new key
// (readable), never the destroyed one; the old events stay erased.
func TestPersonalWriterFollowsAnotherInstancesErasure(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	file := newKEK(t)
	writer, eraser := openPersonal(t, db, postgres.PersonalEncrypt, file), openPersonal(t, db, postgres.PersonalEncrypt, file)
	repo := postgres.NewRepository(db).WithPersonal(writer)
	for i, id := range []string{"w1", "w2"} { // the second write finds ivy's key remembered
		if _, err := repo.Write(ctx, []audit.Event{personalEvent(id, "ivy"), personalEvent(id+"-jo", "jo")}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	e, err := beginErasure(ctx, eraser, audit.Erasure{EventID: "erase-ivy", Pseudonym: eraser.Pseudonym("ivy"), RequestedAt: event("x").OccurredAt})
	if err != nil {
		t.Fatal(err)
	}
	if e, err = eraser.DestroyKeys(ctx, e); err != nil || e.KeysErased != 1 {
		t.Fatalf("erase ivy: %v %+v", err, e)
	}
	if _, err := repo.Write(ctx, []audit.Event{personalEvent("w3", "ivy"), personalEvent("w3-jo", "jo")}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"w1": audit.ErasedUserID, "w2": audit.ErasedUserID, "w3": "ivy", "w1-jo": "jo", "w3-jo": "jo"} {
		got, err := repo.Get(ctx, audit.DefaultTenant, id)
		if err != nil || got.UserID != want || got.Erased != (want == audit.ErasedUserID) {
			t.Errorf("%s: %v %+v, want user %s", id, err, got, want)
		}
	}
	var keys int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_subject_keys`).Scan(&keys); err != nil || keys != 2 {
		t.Fatalf("%d subject keys (%v), want 2: jo's and ivy's new one", keys, err)
	}
}

// A writer forgets the user ids and session ids it remembers at the next
// key generation: after another instance's erasure, its next write (of
// another user) leaves neither the erased user's id nor their session id
// in its memory.
func TestPersonalWriterForgetsAtAnErasure(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	file := newKEK(t)
	writer, eraser := openPersonal(t, db, postgres.PersonalEncrypt, file), openPersonal(t, db, postgres.PersonalEncrypt, file)
	repo := postgres.NewRepository(db).WithPersonal(writer)
	ivy, jo := personalEvent("f1", "ivy"), personalEvent("f1-jo", "jo")
	ivy.SessionID, jo.SessionID = "s-ivy", "s-jo"
	for _, id := range []string{"f1", "f2"} { // the second write finds ivy's key and remembers it
		ivy.ID, jo.ID = id, id+"-jo"
		if _, err := repo.Write(ctx, []audit.Event{ivy, jo}); err != nil {
			t.Fatal(err)
		}
	}
	if user, session := writer.Remembers(audit.DefaultTenant, "ivy", "s-ivy"); !user || !session {
		t.Fatalf("before the erasure: user remembered %t, session %t; want both", user, session)
	}
	e, err := beginErasure(ctx, eraser, audit.Erasure{EventID: "erase-ivy", Pseudonym: eraser.Pseudonym("ivy"), RequestedAt: event("x").OccurredAt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eraser.DestroyKeys(ctx, e); err != nil {
		t.Fatal(err)
	}
	jo.ID = "f3-jo"
	if _, err := repo.Write(ctx, []audit.Event{jo}); err != nil {
		t.Fatal(err)
	}
	if user, session := writer.Remembers(audit.DefaultTenant, "ivy", "s-ivy"); user || session {
		t.Fatalf("after the erasure: user remembered %t, session %t; want neither", user, session)
	}
	if got, err := repo.Get(ctx, audit.DefaultTenant, "f3-jo"); err != nil || got.UserID != "jo" || got.SessionID != "s-jo" {
		t.Fatalf("jo's event after the erasure: %v %+v", err, got)
	}
}

// A batch reads back as written, event by event, when its events share
// users and sessions, some fields need escapes in the sealed text (which
// outgrows its estimate), some events have no user or no session, and a
// second batch finds every subject and session remembered.
func TestPersonalBatchReadsBackAsWritten(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	p := openPersonal(t, db, postgres.PersonalEncrypt, newKEK(t))
	repo := postgres.NewRepository(db).WithPersonal(p)
	batch := func(prefix string) []audit.Event {
		evs := make([]audit.Event, 300)
		for i := range evs {
			e := personalEvent(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("user-%d", i%7))
			e.SessionID = fmt.Sprintf("sess-%d", i%11)
			switch i % 5 {
			case 0:
				e.UserAgent = strings.Repeat("\"\x01<é>", 40)
			case 1:
				e.SessionID = ""
			case 2:
				e.UserID, e.Details = "", json.RawMessage(`{"k":"system"}`)
			case 3:
				e.Details = json.RawMessage(`{"email":"` + strings.Repeat("\\u0001", 20) + `"}`)
			}
			evs[i] = e
		}
		return evs
	}
	for _, prefix := range []string{"a", "b"} {
		in := batch(prefix)
		if _, err := repo.Write(ctx, in); err != nil {
			t.Fatal(err)
		}
		for _, want := range in {
			got, err := repo.Get(ctx, audit.DefaultTenant, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.UserID != want.UserID || got.IPAddress != want.IPAddress || got.UserAgent != want.UserAgent ||
				got.SessionID != want.SessionID || !sameJSON(got.Details, want.Details) || got.Erased {
				t.Fatalf("read back %+v, wrote %+v", got, want)
			}
		}
	}
}

// A write that rolls back leaves no key remembered that it created: not
// one that failed (here on details that are not JSON), even when another
// instance has created a key since; not a batch with a duplicate (its
// first attempt rolled back, the second through the staging table).
func TestPersonalRolledBackKeysAreNotRemembered(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	kek := newKEK(t)
	repo := postgres.NewRepository(db).WithPersonal(openPersonal(t, db, postgres.PersonalEncrypt, kek))
	other := postgres.NewRepository(db).WithPersonal(openPersonal(t, db, postgres.PersonalEncrypt, kek))
	if _, err := repo.Write(ctx, []audit.Event{personalEvent("k1", "kim")}); err != nil {
		t.Fatal(err)
	}
	bad := personalEvent("k0", "lee")
	bad.Details = json.RawMessage(`{"email":`)
	if _, err := repo.Write(ctx, []audit.Event{bad}); err == nil {
		t.Fatal("details that are not JSON were stored")
	}
	if _, err := other.Write(ctx, []audit.Event{personalEvent("o1", "max")}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Write(ctx, []audit.Event{personalEvent("k2", "lee")}); err != nil {
		t.Fatal(err)
	}
	res, err := repo.Write(ctx, []audit.Event{personalEvent("k1", "kim"), personalEvent("k3", "ned")})
	if err != nil || res != (audit.WriteResult{Inserted: 1, Duplicates: 1}) {
		t.Fatalf("write with a duplicate: %v %+v", err, res)
	}
	if _, err := repo.Write(ctx, []audit.Event{personalEvent("k4", "ned")}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"k1": "kim", "k2": "lee", "k3": "ned", "k4": "ned"} {
		if got, err := repo.Get(ctx, audit.DefaultTenant, id); err != nil || got.UserID != want || got.Erased {
			t.Errorf("%s: %v %+v, want user %s", id, err, got, want)
		}
	}
}

// An erasure replaces the key-encryption key: the old key opens no stored
// key any more, and other instances sharing the key file (holding the old
// key in memory) follow: one creates new keys under the new key, never
// under the old one; another reads the rewrapped keys.
func TestPersonalErasureReplacesTheKEK(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	file := newKEK(t)
	oldKEK, _, err := file.Keys()
	if err != nil {
		t.Fatal(err)
	}
	p1 := openPersonal(t, db, postgres.PersonalEncrypt, file)
	p2 := openPersonal(t, db, postgres.PersonalEncrypt, file)
	p3 := openPersonal(t, db, postgres.PersonalEncrypt, file)
	repo1, repo2 := postgres.NewRepository(db).WithPersonal(p1), postgres.NewRepository(db).WithPersonal(p2)
	repo3 := postgres.NewRepository(db).WithPersonal(p3)
	if _, err := repo1.Write(ctx, []audit.Event{personalEvent("r1", "fay"), personalEvent("r2", "gus")}); err != nil {
		t.Fatal(err)
	}
	e, err := beginErasure(ctx, p1, audit.Erasure{EventID: "erase-r", Pseudonym: p1.Pseudonym("fay"), RequestedAt: event("x").OccurredAt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p1.DestroyKeys(ctx, e); err != nil {
		t.Fatal(err)
	}
	newID := kekID(t, file)
	if newID == oldKEK.ID() {
		t.Fatal("the key-encryption key was not replaced")
	}
	if _, next, err := file.Keys(); err != nil || next != nil {
		t.Fatalf("a prepared key is left: %v %v", err, next)
	}
	// The second instance: writes a new user (its key under the new KEK),
	// reads gus (a key rewrapped under the new KEK).
	if _, err := repo2.Write(ctx, []audit.Event{personalEvent("r3", "hal")}); err != nil {
		t.Fatal(err)
	}
	if got, err := repo3.Get(ctx, audit.DefaultTenant, "r2"); err != nil || got.UserID != "gus" {
		t.Fatalf("the third instance reads gus: %v %+v", err, got)
	}
	rows, err := db.QueryContext(ctx, `SELECT pseudonym, wrapped, kek_id FROM audit_subject_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	n := 0
	for rows.Next() {
		var ps, id string
		var wrapped []byte
		if err := rows.Scan(&ps, &wrapped, &id); err != nil {
			t.Fatal(err)
		}
		n++
		if _, err := oldKEK.Unwrap(wrapped, []byte("auditq subject key v1\n"+ps)); err == nil || id != newID {
			t.Fatalf("subject key %s: under %s (want %s), the old key opens it: %v", ps, id, newID, err == nil)
		}
	}
	if n != 2 {
		t.Fatalf("%d subject keys, want 2 (gus, hal)", n)
	}
	if got, err := repo1.Get(ctx, audit.DefaultTenant, "r3"); err != nil || got.UserID != "hal" {
		t.Fatalf("hal: %v %+v", err, got)
	}
	if got, err := repo1.Get(ctx, audit.DefaultTenant, "r1"); err != nil || !got.Erased {
		t.Fatalf("fay: %v %+v", err, got)
	}
}

// An export reads events as audit.event.get shows them: decrypted, or
// erased; its userId filter finds a user's rows stored in clear (before
// encryption) and encrypted ones, and its sessionId filter both kinds too.
func TestPersonalExport(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if _, err := postgres.NewRepository(db).Write(ctx, []audit.Event{personalEvent("x0", "ann")}); err != nil {
		t.Fatal(err)
	}
	p := openPersonal(t, db, postgres.PersonalEncrypt, newKEK(t))
	repo := postgres.NewRepository(db).WithPersonal(p)
	later := []audit.Event{personalEvent("x1", "ann"), personalEvent("x2", "ann"), personalEvent("x3", "ben")}
	for i := range later {
		later[i].OccurredAt = later[i].OccurredAt.Add(time.Duration(i+1) * time.Minute)
	}
	if _, err := repo.Write(ctx, later); err != nil {
		t.Fatal(err)
	}
	ann, err := repo.ExportPage(ctx, audit.SearchFilter{UserID: "ann", Limit: 10})
	if err != nil || len(ann) != 3 || ann[0].ID != "x2" || ann[2].ID != "x0" {
		t.Fatalf("export ann: %v %+v", err, ann)
	}
	for _, e := range ann {
		if e.UserID != "ann" || e.IPAddress != "203.0.113.7" || e.SessionID != "s" || !strings.Contains(string(e.Details), "email") {
			t.Fatalf("exported event of ann: %+v", e)
		}
	}
	if page, err := repo.ExportPage(ctx, audit.SearchFilter{UserID: "ann", Limit: 2}); err != nil || len(page) != 2 || page[1].ID != "x1" {
		t.Fatalf("export ann, 2 per page: %v %+v", err, page)
	}
	if all, err := repo.ExportPage(ctx, audit.SearchFilter{SessionID: "s", Limit: 10}); err != nil || len(all) != 4 {
		t.Fatalf("export session s: %v, %d events", err, len(all))
	}
	e, err := beginErasure(ctx, p, audit.Erasure{EventID: "erase-x", Pseudonym: p.Pseudonym("ben"), RequestedAt: event("x").OccurredAt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DestroyKeys(ctx, e); err != nil {
		t.Fatal(err)
	}
	ben, err := repo.ExportPage(ctx, audit.SearchFilter{UserID: "ben", Limit: 10})
	if err != nil || len(ben) != 1 || !ben[0].Erased || ben[0].UserID != audit.ErasedUserID || ben[0].IPAddress != "" || ben[0].SessionID != "" {
		t.Fatalf("export of erased ben: %v %+v", err, ben)
	}
}

// Each tenant has its mode and its pseudonym key: the same user id in
// four tenants (the default one pseudonymised, acme and beta encrypted,
// globex off) is four data subjects with four unrelated pseudonyms (none
// for globex, stored in clear). Erasing the user in acme erases acme's
// events only: beta's still decrypt, the default tenant's still show the
// pseudonym, globex's the user id; searches by user id in one tenant or
// all still find every event, erased ones included; a tenant not
// encrypting refuses erasure, naming the tenant.
func TestPersonalTenants(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	cfg := personalConfig(t, postgres.PersonalPseudonymise, newKEK(t))
	cfg.TenantModes = map[string]postgres.PersonalMode{"acme": postgres.PersonalEncrypt, "beta": postgres.PersonalEncrypt, "globex": postgres.PersonalOff}
	p, err := postgres.OpenPersonal(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	repo := postgres.NewRepository(db).WithPersonal(p)
	tenants := []string{"", "acme", "beta", "globex"}
	var in []audit.Event
	for i, tn := range tenants {
		e := personalEvent("t-"+tn, "u-1")
		e.Tenant = tn
		e.OccurredAt = e.OccurredAt.Add(time.Duration(i) * time.Minute)
		in = append(in, e)
	}
	if _, err := repo.Write(ctx, in); err != nil {
		t.Fatal(err)
	}
	// The stored forms.
	seen := map[string]bool{}
	for _, tn := range tenants {
		var user string
		var pseudonymous, sealed bool
		if err := db.QueryRowContext(ctx, `SELECT user_id, coalesce(pseudonymous, false), personal IS NOT NULL FROM audit_logs WHERE id = ?`, "t-"+tn).
			Scan(&user, &pseudonymous, &sealed); err != nil {
			t.Fatal(err)
		}
		want := p.PseudonymIn(tn, "u-1")
		if tn == "globex" {
			want = "u-1"
		}
		if user != want || pseudonymous != (tn != "globex") || sealed != (tn == "acme" || tn == "beta") || seen[user] {
			t.Fatalf("tenant %q: stored user %q (want %q), pseudonymous %v, sealed %v", tn, user, want, pseudonymous, sealed)
		}
		seen[user] = true
	}
	var keys int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_subject_keys WHERE tenant IN ('acme', 'beta')`).Scan(&keys); err != nil || keys != 2 {
		t.Fatalf("subject keys of acme and beta: %d, %v", keys, err)
	}
	// Every tenant's event reads as its mode says; a search by user id finds them all.
	read := func(want map[string]string) {
		t.Helper()
		all, err := repo.Search(ctx, audit.SearchFilter{UserID: "u-1", Limit: 10})
		if err != nil || len(all) != 4 {
			t.Fatalf("search u-1 in every tenant: %v, %d events", err, len(all))
		}
		for _, e := range all {
			if e.UserID != want[e.Tenant] {
				t.Fatalf("tenant %q reads user %q, want %q (%+v)", e.Tenant, e.UserID, want[e.Tenant], e)
			}
		}
		if x, err := repo.ExportPage(ctx, audit.SearchFilter{UserID: "u-1", Limit: 10}); err != nil || len(x) != 4 || x[0].Tenant != "globex" || x[3].Tenant != "" {
			t.Fatalf("export u-1 of every tenant: %v %+v", err, x)
		}
		for _, tn := range tenants {
			one, err := repo.Search(ctx, audit.SearchFilter{UserID: "u-1", Tenant: &tn, Limit: 10})
			if err != nil || len(one) != 1 || one[0].Tenant != tn {
				t.Fatalf("search u-1 in tenant %q: %v %+v", tn, err, one)
			}
			x, err := repo.ExportPage(ctx, audit.SearchFilter{UserID: "u-1", SessionID: "s", Tenant: &tn, Limit: 10})
			if err != nil || len(x) != 1 || x[0].ID != "t-"+tn {
				t.Fatalf("export u-1, session s, in tenant %q: %v %+v", tn, err, x)
			}
		}
	}
	read(map[string]string{"": p.Pseudonym("u-1"), "acme": "u-1", "beta": "u-1", "globex": "u-1"})

	if _, err := beginErasure(ctx, p, audit.Erasure{EventID: "erase-g", Tenant: "globex", Pseudonym: p.PseudonymIn("globex", "u-1"), RequestedAt: event("x").OccurredAt}); !errors.Is(err, audit.ErrErasureOff) || !strings.Contains(err.Error(), `"globex"`) {
		t.Fatalf("erasure in a tenant that does not encrypt: %v", err)
	}
	e, err := beginErasure(ctx, p, audit.Erasure{EventID: "erase-a", Tenant: "acme", Pseudonym: p.PseudonymIn("acme", "u-1"), RequestedAt: event("x").OccurredAt})
	if err != nil {
		t.Fatal(err)
	}
	if e, err = p.DestroyKeys(ctx, e); err != nil || e.KeysErased != 1 || e.Tenant != "acme" {
		t.Fatalf("erase u-1 in acme: %v %+v", err, e)
	}
	read(map[string]string{"": p.Pseudonym("u-1"), "acme": audit.ErasedUserID, "beta": "u-1", "globex": "u-1"})
	if got, err := repo.Get(ctx, "acme", "t-acme"); err != nil || !got.Erased || got.IPAddress != "" || got.Pseudonym != p.PseudonymIn("acme", "u-1") {
		t.Fatalf("acme's event after the erasure: %v %+v", err, got)
	}
	if got, err := repo.Get(ctx, "beta", "t-beta"); err != nil || got.Erased || got.IPAddress != "203.0.113.7" || !strings.Contains(string(got.Details), "email") {
		t.Fatalf("beta's event after acme's erasure: %v %+v", err, got)
	}
	users, err := p.RevealUsers(ctx, []string{p.PseudonymIn("acme", "u-1"), p.PseudonymIn("beta", "u-1")})
	if err != nil || users[p.PseudonymIn("acme", "u-1")] != audit.ErasedUserID || users[p.PseudonymIn("beta", "u-1")] != "u-1" {
		t.Fatalf("top users after acme's erasure: %v %v", err, users)
	}
	// A new event of u-1 in acme gets a new key and reads in clear.
	again := personalEvent("t-acme-2", "u-1")
	again.Tenant = "acme"
	if _, err := repo.Write(ctx, []audit.Event{again}); err != nil {
		t.Fatal(err)
	}
	if got, err := repo.Get(ctx, "acme", "t-acme-2"); err != nil || got.Erased || got.UserID != "u-1" {
		t.Fatalf("a new event of u-1 in acme: %v %+v", err, got)
	}
}

// A pseudonym key stored before it had a key of its own (wrapped under the
// key-encryption key, as erasures used to rewrap it) is moved under
// PseudonymKEK at the first start: the same key, so the same pseudonyms;
// a later erasure leaves it as it is.
func TestPersonalPseudonymKeyMovedUnderItsOwnKey(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	file := newKEK(t)
	cur, _, err := file.Keys()
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	wrapped, err := cur.Wrap(key, []byte("auditq pseudonym key v1"))
	if err != nil {
		t.Fatal(err)
	}
	// As the earlier version stored it, which also made pseudonyms of all
	// 32 bytes of the HMAC (20261207002000 records that).
	if _, err := db.ExecContext(ctx, `INSERT INTO audit_personal_keys (name, wrapped, kek_id, pseudonym_bytes) VALUES ('pseudonym', ?, ?, 32)`, wrapped, cur.ID()); err != nil {
		t.Fatal(err)
	}
	cfg := personalConfig(t, postgres.PersonalEncrypt, file)
	p, err := postgres.OpenPersonal(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("u-1"))
	if want := "psn_" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); p.Pseudonym("u-1") != want {
		t.Fatalf("pseudonym %s after the move, want %s", p.Pseudonym("u-1"), want)
	}
	storedUnder := func() string {
		t.Helper()
		var id string
		if err := db.QueryRowContext(ctx, `SELECT kek_id FROM audit_personal_keys WHERE name = 'pseudonym'`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	if got := storedUnder(); got != cfg.PseudonymKEK.ID() {
		t.Fatalf("the pseudonym key is under %s, want %s", got, cfg.PseudonymKEK.ID())
	}
	if _, err := postgres.NewRepository(db).WithPersonal(p).Write(ctx, []audit.Event{personalEvent("m1", "u-1")}); err != nil {
		t.Fatal(err)
	}
	e, err := beginErasure(ctx, p, audit.Erasure{EventID: "erase-m", Pseudonym: p.Pseudonym("u-1"), RequestedAt: event("x").OccurredAt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DestroyKeys(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got := storedUnder(); got != cfg.PseudonymKEK.ID() {
		t.Fatalf("after an erasure the pseudonym key is under %s, want %s", got, cfg.PseudonymKEK.ID())
	}
	if again := openPersonal(t, db, postgres.PersonalEncrypt, file); again.Pseudonym("u-1") != p.Pseudonym("u-1") {
		t.Fatal("the pseudonyms changed with the erasure")
	}
}

// A legal hold holds the user id in every tenant: under each tenant's
// pseudonym, and in clear. The other users' old events are deleted.
func TestPersonalHoldInEveryTenant(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	cfg := personalConfig(t, postgres.PersonalEncrypt, newKEK(t))
	cfg.TenantModes = map[string]postgres.PersonalMode{"acme": postgres.PersonalPseudonymise, "globex": postgres.PersonalOff}
	p, err := postgres.OpenPersonal(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var in []audit.Event
	for _, tn := range []string{"", "acme", "globex"} {
		for _, u := range []string{"held", "free"} {
			e := personalEvent(u+"-"+tn, u)
			e.Tenant = tn
			in = append(in, e)
		}
	}
	if _, err := postgres.NewRepository(db).WithPersonal(p).Write(ctx, in); err != nil {
		t.Fatal(err)
	}
	r := mustRetention(t, db, postgres.RetentionConfig{}).WithPersonal(p)
	c := audit.Cleanup{Cutoff: in[0].OccurredAt.Add(time.Hour), HoldUsers: []string{"held"}}
	if n, err := r.CountExpired(ctx, c); err != nil || n != 3 {
		t.Fatalf("count expired: %d, %v", n, err)
	}
	if n, err := r.DeleteExpired(ctx, c); err != nil || n != 3 {
		t.Fatalf("delete expired: %d, %v", n, err)
	}
	if got := ids(t, db); !reflect.DeepEqual(got, []string{"held-", "held-acme", "held-globex"}) {
		t.Fatalf("left: %v", got)
	}
}

// beginErasure records one pending erasure: BeginErasures of one.
func beginErasure(ctx context.Context, p *postgres.Personal, e audit.Erasure) (audit.Erasure, error) {
	list, err := p.BeginErasures(ctx, []audit.Erasure{e})
	if err != nil {
		return audit.Erasure{}, err
	}
	return list[0], nil
}

// Rows written before the binary sealed fields and the 128-bit session
// pseudonym (version 1: JSON, and the session pseudonym of the whole
// HMAC) and rows written after, of the same users and sessions, read back
// as written, are found by one search per user and per session, verify,
// and are erased together.
func TestPersonalRowsOfBothForms(t *testing.T) {
	ctx := context.Background()
	tr := newTrail(t)
	kek := newKEK(t)
	write := func(repo *postgres.Repository, evs ...audit.Event) {
		t.Helper()
		if _, err := repo.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	withSession := func(e audit.Event, s string) audit.Event { e.SessionID = s; return e }
	var all []audit.Event
	for _, form := range []string{"v1", "v2"} {
		restore := func() {}
		if form == "v1" {
			restore = postgres.WriteFirstForm()
		}
		// Each form from a writer of its own, as after an upgrade's restart.
		repo := tr.repo.WithPersonal(openPersonal(t, tr.db, postgres.PersonalEncrypt, kek))
		evs := []audit.Event{withSession(personalEvent(form+"-a", "ann"), "s-1"), withSession(personalEvent(form+"-b", "ben"), "s-2")}
		write(repo, evs...)
		restore()
		all = append(all, evs...)
	}
	p := openPersonal(t, tr.db, postgres.PersonalEncrypt, kek)
	repo := tr.repo.WithPersonal(p)
	rows, err := tr.db.QueryContext(ctx, `SELECT id, get_byte(personal, 0), length(session_id) FROM audit_logs ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for rows.Next() {
		var id string
		var version, session int
		if err := rows.Scan(&id, &version, &session); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, fmt.Sprintf("%s:%d:%d", id, version, session))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"v1-a:1:47", "v1-b:1:47", "v2-a:2:26", "v2-b:2:26"}; !slices.Equal(stored, want) {
		t.Fatalf("stored forms (id:version:session pseudonym length) %v, want %v", stored, want)
	}
	for _, want := range all {
		got, err := repo.Get(ctx, audit.DefaultTenant, want.ID)
		if err != nil || got.UserID != want.UserID || got.IPAddress != want.IPAddress || got.UserAgent != want.UserAgent ||
			got.SessionID != want.SessionID || !sameJSON(got.Details, want.Details) || got.Erased {
			t.Fatalf("read back %v %+v, wrote %+v", err, got, want)
		}
	}
	ids := func(f audit.SearchFilter) []string {
		t.Helper()
		f.Limit = 10
		got, err := repo.Search(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range got {
			out = append(out, e.ID)
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		f    audit.SearchFilter
		want []string
	}{
		{audit.SearchFilter{UserID: "ann"}, []string{"v1-a", "v2-a"}},
		{audit.SearchFilter{UserPseudonym: p.Pseudonym("ben")}, []string{"v1-b", "v2-b"}},
		{audit.SearchFilter{SessionID: "s-1"}, []string{"v1-a", "v2-a"}},
		{audit.SearchFilter{SessionID: "s-2", UserID: "ben"}, []string{"v1-b", "v2-b"}},
	} {
		if got := ids(c.f); !slices.Equal(got, c.want) {
			t.Errorf("search %+v: %v, want %v", c.f, got, c.want)
		}
	}
	tr.checkpoint(t, command.CheckpointPeriodic)
	wantClean(t, tr.verify(t))
	e, err := beginErasure(ctx, p, audit.Erasure{EventID: "erase-ann", Pseudonym: p.Pseudonym("ann"), RequestedAt: event("x").OccurredAt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DestroyKeys(ctx, e); err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		got, err := repo.Get(ctx, audit.DefaultTenant, c.ID)
		erased := c.UserID == "ann"
		if err != nil || got.Erased != erased || erased && (got.UserID != audit.ErasedUserID || got.IPAddress != "" || got.SessionID != "" ||
			strings.Contains(string(got.Details), "email")) || !erased && got.UserID != c.UserID {
			t.Fatalf("after ann's erasure, %s: %v %+v", c.ID, err, got)
		}
	}
	if got := ids(audit.SearchFilter{SessionID: "s-1"}); !slices.Equal(got, []string{"v1-a", "v2-a"}) {
		t.Errorf("search the erased user's session: %v", got)
	}
	rep := tr.verify(t)
	wantClean(t, rep)
	if rep.Erased != 2 {
		t.Fatalf("verify counts %d erased rows, want 2", rep.Erased)
	}
}

// A deployment's pseudonyms keep the length its pseudonym key records:
// one created now makes 26-character pseudonyms (16 bytes of the HMAC);
// one stored before 20261207002000 (which records 32 for it) keeps making
// the 47-character ones its rows hold, across restarts, so that the
// user's events written before and after are found, counted and erased
// as one user's.
func TestPersonalPseudonymLengthKept(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		stored     int // pseudonym_bytes set before the first write; 0: as created
		wantLength int
	}{{"created now", 0, 26}, {"stored before", 32, 47}} {
		t.Run(c.name, func(t *testing.T) {
			db := newDB(t)
			kek := newKEK(t)
			first := openPersonal(t, db, postgres.PersonalEncrypt, kek)
			mac := func(p *postgres.Personal) string { return p.Pseudonym("ann") }
			if c.stored != 0 {
				// The key as an earlier version left it, before its first
				// pseudonym: the migration records 32 for it.
				if _, err := db.ExecContext(ctx, `UPDATE audit_personal_keys SET pseudonym_bytes = ?`, c.stored); err != nil {
					t.Fatal(err)
				}
				first = openPersonal(t, db, postgres.PersonalEncrypt, kek)
			}
			if _, err := postgres.NewRepository(db).WithPersonal(first).Write(ctx, []audit.Event{personalEvent("l1", "ann")}); err != nil {
				t.Fatal(err)
			}
			p := openPersonal(t, db, postgres.PersonalEncrypt, kek) // a restart
			repo := postgres.NewRepository(db).WithPersonal(p)
			if _, err := repo.Write(ctx, []audit.Event{personalEvent("l2", "ann")}); err != nil {
				t.Fatal(err)
			}
			if len(mac(p)) != c.wantLength || mac(p) != mac(first) || !strings.HasPrefix(mac(p), "psn_") {
				t.Fatalf("pseudonym %q then %q, want %d characters", mac(first), mac(p), c.wantLength)
			}
			var lengths string
			if err := db.QueryRowContext(ctx, `SELECT string_agg(DISTINCT length(user_id)::text, ',') FROM audit_logs`).Scan(&lengths); err != nil {
				t.Fatal(err)
			}
			if lengths != strconv.Itoa(c.wantLength) {
				t.Fatalf("stored pseudonyms of %s characters, want %d", lengths, c.wantLength)
			}
			got, err := repo.Search(ctx, audit.SearchFilter{UserID: "ann", Limit: 10})
			if err != nil || len(got) != 2 {
				t.Fatalf("search ann: %v, %d events", err, len(got))
			}
			e, err := beginErasure(ctx, p, audit.Erasure{EventID: "erase-l", Pseudonym: mac(p), RequestedAt: event("x").OccurredAt})
			if err != nil {
				t.Fatal(err)
			}
			if e, err = p.DestroyKeys(ctx, e); err != nil || e.KeysErased != 1 {
				t.Fatalf("destroy: %v %+v", err, e)
			}
			for _, id := range []string{"l1", "l2"} {
				if got, err := repo.Get(ctx, audit.DefaultTenant, id); err != nil || !got.Erased {
					t.Fatalf("%s after the erasure: %v %+v", id, err, got)
				}
			}
		})
	}
}
