package service_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

var ingestBenchEvents = flag.Int("ingest-events", 20_000, "audit.log singles BenchmarkIngestSingles publishes per iteration")

// BenchmarkIngestSingles floods the whole service in process (embedded
// NATS, router, group commit, sealing, PostgreSQL) with -ingest-events
// audit.log singles of about 400 bytes per iteration, published
// asynchronously, and waits until the consumer has acknowledged every one
// (acks follow commits). It reports per event the allocations and bytes
// allocated and the CPU time of this process: the service with its
// embedded server, plus the publisher, which is the same in every build;
// PostgreSQL's work is not in them, nor is building the messages.
//
//	go test -run '^$' -bench BenchmarkIngestSingles -benchtime 5x ./service/ [-args -ingest-events 20000]
//
// With -memprofile (and -memprofilerate 1 for exact counts) it shows
// where the allocations per single come from.
func BenchmarkIngestSingles(b *testing.B) {
	env := servicetest.Env(b)
	env["AUDITQ_LOG_LEVEL"] = "error"
	svc := servicetest.Start(b, env)
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cons, err := js.Consumer(ctx, "AUDIT", "auditq-log")
	if err != nil {
		b.Fatal(err)
	}
	n := *ingestBenchEvents
	// Building the messages is left out of the figures (its allocations
	// are subtracted): only publishing them counts, besides the service.
	var built runtime.MemStats
	build := func(round int) []*nats.Msg {
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		now := time.Now()
		msgs := make([]*nats.Msg, n)
		for i := range msgs {
			id := "ingest-" + strconv.Itoa(round) + "-" + strconv.Itoa(i)
			m := nats.NewMsg(contract.SubjectLog)
			m.Data = ingestEventJSON(id, i, now)
			m.Header.Set(nats.MsgIdHdr, id)
			msgs[i] = m
		}
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		built.Mallocs += m1.Mallocs - m0.Mallocs
		built.TotalAlloc += m1.TotalAlloc - m0.TotalAlloc
		return msgs
	}
	flood := func(round int) {
		for _, m := range build(round) {
			if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(2 * time.Minute):
			b.Fatal("publishes not acknowledged within 2 minutes")
		}
		for {
			info, err := cons.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= info.Delivered.Stream {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	flood(-1) // warm-up: connections, prepared statements, the first hours
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	built = runtime.MemStats{}
	cpu0 := processCPU()
	start := time.Now()
	round := 0
	for b.Loop() {
		flood(round)
		round++
	}
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	runtime.ReadMemStats(&after)
	events := float64(n * round)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs-built.Mallocs)/events, "allocs/event")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc-built.TotalAlloc)/events, "B/event")
	b.ReportMetric(float64(cpu.Microseconds())/events, "cpu-µs/event")
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(after.NumGC-before.NumGC)*1000/events, "gc/1000events")
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average: %s", strings.TrimSpace(string(load)))
	}
}

// ingestEventJSON is the benchmark's realistic event of about 400 bytes
// (bench/publish.go).
func ingestEventJSON(id string, i int, at time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%q,"userId":"user-%d","action":"user.login","resourceType":"user","resourceId":"res-%d",`+
		`"details":{"field":"settings.name","old":"alpha","new":"beta","reason":"benchmark"},"ipAddress":"203.0.113.%d",`+
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","sessionId":"sess-%d","requestId":"req-%d",`+
		`"success":%t,"timestamp":%q}`,
		id, i%1000, i%5000, i%250, i%20000, i, i%17 != 0, at.UTC().Format(time.RFC3339Nano))
}

// processCPU is the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
