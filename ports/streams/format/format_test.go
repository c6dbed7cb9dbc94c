package format_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/streams/format"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func events() map[string]audit.SealedEvent {
	at := time.Date(2026, 11, 24, 9, 1, 40, 250_000_000, time.UTC)
	rec := at.Add(1500 * time.Millisecond)
	seal := audit.Seal{BatchSeq: 42, BatchID: 1811234567890123, Leaf: 3}
	return map[string]audit.SealedEvent{
		"login-failed": {Event: audit.Event{ID: "example-0002", UserID: "u-1002", Action: "user.login", ResourceType: "user",
			ResourceID: "u-1002", IPAddress: "198.51.100.23", UserAgent: "Mozilla/5.0", SessionID: "s-9", Success: false,
			ErrorMessage: "wrong password", OccurredAt: at, ReceivedAt: rec}, Seal: seal},
		"password-change": {Event: audit.Event{ID: "example-0007", UserID: "u-1001", Action: "user.password.change", ResourceType: "user",
			ResourceID: "u-1002", Success: true, OccurredAt: at, ReceivedAt: rec}, Seal: seal},
		"document-delete": {Event: audit.Event{ID: "example-0004", UserID: "u-1001", Action: "document.delete", ResourceType: "document",
			ResourceID: "42", Details: json.RawMessage(`{"reason": "retention"}`), IPAddress: "2001:db8::1", RequestID: "req-7",
			Success: true, OccurredAt: at, ReceivedAt: rec}, Seal: seal},
		// Personal data encrypted (docs/personal-data.md): as reads show the
		// event, with the leaf data of its stored form.
		"personal-revealed": {Event: audit.Event{ID: "example-0008", UserID: "u-1003", Pseudonym: "psn_4Zk2", Action: "user.login",
			ResourceType: "user", ResourceID: "u-1003", IPAddress: "198.51.100.9", SessionID: "s-12", Success: true, OccurredAt: at, ReceivedAt: rec},
			Seal: seal, LeafData: []byte(`{"action":"user.login","id":"example-0008","occurredAt":"2026-11-24T09:01:40.250000Z","personal":"AQAA","receivedAt":"2026-11-24T09:01:41.750000Z","resourceId":"u-1003","resourceType":"user","sessionId":"ssn_Q2","success":true,"userPseudonym":"psn_4Zk2"}`)},
		"personal-erased": {Event: audit.Event{ID: "example-0009", UserID: audit.ErasedUserID, Pseudonym: "psn_4Zk2", Erased: true, Action: "user.login",
			ResourceType: "user", ResourceID: "u-1003", Success: true, OccurredAt: at, ReceivedAt: rec},
			Seal: seal, LeafData: []byte(`{"action":"user.login","id":"example-0009","occurredAt":"2026-11-24T09:01:40.250000Z","personal":"AQAB","receivedAt":"2026-11-24T09:01:41.750000Z","resourceId":"u-1003","resourceType":"user","sessionId":"ssn_Q2","success":true,"userPseudonym":"psn_4Zk2"}`)},
		"system-backup": {Event: audit.Event{ID: "example-0005", Action: "system.backup", ResourceType: "system",
			ResourceID: "db-main", Success: true, OccurredAt: at, ReceivedAt: rec}, Seal: audit.Seal{BatchSeq: 1, BatchID: 7, Leaf: 0}},
	}
}

// Every format of every sample event equals its golden file
// (testdata/<event>.<format>.json; go test -update rewrites them).
func TestFormatsGolden(t *testing.T) {
	for name, e := range events() {
		for _, f := range format.Names {
			enc, err := format.New(f, format.Options{ProductVersion: "1.2.3"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc(nil, &e, new(bytes.Buffer))
			if err != nil {
				t.Fatalf("%s %s: %v", name, f, err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatalf("%s %s: not JSON: %v", name, f, err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", name+"."+f+".json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs from the golden file:\n%s", path, pretty.Bytes())
			}
		}
	}
}

// The OCSF class and activity follow the action (the table in
// docs/streams.md), and type_uid is class_uid * 100 + activity_id.
func TestOCSFClasses(t *testing.T) {
	enc, _ := format.New(format.OCSF, format.Options{})
	for _, c := range []struct {
		action, resourceType string
		class, activity      int
	}{
		{"user.login", "user", 3002, 1},
		{"session.logout", "session", 3002, 2},
		{"user.create", "user", 3001, 1},
		{"account.disable", "account", 3001, 5},
		{"user.password.reset", "user", 3001, 4},
		{"user.role.grant", "user", 3001, 7},
		{"user.update", "user", 6003, 3},
		{"document.create", "document", 6003, 1},
		{"document.view", "document", 6003, 2},
		{"invoice.delete", "invoice", 6003, 4},
		{"system.backup", "system", 6003, 99},
	} {
		b, err := enc(nil, &audit.SealedEvent{Event: audit.Event{ID: "x", Action: c.action, ResourceType: c.resourceType, ResourceID: "1", Success: true}}, new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		var o struct{ ClassUID, ActivityID, TypeUID int }
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		o.ClassUID, o.ActivityID, o.TypeUID = int(m["class_uid"].(float64)), int(m["activity_id"].(float64)), int(m["type_uid"].(float64))
		if o.ClassUID != c.class || o.ActivityID != c.activity || o.TypeUID != c.class*100+c.activity {
			t.Errorf("%s on %s: class %d activity %d type %d, want %d/%d", c.action, c.resourceType, o.ClassUID, o.ActivityID, o.TypeUID, c.class, c.activity)
		}
		if md := m["metadata"].(map[string]any); md["product"].(map[string]any)["name"] != "auditq" || md["version"] != format.OCSFVersion {
			t.Errorf("%s: metadata %v", c.action, md)
		}
	}
	if _, err := format.New("xml", format.Options{}); err == nil {
		t.Error("format xml accepted")
	}
}

// BenchmarkEncode measures the encoding of one event in each format into
// a reused buffer, as a stream encodes a read: ns and allocations per
// event (none: the encoders append to the buffer they are given).
func BenchmarkEncode(b *testing.B) {
	at := time.Date(2026, 11, 24, 9, 1, 40, 250_123_000, time.UTC)
	e := audit.SealedEvent{Event: audit.Event{ID: "evt-01JDX8Q4W5V6N7M8P9R0S1T2U3", UserID: "user-4711", Action: "document.update",
		ResourceType: "document", ResourceID: "doc-20261124-0042", Details: json.RawMessage(`{"field": "title", "from": "Q3 plan", "to": "Q4 plan", "size": 5120}`),
		IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", SessionID: "sess-8f2c", RequestID: "req-5d1e",
		Success: true, OccurredAt: at, ReceivedAt: at.Add(3 * time.Millisecond)},
		Seal: audit.Seal{BatchSeq: 123456, BatchID: 1811234567890123, Leaf: 417}}
	for _, f := range format.Names {
		b.Run(f, func(b *testing.B) {
			enc, err := format.New(f, format.Options{ProductVersion: "1.2.3"})
			if err != nil {
				b.Fatal(err)
			}
			var scratch bytes.Buffer
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = enc(buf[:0], &e, &scratch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "bytes/event")
		})
	}
}
