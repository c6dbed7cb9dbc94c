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
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/migrations"
	"github.com/auditq/auditq/ports/streams"
)

// BenchmarkStreamsDeliver measures what the two streams of `auditq bench
// -streams` (a signed webhook and an NDJSON file, native format, one
// Runner) cost per event, from reading 16,000 committed events (batches
// of 250, as group commits of singles are) to their delivery: the bytes
// the process allocates (alloc-B/event, what drives the garbage
// collector's cycles in the service) and the CPU time of the process
// (cpu-ns/event; PostgreSQL's is apart), the webhook receiver's share of
// both included (it reads each body into a reused buffer), and the CPU
// time of the PostgreSQL backends serving the benchmark's database
// (pg-cpu-ns/event: the reads and cursor updates). In "postgres"
// the streams read the rows from PostgreSQL (another instance wrote
// them); in "own" the instance wrote them, with the sealer writing them
// through to the streams' cache (Sealer.TapCommits), which holds them
// all.
func BenchmarkStreamsDeliver(b *testing.B) {
	b.Run("postgres", func(b *testing.B) { benchmarkStreamsDeliver(b, false) })
	b.Run("own", func(b *testing.B) { benchmarkStreamsDeliver(b, true) })
}

func benchmarkStreamsDeliver(b *testing.B, own bool) {
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
	store := postgres.NewStreamStore(db)
	if own {
		sealer.TapCommits(store)
	}
	repo := postgres.NewRepository(db).WithSealer(sealer)
	at := audit.Normalize(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	const events, perBatch = 16_000, 250
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
	var allocs uint64
	var ms runtime.MemStats
	cpu0, round := cpuTime(b), 0
	pg0 := backendsCPU(ctx, b, db)
	for b.Loop() {
		round++
		hookName, fileName := fmt.Sprintf("hook-%d", round), fmt.Sprintf("file-%d", round)
		if !own {
			store = postgres.NewStreamStore(db) // nothing cached: the rows come from PostgreSQL
		}
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
	var pg time.Duration
	for pid, t := range backendsCPU(ctx, b, db) {
		pg += t - pg0[pid] // a backend started meanwhile counts whole
	}
	n := float64(b.N * events)
	b.ReportMetric(float64(allocs)/n, "alloc-B/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/event")
	b.ReportMetric(float64(pg.Nanoseconds())/n, "pg-cpu-ns/event")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/event")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendsCPU returns the CPU time (user and system) of each PostgreSQL
// backend connected to db's database, by pid, from /proc/<pid>/stat
// (PostgreSQL on this machine).
func backendsCPU(ctx context.Context, b *testing.B, db *bun.DB) map[int]time.Duration {
	rows, err := db.DB.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone, or another machine's
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ ticks
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}
