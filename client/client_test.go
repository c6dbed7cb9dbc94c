package client

// Tests without a server. The client against the real service, and its
// rules and proof check held to the service's own, are tests of the
// auditq module: TestClientAgainstTheService, TestClientProofMatchesService,
// TestClientPublishRetriesThroughARestart (service) and
// TestClientRulesMatchService (ports/contract).

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestEventJSON(t *testing.T) {
	ts := time.Date(2026, 11, 24, 9, 5, 3, 123456789, time.FixedZone("CET", 3600))
	e := Event{ID: "e-1", UserID: "u \"1\"", Action: "user.update", ResourceType: "user", ResourceID: "u-2",
		Details: json.RawMessage(`{"changed": {"role": "editor"}}`), IPAddress: "203.0.113.7", UserAgent: "curl/8\\x",
		SessionID: "s", RequestID: "r", Failed: true, ErrorMessage: "line 1\nline 2\ttab\x01", Timestamp: ts}
	data := e.appendJSON(nil)
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	want := map[string]any{
		"id": "e-1", "userId": "u \"1\"", "action": "user.update", "resourceType": "user", "resourceId": "u-2",
		"details": map[string]any{"changed": map[string]any{"role": "editor"}}, "ipAddress": "203.0.113.7",
		"userAgent": "curl/8\\x", "sessionId": "s", "requestId": "r", "success": false,
		"errorMessage": "line 1\nline 2\ttab\x01", "timestamp": "2026-11-24T08:05:03.123456789Z",
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Fatalf("appendJSON:\n got %s\nwant %s", g, w)
	}
	if !strings.Contains(string(data), `"details":{"changed": {"role": "editor"}}`) {
		t.Errorf("details not sent verbatim: %s", data)
	}
	if got := string(Event{Action: "a"}.appendJSON(nil)); got != `{"action":"a"}` {
		t.Errorf("empty fields sent: %s", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The rules see the bytes that would be sent: what encoding/json would
// have quietly replaced or refused is rejected in the service's words.
func TestEventRulesSeeTheBytesSent(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		e    Event
		want string
	}{
		{Event{Action: "a", ResourceType: "r", ResourceID: "1"}, ""},
		{Event{Action: "a", ResourceType: "r", ResourceID: "1", UserID: "u\xff"}, "userId: is not valid UTF-8 (byte offset 12)"},
		{Event{Action: "a\n", ResourceType: "r", ResourceID: "1"}, "action: must not contain control characters (U+000A at byte offset 1)"},
		{Event{Action: "a", ResourceType: "r", ResourceID: "1", RequestID: "x\x00"}, "requestId: must not contain NUL characters (at character offset 1)"},
		{Event{Action: "a", ResourceType: "r", ResourceID: "1", Details: json.RawMessage(`[1]`)}, "details: must be a JSON object, got an array"},
		{Event{Action: "a", ResourceType: "r", ResourceID: "1", Details: json.RawMessage(`{"a":1,"a":2}`)}, "details: byte 13: key \"a\" appears more than once in an object"},
		{Event{Action: "a", ResourceType: "r", ResourceID: "1", Timestamp: now.Add(2 * time.Hour)}, "timestamp: is more than 1h0m0s after the time it was received (2026-11-24T12:00:00Z)"},
		{Event{Action: "a", ResourceType: "r", ResourceID: "1", Timestamp: time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)}, "timestamp: is before 1970-01-01T00:00:00Z"},
		{Event{Action: "a", ResourceType: "r", ResourceID: strings.Repeat("x", 257)}, "resourceId: is 257 characters long, more than the limit of 256"},
		{Event{Action: "a", ResourceType: "r", ResourceID: "1", IPAddress: "fe80::1%eth0"}, `ipAddress: must be an IPv4 or IPv6 address without zone, got "fe80::1%eth0"`},
	} {
		err := Rules{}.CheckEvent(c.e.appendJSON(nil), now)
		got := ""
		if err != nil {
			got = err.Error()
			var v *ValidationError
			if !errors.As(err, &v) {
				t.Errorf("%v: not a *ValidationError", err)
			}
		}
		if got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.e, got, c.want)
		}
	}
}

func TestNewChecksOptions(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New without a connection succeeded")
	}
}

func TestStoredEventJSON(t *testing.T) {
	in := `{"id":"e","userId":null,"action":"a","resourceType":"r","resourceId":"1","details":{"k":[1,2]},"success":false,` +
		`"errorMessage":"no","timestamp":"2026-11-24T09:05:03Z","receivedAt":"2026-11-24T09:05:04.5Z"}`
	var e StoredEvent
	if err := json.Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if e.UserID != "" || !e.Failed || e.ErrorMessage != "no" || e.ReceivedAt.Nanosecond() != 5e8 || string(e.Details) != `{"k":[1,2]}` {
		t.Fatalf("%+v", e)
	}
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("round trip:\n got %s\nwant %s", out, in)
	}
}

// A proof built here with the formats of docs/tamper-evidence.md: three
// events in batch 1, covered by checkpoint 1.
func TestVerifyProof(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	canonical := []string{`{"action":"a","id":"e0"}`, `{"action":"a","id":"e1"}`, `{"action":"a","id":"e2"}`}
	leaves := make([]Hash, len(canonical))
	for i, c := range canonical {
		leaves[i] = leafHash([]byte(c))
	}
	batch := Batch{Seq: 1, ID: 1839304105732216470, SealedAt: time.Date(2026, 11, 24, 9, 0, 0, 123000, time.UTC), LeafCount: 3,
		Root: nodeHash(nodeHash(leaves[0], leaves[1]), leaves[2])}
	body := batchBody(batch)
	batch.Signature = ed25519.Sign(priv, append([]byte("auditq batch body v1\n"), body...))
	batch.Hash = batchHash(batch, body)
	cp := Checkpoint{Seq: 1, Time: time.Date(2026, 11, 24, 9, 0, 1, 0, time.UTC), Reason: "request", BatchSeq: 1, BatchHash: batch.Hash,
		RangeFrom: 1, RangeRoot: batch.Hash, KeyID: keyID(pub)}
	cp.Signature = ed25519.Sign(priv, checkpointText(cp))
	proof := func() Proof {
		c := cp
		return Proof{EventID: "e1", Canonical: canonical[1], LeafHash: leaves[1], LeafIndex: 1,
			LeafProof: []Hash{leaves[0], leaves[2]}, Batch: batch, BatchIndex: 0, RangeSize: 1, Checkpoint: &c}
	}
	keys := PublicKeys{Current: pub}
	if err := VerifyProof(proof(), keys); err != nil {
		t.Fatalf("a valid proof: %v", err)
	}
	// Through JSON, as it arrives.
	var back Proof
	if err := json.Unmarshal([]byte(mustJSON(t, proof())), &back); err != nil || VerifyProof(back, keys) != nil {
		t.Fatalf("a valid proof through JSON: %v, %v", err, VerifyProof(back, keys))
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if err := VerifyProof(proof(), PublicKeys{Current: other, Retired: []ed25519.PublicKey{pub}}); err != nil {
		t.Fatalf("signed by a retired key: %v", err)
	}
	pending := proof()
	pending.Checkpoint = nil
	if err := VerifyProof(pending, keys); !errors.Is(err, ErrNotCheckpointed) {
		t.Fatalf("no checkpoint: %v", err)
	}
	for name, edit := range map[string]func(*Proof){
		"canonical":     func(p *Proof) { p.Canonical = `{"action":"b","id":"e1"}` },
		"eventId":       func(p *Proof) { p.EventID = "e2" },
		"leafIndex":     func(p *Proof) { p.LeafIndex = 2 },
		"leafProof":     func(p *Proof) { p.LeafProof[0][0] ^= 1 },
		"batch.root":    func(p *Proof) { p.Batch.Root[0] ^= 1 },
		"batch.sealed":  func(p *Proof) { p.Batch.SealedAt = p.Batch.SealedAt.Add(time.Microsecond) },
		"batch.prev":    func(p *Proof) { p.Batch.Prev[0] ^= 1 },
		"checkpoint":    func(p *Proof) { p.Checkpoint.Reason = "periodic" },
		"batchIndex":    func(p *Proof) { p.BatchIndex = 1 },
		"untrusted key": func(p *Proof) {},
	} {
		p := proof()
		edit(&p)
		k := keys
		if name == "untrusted key" {
			k = PublicKeys{Current: other}
		}
		if err := VerifyProof(p, k); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("%s altered: %v", name, err)
		}
	}
}

// appendString writes every valid UTF-8 string so that a JSON decoder
// reads back the same string.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\x00\x01\x1f\x7f", "\n\r\t", "é😀\u2028", "</script>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		data := appendString(nil, s)
		if !utf8.ValidString(s) {
			return // sent as is, for the rules to reject
		}
		var back string
		if err := json.Unmarshal(data, &back); err != nil || back != s {
			t.Fatalf("%q: wrote %s, read back %q (%v)", s, data, back, err)
		}
	})
}

// Event ids the client makes grow with time, so that the service's unique
// index on them is written at its end: 32 hex digits, the first 12 the
// Unix time in milliseconds, the rest random.
func TestNewEventIDGrowsWithTime(t *testing.T) {
	at := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		now := at.Add(time.Duration(i) * time.Millisecond)
		id := newEventID(now)
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("id %q: want 32 lower-case hex digits", id)
		}
		if want := fmt.Sprintf("%012x", now.UnixMilli()); id[:12] != want {
			t.Fatalf("id %q: want the time %s first", id, want)
		}
		if id <= prev {
			t.Fatalf("id %q at %s sorts before %q, made 1 ms earlier", id, now, prev)
		}
		if same := newEventID(now); same == id || seen[same] {
			t.Fatalf("two ids of the same millisecond are equal: %q", same)
		}
		seen[id] = true
		prev = id
	}
}
