package postgres_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// tapDetails are details whose jsonb form differs from the text sent:
// white space, key order and repeats, escapes, unicode and numbers.
var tapDetails = []string{
	`{}`, `{"k":"v"}`, ` { "b" : 1 , "a":[ ] , "aa": {}} `, `{"a": 1, "ab": 2, "b": 3, "email": "x@example.org"}`,
	`{"s": "quote\" back\\slash \/ \b\f\n\r\t \u0001\u001F é \u00e9 \u2028 😀 \ud83d\ude00 <>&"}`,
	`{"n": [0, -0, 1.0, 1.50, -0.0, 1e2, 1E+2, 1e-2, 12.5e1, 1234567890123456, 1e20, -1.5E3, 0.1, 5e-324]}`,
	`{"nested": {"deep": [[[{"b": 1, "a": 2}]]]}, "email": "y@example.org", "\u00e9": true, "": null}`,
}

// tapIPs are addresses in several forms, the stored one PostgreSQL's.
var tapIPs = []string{"", "203.0.113.7", "2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", "::ffff:192.0.2.1", "::1", "fe80::1:2", "0.0.0.0"}

// tapEvents returns n varied events with ids prefix-0..: unicode, odd
// details, IPv4 and IPv6, users or none, tenants (whose personal data
// modes differ), times with nanoseconds and zones, failures.
func tapEvents(prefix string, n int) []audit.Event {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	tenants := []string{audit.DefaultTenant, "pseudo", "plain", "acme"}
	out := make([]audit.Event, n)
	for i := range out {
		at := time.Date(2026, 11, 24, 10, 0, i, 123456789+i, zone)
		e := audit.Event{
			ID: fmt.Sprintf("%s-%d-é😀", prefix, i), Action: "user.lögin", ResourceType: "doc", ResourceID: fmt.Sprintf("r\t%d\n", i%7),
			IPAddress: tapIPs[i%len(tapIPs)], UserAgent: []string{"", "Mozilla/5.0 (X11) \u2028", `"}`}[i%3],
			SessionID: []string{"s", ""}[i%2], RequestID: []string{"", "req-1"}[i%2], Success: i%4 != 0,
			OccurredAt: at, ReceivedAt: at.Add(time.Duration(i) * time.Nanosecond), Tenant: tenants[(i/3)%len(tenants)],
		}
		if i%5 != 0 {
			e.UserID = []string{"ann", "bén", "user@example.org"}[i%3]
		}
		if i%6 != 0 {
			e.Details = json.RawMessage(tapDetails[i%len(tapDetails)])
		}
		if !e.Success {
			e.ErrorMessage = "denied: \"quota\" ü"
		}
		out[i] = e
	}
	return out
}

// The rows of an instance's own batches, which its streams read from
// memory, are exactly the rows PostgreSQL returns for them, field by
// field: bulk writes, single events, a write with duplicates (leaves left
// out), encrypted, pseudonymised and plain personal data, tenants.
func TestStreamStoreOwnBatchesAsStored(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	kek := newKEK(t)
	cfg := personalConfig(t, postgres.PersonalEncrypt, kek)
	cfg.TenantModes = map[string]postgres.PersonalMode{"pseudo": postgres.PersonalPseudonymise, "plain": postgres.PersonalOff}
	p, err := postgres.OpenPersonal(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealer := postgres.NewSealer(db, evidence.NewSigner(priv))
	tapped := postgres.NewStreamStore(db)
	sealer.TapCommits(tapped)
	repo := postgres.NewRepository(db).WithSealer(sealer).WithPersonal(p)

	bulk := tapEvents("bulk", 300)
	if _, err := repo.Write(ctx, bulk); err != nil {
		t.Fatal(err)
	}
	for i, e := range tapEvents("single", 24) {
		if _, err := repo.Write(ctx, []audit.Event{e}); err != nil {
			t.Fatalf("single %d: %v", i, err)
		}
	}
	// Repeats of stored events among new ones: the staging path, whose
	// batch has no row at the repeats' leaves.
	mixed := append(append([]audit.Event{bulk[3], bulk[4]}, tapEvents("mixed", 10)...), bulk[5])
	if res, err := repo.Write(ctx, mixed); err != nil || res.Inserted != 10 {
		t.Fatalf("mixed write: %+v, %v", res, err)
	}
	if _, err := sealer.Chain(ctx); err != nil {
		t.Fatal(err)
	}
	const total = 300 + 24 + 10
	readAll := func(s *postgres.StreamStore) []audit.SealedEvent {
		rd, err := s.Read(ctx, audit.StreamStart, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(rd.Events) != total || rd.More || rd.Skipped != 0 {
			t.Fatalf("read %d events (more %v, skipped %d), want %d", len(rd.Events), rd.More, rd.Skipped, total)
		}
		out := make([]audit.SealedEvent, len(rd.Events))
		for i, e := range rd.Events {
			out[i] = *e
		}
		return out
	}
	fromPostgres := readAll(postgres.NewStreamStore(db))
	// With the rows gone from the table, the tapped store still has them:
	// what it returns comes from its memory.
	if _, err := db.DB.ExecContext(ctx, `DELETE FROM audit_logs`); err != nil {
		t.Fatal(err)
	}
	fromMemory := readAll(tapped)
	kinds := map[string]int{}
	for i, want := range fromPostgres {
		got := fromMemory[i]
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d: %s", i, fieldDiff(got, want))
		}
		switch {
		case want.Personal != nil:
			kinds["encrypted"]++
		case want.Pseudonym != "":
			kinds["pseudonymised"]++
		case want.UserID != "":
			kinds["plain"]++
		}
	}
	if kinds["encrypted"] == 0 || kinds["pseudonymised"] == 0 || kinds["plain"] == 0 {
		t.Fatalf("the events cover too little: %v", kinds)
	}
}

// fieldDiff names the fields in which got and want differ.
func fieldDiff(got, want audit.SealedEvent) string {
	out := ""
	gv, wv := reflect.ValueOf(got.Event), reflect.ValueOf(want.Event)
	for i := range gv.NumField() {
		f := gv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		if g, w := gv.Field(i).Interface(), wv.Field(i).Interface(); !reflect.DeepEqual(g, w) {
			if b, ok := g.(json.RawMessage); ok {
				g, w = string(b), string(w.(json.RawMessage))
			}
			out += fmt.Sprintf("%s: %#v, PostgreSQL has %#v; ", f.Name, g, w)
		}
	}
	if got.Seal != want.Seal || !reflect.DeepEqual(got.LeafData, want.LeafData) {
		out += fmt.Sprintf("seal %+v leaf data %x, PostgreSQL has %+v %x", got.Seal, got.LeafData, want.Seal, want.LeafData)
	}
	if out == "" {
		out = "unexported fields differ"
	}
	return out
}
