package evidence_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// BenchmarkLeaf measures the leaf hash of one typical event: its canonical
// encoding (details canonicalised per RFC 8785) and SHA-256, the per-event
// work sealing adds to a write. "decoded" is the event as ingest has it,
// from DecodeEvent, which already holds its canonical details; "built" is
// the same event built in code (and read back by verify), canonicalised
// here.
func BenchmarkLeaf(b *testing.B) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)
	built := audit.Event{
		ID: "01JDQ4S6W7Y8Z9A0B1C2D3E4F5", UserID: "user-1234", Action: "document.update",
		ResourceType: "document", ResourceID: "doc-98765",
		Details:   json.RawMessage(`{"changes":{"title":{"from":"Q3 plan","to":"Q4 plan"}},"size":2048,"tags":["finance","draft"]}`),
		IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
		SessionID: "sess-5f2c", RequestID: "req-9a1b", Success: true, OccurredAt: at, ReceivedAt: at.Add(time.Millisecond),
	}
	msg, err := json.Marshal(map[string]any{
		"id": built.ID, "userId": built.UserID, "action": built.Action, "resourceType": built.ResourceType,
		"resourceId": built.ResourceID, "details": built.Details, "ipAddress": built.IPAddress,
		"userAgent": built.UserAgent, "sessionId": built.SessionID, "requestId": built.RequestID,
		"timestamp": built.OccurredAt,
	})
	if err != nil {
		b.Fatal(err)
	}
	decoded, err := audit.DecodeEvent(msg, audit.Receipt{ReceivedAt: built.ReceivedAt})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		e    audit.Event
	}{{"decoded", decoded}, {"built", built}} {
		b.Run(c.name, func(b *testing.B) {
			var h evidence.EventHasher
			want, _, err := h.Leaf(built)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				leaf, _, err := h.Leaf(c.e)
				if err != nil || leaf != want {
					b.Fatalf("leaf %v, %v; want %v", leaf, err, want)
				}
			}
		})
	}
}
