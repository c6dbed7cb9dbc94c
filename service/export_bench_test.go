package service_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

var exportBenchEvents = flag.Int("export-events", 1_000_000, "events BenchmarkExport stores and exports")

// BenchmarkExport stores -export-events events, then in each iteration
// exports them through audit.export (service and client in this process)
// to NDJSON and to CSV, and runs a plain COPY (SELECT ...) TO STDOUT of the
// same rows in the same order, reporting events/s of each, the ratios to
// COPY, and the peak Go heap and RSS of the process during the exports
// (both sides of the export).
//
//	go test -run '^$' -bench BenchmarkExport -benchtime 1x ./service/ [-args -export-events 1000000]
func BenchmarkExport(b *testing.B) {
	env := servicetest.Env(b)
	env["AUDITQ_LOG_LEVEL"] = "error"
	svc := servicetest.Start(b, env)
	db := servicetest.OpenDB(b, env)
	n := *exportBenchEvents
	start := time.Now()
	seedBench(b, db, n)
	b.Logf("stored %d events in %s", n, time.Since(start).Round(time.Millisecond))
	// Statistics as autovacuum would have them, for COPY's best plan; the
	// export walks the index in its order either way.
	if _, err := db.ExecContext(context.Background(), "ANALYZE audit_logs"); err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	filter := contract.Filter{From: "2026-01-01T00:00:00Z", To: "2026-02-01T00:00:00Z"}
	runtime.GC()
	before := heapInUse()

	for b.Loop() {
		peak := sampleMemory()
		rate := map[string]float64{}
		for _, format := range []string{contract.ExportNDJSON, contract.ExportCSV} {
			var w countingWriter
			t0 := time.Now()
			sum, err := contract.ReceiveExport(context.Background(), nc, contract.ExportRequest{Filter: filter, Format: format}, &w, contract.ExportOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if sum.Events != n {
				b.Fatalf("%s: exported %d events, stored %d", format, sum.Events, n)
			}
			rate[format] = float64(n) / time.Since(t0).Seconds()
			b.ReportMetric(float64(w.n)/float64(n), format+"-bytes/event")
		}
		heap, rss := peak()
		t0 := time.Now()
		rows := copyOut(b, db)
		if rows != n {
			b.Fatalf("COPY: %d rows, stored %d", rows, n)
		}
		rate["copy"] = float64(n) / time.Since(t0).Seconds()
		b.ReportMetric(rate[contract.ExportNDJSON], "ndjson-events/s")
		b.ReportMetric(rate[contract.ExportCSV], "csv-events/s")
		b.ReportMetric(rate["copy"], "copy-events/s")
		b.ReportMetric(rate[contract.ExportNDJSON]/rate["copy"], "ndjson/copy")
		b.ReportMetric(rate[contract.ExportCSV]/rate["copy"], "csv/copy")
		b.ReportMetric(float64(before)/(1<<20), "heap-before-MiB")
		b.ReportMetric(float64(heap)/(1<<20), "heap-peak-MiB")
		b.ReportMetric(float64(rss)/(1<<20), "rss-peak-MiB")
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average: %s", strings.TrimSpace(string(load)))
	}
}

// seedBench stores n events of about 400 bytes as NDJSON (a user, an IP
// address, a user agent, small details), 1 ms apart in 2026.
func seedBench(b *testing.B, db *bun.DB, n int) { seedBenchT(b, db, n) }

func seedBenchT(b testing.TB, db *bun.DB, n int) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 5000
	events := make([]audit.Event, 0, batch)
	for i := 0; i < n; i++ {
		t := base.Add(time.Duration(i) * time.Millisecond)
		events = append(events, audit.Event{
			ID: fmt.Sprintf("bench-%08d", i), UserID: "u-" + strconv.Itoa(i%1000), Action: "document.update",
			ResourceType: "document", ResourceID: strconv.Itoa(i % 50000), Success: i%20 != 0,
			Details:   []byte(fmt.Sprintf(`{"field": "title", "from": "draft %d", "to": "final"}`, i)),
			IPAddress: "198.51.100.23", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", SessionID: "sess-" + strconv.Itoa(i%5000),
			RequestID: "req-" + strconv.Itoa(i), OccurredAt: t, ReceivedAt: t.Add(40 * time.Millisecond),
		})
		if len(events) == batch || i == n-1 {
			seed(b, db, events...)
			events = events[:0]
		}
	}
}

// copyOut runs COPY of the benchmark's rows, every column, in the
// export's order, to nowhere, and returns the rows copied.
func copyOut(b *testing.B, db *bun.DB) int {
	conn, err := db.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	var rows int64
	err = conn.Raw(func(dc any) error {
		tag, err := dc.(*stdlib.Conn).Conn().PgConn().CopyTo(context.Background(), io.Discard, `COPY (
			SELECT id, user_id, action, resource_type, resource_id, details, ip_address, user_agent, session_id, request_id,
			       success, error_message, occurred_at, received_at
			FROM audit_logs WHERE occurred_at >= '2026-01-01T00:00:00Z' AND occurred_at < '2026-02-01T00:00:00Z'
			ORDER BY occurred_at DESC, id DESC) TO STDOUT (FORMAT csv)`)
		rows = tag.RowsAffected()
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return int(rows)
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// sampleMemory samples the heap in use and the RSS every 100 ms until the
// returned function is called, which returns their peaks.
func sampleMemory() func() (heap, rss uint64) {
	var (
		mu             sync.Mutex
		maxHeap, maxRS uint64
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			h, r := heapInUse(), rssBytes()
			mu.Lock()
			maxHeap, maxRS = max(maxHeap, h), max(maxRS, r)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return maxHeap, maxRS
	}
}

// rssBytes is the resident set size of this process (VmRSS), 0 where
// /proc is not there.
func rssBytes() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
