package postgres

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// BenchmarkStoredRows makes the streams' cache rows of a group commit of
// 256 events like those of auditq bench (details of four members, an IP
// address): what the sealer adds to each commit while streams run.
func BenchmarkStoredRows(b *testing.B) {
	at := time.Date(2026, 12, 4, 3, 0, 0, 123456789, time.UTC)
	events := make([]audit.Event, 256)
	inserted := make([]int, len(events))
	for i := range events {
		events[i] = audit.Event{
			ID: fmt.Sprintf("evt-%08d", i), UserID: "user-42", Action: "settings.update", ResourceType: "project",
			ResourceID: fmt.Sprintf("p-%d", i), IPAddress: fmt.Sprintf("203.0.113.%d", i%250), UserAgent: "bench/1.0",
			Details: json.RawMessage(`{"field":"settings.name","old":"alpha","new":"beta","reason":"benchmark"}`),
			Success: true, OccurredAt: at, ReceivedAt: at,
		}
		inserted[i] = i
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := storedRows(1, events, inserted); !ok {
			b.Fatal("no stored form")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
}
