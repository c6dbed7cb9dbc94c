package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/e2e/harness"
)

// ViewerResult is the measurement of many viewers searching while a
// 90-day report runs ("auditq bench -viewers N"); its JSON form is the
// last line printed.
type ViewerResult struct {
	Prefill int           `json:"prefill"`
	Viewers int           `json:"viewers"`
	For     time.Duration `json:"for_ns"`
	// Concurrent is the service's defaults, measured before and after
	// Serial; Serial is AUDITQ_REQUEST_CONCURRENCY=1 and
	// AUDITQ_REQUEST_REPORT_CONCURRENCY=1 (one search at a time, as each
	// endpoint served before).
	Concurrent []ViewerRun `json:"concurrent"`
	Serial     ViewerRun   `json:"serial"`
	// Ratios of serial to concurrent (the mean of its two runs): how many
	// times longer a search takes when served one at a time.
	P50Ratio float64 `json:"search_p50_ratio_serial_vs_concurrent"`
	P99Ratio float64 `json:"search_p99_ratio_serial_vs_concurrent"`
}

// ViewerRun is one measurement.
type ViewerRun struct {
	Env           map[string]string `json:"env,omitempty"`
	Searches      int               `json:"searches"`
	SearchesPerS  float64           `json:"searches_per_sec"`
	SearchP50Ms   float64           `json:"search_p50_ms"`
	SearchP99Ms   float64           `json:"search_p99_ms"`
	SearchMaxMs   float64           `json:"search_max_ms"`
	Busy          int               `json:"busy_answers"` // 429 answers, retried after 50 ms (counted in the search's time)
	Reports       int               `json:"reports"`
	ReportP50Ms   float64           `json:"report_p50_ms"`
	ReportMaxMs   float64           `json:"report_max_ms"`
	Errors        int               `json:"errors"`
	FirstErrorMsg string            `json:"first_error,omitempty"`
}

// runViewers measures search latency with o.Viewers viewers searching back
// to back while one client asks for 90-day reports back to back, on a
// table of o.Prefill rows: the service's defaults, then serial serving,
// then the defaults again, each on the same database and store.
func runViewers(ctx context.Context, o Options, out io.Writer) error {
	res := ViewerResult{Prefill: o.Prefill, Viewers: o.Viewers, For: o.ViewersFor}
	dbURL, drop, err := harness.ScratchDatabase(ctx, o.AdminURL, scratchPrefix)
	if err != nil {
		return err
	}
	if !o.Keep {
		defer func() { _ = drop() }()
	}
	dataDir, err := os.MkdirTemp("", "auditq-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dataDir) }()
	t, err := setUp(ctx, o, "viewers", dbURL, filepath.Join(dataDir, "svc"), nil, out)
	if err != nil {
		return err
	}
	t.close()
	serial := map[string]string{"AUDITQ_REQUEST_CONCURRENCY": "1", "AUDITQ_REQUEST_REPORT_CONCURRENCY": "1"}
	for i, env := range []map[string]string{nil, serial, nil} {
		name := "the service's defaults"
		if env != nil {
			name = "serial serving (AUDITQ_REQUEST_CONCURRENCY=1, AUDITQ_REQUEST_REPORT_CONCURRENCY=1)"
		}
		say(out, "run %d/3, %s: %d viewers searching for %s while 90-day reports run...\n", i+1, name, o.Viewers, o.ViewersFor)
		if err := checkpoint(ctx, dbURL); err != nil {
			return err
		}
		svc, err := startService(ctx, o.Binary, dbURL, filepath.Join(dataDir, "svc"), env)
		if err != nil {
			return err
		}
		r, err := viewersRun(ctx, svc.NATSURL(), o.Viewers, o.ViewersFor)
		_ = svc.Stop(stopTimeout)
		if err != nil {
			return err
		}
		r.Env = env
		say(out, "  searches p50 / p99 / max %.1f / %.1f / %.1f ms (%d, %d busy), reports %d (p50 %.0f ms)\n",
			r.SearchP50Ms, r.SearchP99Ms, r.SearchMaxMs, r.Searches, r.Busy, r.Reports, r.ReportP50Ms)
		if env == nil {
			res.Concurrent = append(res.Concurrent, r)
		} else {
			res.Serial = r
		}
	}
	mean := func(f func(ViewerRun) float64) float64 { return (f(res.Concurrent[0]) + f(res.Concurrent[1])) / 2 }
	if p := mean(func(r ViewerRun) float64 { return r.SearchP50Ms }); p > 0 {
		res.P50Ratio = res.Serial.SearchP50Ms / p
	}
	if p := mean(func(r ViewerRun) float64 { return r.SearchP99Ms }); p > 0 {
		res.P99Ratio = res.Serial.SearchP99Ms / p
	}
	return res.print(out)
}

func (r ViewerResult) print(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	say(tw, "measure\tvalue\n")
	say(tw, "table rows (prefill)\t%d\n", r.Prefill)
	say(tw, "viewers searching back to back, each run\t%d for %s\n", r.Viewers, r.For)
	for i, c := range r.Concurrent {
		say(tw, "defaults, run %d: search p50 / p99 / max\t%.1f / %.1f / %.1f ms (%.0f/s, %d busy, %d errors)\n",
			i+1, c.SearchP50Ms, c.SearchP99Ms, c.SearchMaxMs, c.SearchesPerS, c.Busy, c.Errors)
		say(tw, "defaults, run %d: 90-day reports meanwhile, p50 / max\t%d, %.0f / %.0f ms\n", i+1, c.Reports, c.ReportP50Ms, c.ReportMaxMs)
	}
	s := r.Serial
	say(tw, "serial: search p50 / p99 / max\t%.1f / %.1f / %.1f ms (%.0f/s, %d busy, %d errors)\n",
		s.SearchP50Ms, s.SearchP99Ms, s.SearchMaxMs, s.SearchesPerS, s.Busy, s.Errors)
	say(tw, "serial: 90-day reports meanwhile, p50 / max\t%d, %.0f / %.0f ms\n", s.Reports, s.ReportP50Ms, s.ReportMaxMs)
	say(tw, "serial vs defaults: search p50 / p99\t%.2fx / %.2fx\n", r.P50Ratio, r.P99Ratio)
	if err := tw.Flush(); err != nil {
		return err
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(line))
	return err
}

// viewerSearches are what a viewer asks, in turn: the newest page, a
// user's history, an action prefix, the failures of an action prefix (the
// prefill's users, actions and resource types).
var viewerSearches = []string{
	`{"limit":50}`,
	`{"userId":"user-%d","limit":50}`,
	`{"action":"user.*","limit":50}`,
	`{"action":"guild.*","success":false,"limit":50}`,
}

// viewersRun runs n viewers and one report client against the service at
// natsURL for d and returns what they measured.
func viewersRun(ctx context.Context, natsURL string, n int, d time.Duration) (ViewerRun, error) {
	var r ViewerRun
	conns := make([]*nats.Conn, n+1)
	for i := range conns {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			return r, err
		}
		defer nc.Close()
		conns[i] = nc
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var searches, reports []time.Duration
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		r.Errors++
		if r.FirstErrorMsg == "" {
			r.FirstErrorMsg = err.Error()
		}
	}
	var wg sync.WaitGroup
	now := time.Now().UTC()
	report := fmt.Sprintf(`{"reportType":"custom","startDate":%q,"endDate":%q}`, now.AddDate(0, 0, -90).Format(time.RFC3339), now.Format(time.RFC3339))
	wg.Go(func() {
		for ctx.Err() == nil {
			took, _, err := ask(ctx, conns[n], "audit.report", report)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				fail(err)
				continue
			}
			mu.Lock()
			reports = append(reports, took)
			mu.Unlock()
		}
	})
	for v := range n {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				body := viewerSearches[(v+i)%len(viewerSearches)]
				if body == viewerSearches[1] {
					body = fmt.Sprintf(body, (v*31+i)%1000)
				}
				took, busy, err := ask(ctx, conns[v], "audit.query", body)
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				r.Busy += busy
				mu.Unlock()
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				searches = append(searches, took)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.Searches, r.Reports = len(searches), len(reports)
	r.SearchesPerS = float64(len(searches)) / d.Seconds()
	r.SearchP50Ms, r.SearchP99Ms, r.SearchMaxMs = percentile(searches, 0.5), percentile(searches, 0.99), percentile(searches, 1)
	r.ReportP50Ms, r.ReportMaxMs = percentile(reports, 0.5), percentile(reports, 1)
	return r, nil
}

// ask sends one request and waits for its answer, asking again 50 ms after
// each 429 (busy) answer; it returns the time from the first try to the
// answer and how many busy answers came first.
func ask(ctx context.Context, nc *nats.Conn, subject, body string) (time.Duration, int, error) {
	start, busy := time.Now(), 0
	for {
		msg, err := nc.RequestWithContext(ctx, subject, []byte(body))
		if err != nil {
			return 0, busy, fmt.Errorf("%s: %w", subject, err)
		}
		switch code := msg.Header.Get("Nats-Service-Error-Code"); code {
		case "":
			return time.Since(start), busy, nil
		case "429":
			busy++
			select {
			case <-ctx.Done():
				return 0, busy, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return 0, busy, fmt.Errorf("%s answered %s: %s", subject, code, msg.Header.Get("Nats-Service-Error"))
		}
	}
}
