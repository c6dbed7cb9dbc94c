package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/domain/audit"
)

// BenchmarkSealOverhead compares ingest with tamper evidence off and on,
// against the real database. Each iteration writes one round with sealing
// off and one with it on, in alternating order, so that load from other
// processes hits both alike. "repository": 10 batches of 1,000 events
// straight through the Repository (the bulk path); "batcher": 64
// concurrent writers of one event each, 100 times, through group commit
// (the audit.log path). With sealing on, the chainer runs beside the
// writes, as in the service. It reports events/s of both and their ratio.
func BenchmarkSealOverhead(b *testing.B) {
	for _, path := range []string{"repository", "batcher"} {
		b.Run(path, func(b *testing.B) {
			tr := newTrail(b)
			repos := map[bool]*postgres.Repository{false: postgres.NewRepository(tr.db), true: tr.repo}
			ctx := context.Background()
			var next atomic.Int64
			round := func(repo *postgres.Repository) (int64, time.Duration) {
				start := time.Now()
				stop := func() {}
				if repo == tr.repo {
					// The chainer links the batches beside the writes, as
					// in the service; its last linking (on stop) counts.
					stop = tr.sealer.StartChaining(time.Second, slog.New(slog.DiscardHandler))
				}
				var n atomic.Int64
				switch path {
				case "repository":
					for range 10 {
						if _, err := repo.Write(ctx, benchEvents("r"+strconv.FormatInt(next.Add(1), 10), 1000)); err != nil {
							b.Fatal(err)
						}
						n.Add(1000)
					}
				case "batcher":
					bt := mustBatcher(b, repo, postgres.BatcherConfig{MaxEvents: 1000, Flushers: 2})
					var wg sync.WaitGroup
					for range 64 {
						wg.Go(func() {
							for range 100 {
								id := "g" + strconv.FormatInt(next.Add(1), 10)
								if _, err := bt.Write(ctx, []audit.Event{event(id)}); err != nil {
									b.Error(err)
									return
								}
								n.Add(1)
							}
						})
					}
					wg.Wait()
					_ = bt.Close()
				}
				stop()
				return n.Load(), time.Since(start)
			}
			var events [2]int64
			var took [2]time.Duration
			i := 0
			for b.Loop() {
				for k := range 2 {
					on := (i+k)%2 == 1
					n, d := round(repos[on])
					idx := 0
					if on {
						idx = 1
					}
					events[idx] += n
					took[idx] += d
				}
				i++
			}
			off := float64(events[0]) / took[0].Seconds()
			on := float64(events[1]) / took[1].Seconds()
			b.ReportMetric(off, "off-events/s")
			b.ReportMetric(on, "on-events/s")
			b.ReportMetric(on/off, "on/off")
		})
	}
}

// BenchmarkVerify verifies a sealed table of AUDITQ_BENCH_VERIFY_ROWS rows
// (default 200,000) and reports rows/s; extrapolate to 10M rows.
func BenchmarkVerify(b *testing.B) {
	rows := 200_000
	if s := os.Getenv("AUDITQ_BENCH_VERIFY_ROWS"); s != "" {
		rows, _ = strconv.Atoi(s)
	}
	tr := newTrail(b)
	ctx := context.Background()
	for i := 0; i < rows; i += 1000 {
		evs := benchEvents(fmt.Sprintf("v%d", i), min(1000, rows-i))
		for j := range evs {
			evs[j].Details = []byte(fmt.Sprintf(`{"field":"name","old":"a","new":"b","n":%d}`, j))
		}
		if _, err := tr.repo.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	tr.checkpoint(b, "periodic")
	if _, err := tr.db.DB.ExecContext(ctx, "VACUUM ANALYZE audit_logs"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if rep := tr.verify(b); !rep.OK() || rep.Events != int64(rows) {
			b.Fatalf("verify: %d events, %v", rep.Events, rep.Failures)
		}
	}
	perSec := float64(rows*b.N) / b.Elapsed().Seconds()
	b.ReportMetric(perSec, "rows/s")
	b.ReportMetric(10_000_000/perSec, "s/10M-rows")
}
