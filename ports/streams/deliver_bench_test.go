package streams_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/migrations"
	"github.com/auditq/auditq/ports/streams"
)

// BenchmarkStreamsDeliver measures what the two streams of `auditq bench
// -streams` (a signed webhook and an NDJSON file, native format, one
// Runner) cost per event, from reading 20,000 committed events (batches
// of 250, as group commits of singles are) to their delivery: the bytes
// the process allocates (alloc-B/event, what drives the garbage
// collector's cycles in the service) and the CPU time of the process
// (cpu-ns/event; PostgreSQL's is apart), the webhook receiver's share of
// both included (it reads each body into a reused buffer).
func BenchmarkStreamsDeliver(b *testing.B) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.NewDatabase(b), 8)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if err := migrations.Up(ctx, db); err != nil {
		b.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	sealer := postgres.NewSealer(db, evidence.NewSigner(priv))
	repo := postgres.NewRepository(db).WithSealer(sealer)
	at := audit.Normalize(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	const events, perBatch = 20_000, 250
	for start := 0; start < events; start += perBatch {
		evs := make([]audit.Event, perBatch)
		for i := range evs {
			n := start + i
			evs[i] = audit.Event{ID: fmt.Sprintf("evt-%08d", n), UserID: fmt.Sprintf("user-%d", n%5000), Action: "document.update",
				ResourceType: "document", ResourceID: fmt.Sprintf("doc-%d", n%777), Details: json.RawMessage(`{"field": "title", "size": 5120}`),
				IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", SessionID: fmt.Sprintf("s-%d", n%900),
				RequestID: fmt.Sprintf("req-%d", n), Success: true, OccurredAt: at, ReceivedAt: at.Add(time.Second)}
		}
		if _, err := repo.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
		if _, err := sealer.Chain(ctx); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 1<<20)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for {
			if _, err := r.Body.Read(buf); err != nil {
				if err != io.EOF {
					http.Error(w, err.Error(), http.StatusBadRequest)
				}
				return
			}
		}
	}))
	b.Cleanup(hook.Close)
	dir := b.TempDir()
	store := postgres.NewStreamStore(db)
	var allocs uint64
	var ms runtime.MemStats
	cpu0, round := cpuTime(b), 0
	for b.Loop() {
		round++
		hookName, fileName := fmt.Sprintf("hook-%d", round), fmt.Sprintf("file-%d", round)
		r, err := streams.New(streams.Config{Store: store, Owner: "bench", Logger: slog.New(slog.DiscardHandler), Streams: []streams.StreamConfig{
			{Name: hookName, Sink: streams.KindWebhook, URL: hook.URL, Secret: "0123456789abcdef"},
			{Name: fileName, Sink: streams.KindFile, Path: dir},
		}})
		if err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		r.Start()
		for deadline := time.Now().Add(5 * time.Minute); ; {
			views, err := r.List(ctx)
			if err != nil {
				b.Fatal(err)
			}
			done := 0
			for _, v := range views {
				if v.Delivered == events {
					done++
				}
			}
			if done == 2 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("not delivered within 5 minutes: %+v", views)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := r.Stop(); err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&ms)
		allocs += ms.TotalAlloc - before
	}
	cpu := cpuTime(b) - cpu0
	n := float64(b.N * events)
	b.ReportMetric(float64(allocs)/n, "alloc-B/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
