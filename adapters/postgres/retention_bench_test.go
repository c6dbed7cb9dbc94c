package postgres_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/migrations"
)

// BenchmarkCleanupWhileIngesting deletes a third of a 3M-row table (1M
// rows older than the cutoff, AUDITQ_BENCH_CLEANUP_ROWS to change the
// total) while a steady ingest of 2,000 events/s (batches of 100, the
// group-commit shape) runs, and reports the cleanup's duration and the
// ingest write latency before and during it. Run it on its own:
//
//	go test -run '^$' -bench CleanupWhileIngesting -benchtime 1x ./adapters/postgres/
func BenchmarkCleanupWhileIngesting(b *testing.B) {
	total := 3_000_000
	if v, err := strconv.Atoi(os.Getenv("AUDITQ_BENCH_CLEANUP_ROWS")); err == nil && v >= 3 {
		total = v
	}
	old := total / 3
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.NewDatabase(b), 8)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if err := migrations.Up(ctx, db); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	cutoff := audit.Normalize(now.AddDate(0, 0, -365))
	// seed inserts n rows spread over the `days` days before `end`, with
	// realistic widths and the usual mix of users, actions and resources.
	seed := func(prefix string, n int, end time.Time, days int) {
		const step = 250_000
		for from := 0; from < n; from += step {
			to := min(from+step, n)
			_, err := db.DB.ExecContext(ctx, `INSERT INTO audit_logs
				(id, user_id, action, resource_type, resource_id, details, ip_address, user_agent, request_id, success, occurred_at, received_at)
				SELECT $1 || g, 'user-' || (g % 5000), (ARRAY['user.login','document.read','document.update','admin.access'])[g % 4 + 1],
					'document', 'doc-' || (g % 100000), jsonb_build_object('source', 'bench', 'n', g, 'path', '/api/v1/documents/' || (g % 100000)),
					('10.1.' || (g % 250) || '.' || (g % 200))::inet, 'Mozilla/5.0 (X11; Linux x86_64) bench', 'req-' || g, g % 20 <> 0,
					$2::timestamptz - (g::float8 / $3 * $4 * interval '1 day'), $2::timestamptz
				FROM generate_series($5::bigint, $6::bigint) AS g`,
				prefix, end, n, days, from, to-1)
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("seeding %d rows (%d older than the cutoff)...", total, old)
	start := time.Now()
	seed("recent-", total-old, now, 360)
	seed("old-", old, cutoff.Add(-time.Hour), 365)
	// Settle the seeding's aftermath (visibility map, statistics, dirty
	// buffers) so the baseline is not measured against it.
	for _, stmt := range []string{"VACUUM ANALYZE audit_logs", "CHECKPOINT"} {
		if _, err := db.DB.ExecContext(ctx, stmt); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded in %s", time.Since(start).Round(time.Second))

	repo := postgres.NewRepository(db)
	r := mustRetention(b, db, postgres.RetentionConfig{})
	c := audit.Cleanup{Cutoff: cutoff, ExcludeActions: []string{"security.breach"}, HoldUsers: []string{"user-7"}}
	// user-7's old rows are held; everything else older than the cutoff goes.
	var held int64
	if err := db.DB.QueryRowContext(ctx, "SELECT count(*) FROM audit_logs WHERE user_id = 'user-7' AND occurred_at < $1", cutoff).Scan(&held); err != nil {
		b.Fatal(err)
	}

	for i := 0; i < b.N; i++ {
		if i > 0 { // put the deleted rows back for the next round
			b.StopTimer()
			seed(fmt.Sprintf("old%d-", i), old, cutoff.Add(-time.Hour), 365)
			b.StartTimer()
		}
		ingest := newIngest(repo)
		ingest.start(ctx)
		time.Sleep(5 * time.Second) // baseline
		ingest.mark()
		b.ResetTimer()
		t0 := time.Now()
		n, err := r.DeleteExpired(ctx, c)
		took := time.Since(t0)
		b.StopTimer()
		base, during := ingest.stop()
		if err != nil {
			b.Fatal(err)
		}
		if want := int64(old) - held; n != want {
			b.Fatalf("deleted %d rows, want %d", n, want)
		}
		b.ReportMetric(took.Seconds(), "cleanup-s")
		b.ReportMetric(float64(n)/took.Seconds(), "deleted-rows/s")
		b.ReportMetric(ms(pct(base, 50)), "ingest-p50-before-ms")
		b.ReportMetric(ms(pct(base, 99)), "ingest-p99-before-ms")
		b.ReportMetric(ms(pct(during, 50)), "ingest-p50-during-ms")
		b.ReportMetric(ms(pct(during, 99)), "ingest-p99-during-ms")
		b.ReportMetric(ms(pct(during, 100)), "ingest-max-during-ms")
		b.ReportMetric(float64(len(during)*ingestBatch)/took.Seconds(), "ingest-events/s-during")
		b.Logf("deleted %d rows in %s (%.0f rows/s); ingest batch of %d: p50/p99/max %s/%s/%s before, %s/%s/%s during (%d batches)",
			n, took.Round(time.Millisecond), float64(n)/took.Seconds(), ingestBatch,
			pct(base, 50), pct(base, 99), pct(base, 100), pct(during, 50), pct(during, 99), pct(during, 100), len(during))
	}
}

const (
	ingestBatch = 100
	ingestEvery = 50 * time.Millisecond // 2,000 events/s
)

// ingest writes a batch every ingestEvery and records each write's latency,
// split at mark().
type ingest struct {
	repo   *postgres.Repository
	mu     sync.Mutex
	lat    []time.Duration
	split  int
	cancel context.CancelFunc
	done   chan struct{}
}

func newIngest(repo *postgres.Repository) *ingest {
	return &ingest{repo: repo, done: make(chan struct{})}
}

func (g *ingest) start(ctx context.Context) {
	ctx, g.cancel = context.WithCancel(ctx)
	go func() {
		defer close(g.done)
		tick := time.NewTicker(ingestEvery)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			at := audit.Normalize(time.Now())
			events := make([]audit.Event, ingestBatch)
			for i := range events {
				events[i] = audit.Event{
					ID: fmt.Sprintf("live-%p-%d-%d", g, n, i), UserID: "user-" + strconv.Itoa(i), Action: "document.read",
					ResourceType: "document", ResourceID: "doc-" + strconv.Itoa(n), Details: []byte(`{"source":"bench-live"}`),
					IPAddress: "10.2.0.1", Success: true, OccurredAt: at, ReceivedAt: at,
				}
			}
			t0 := time.Now()
			if _, err := g.repo.Write(context.Background(), events); err != nil {
				panic(err)
			}
			d := time.Since(t0)
			g.mu.Lock()
			g.lat = append(g.lat, d)
			g.mu.Unlock()
		}
	}()
}

func (g *ingest) mark() {
	g.mu.Lock()
	g.split = len(g.lat)
	g.mu.Unlock()
}

func (g *ingest) stop() (before, during []time.Duration) {
	g.cancel()
	<-g.done
	return g.lat[:g.split], g.lat[g.split:]
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)].Round(100 * time.Microsecond)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
