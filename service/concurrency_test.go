package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// gauges reads the request gauges of pool from /metrics without a
// testing.TB, for a poller goroutine.
func gauges(httpAddr, pool string) (inFlight, waiting float64, err error) {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for name, into := range map[string]*float64{"auditq_requests_in_flight": &inFlight, "auditq_requests_waiting": &waiting} {
			if v, ok := strings.CutPrefix(line, fmt.Sprintf("%s{pool=%q} ", name, pool)); ok {
				if *into, err = strconv.ParseFloat(v, 64); err != nil {
					return 0, 0, err
				}
			}
		}
	}
	return inFlight, waiting, sc.Err()
}

// highWater polls the gauges of pool until stop is called, and returns
// the largest in-flight value it saw.
func highWater(t *testing.T, httpAddr, pool string) (stop func() float64) {
	t.Helper()
	var peak atomic.Int64
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			if n, _, err := gauges(httpAddr, pool); err == nil && int64(n) > peak.Load() {
				peak.Store(int64(n))
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() float64 { close(done); <-finished; return float64(peak.Load()) }
}

// request sends body to subject and returns the error code answered ("" on
// success) and the body; a transport failure is "transport: ...".
func request(nc *nats.Conn, subject, body string) (code string, data []byte) {
	reply, err := nc.Request(subject, []byte(body), 2*time.Minute)
	if err != nil {
		return "transport: " + err.Error(), nil
	}
	return reply.Header.Get("Nats-Service-Error-Code"), reply.Data
}

// TestConcurrentRequestsAreAnsweredWithinTheBound sends many searches at
// once and checks that every one is answered, right, with at most
// AUDITQ_REQUEST_CONCURRENCY in flight; then holds reports in the
// database (a lock on the report rollups' spans) and checks that searches
// are still answered, that at most AUDITQ_REQUEST_REPORT_CONCURRENCY
// reports run while 16 per slot wait and the rest are answered 429 at
// once, and that the waiting ones are answered once the reports can run.
func TestConcurrentRequestsAreAnsweredWithinTheBound(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_REQUEST_CONCURRENCY"] = "3"
	env["AUDITQ_REQUEST_REPORT_CONCURRENCY"] = "1"
	env["AUDITQ_REQUEST_TIMEOUT"] = "5m"
	env["AUDITQ_REQUEST_QUEUE_WAIT"] = "5m" // nobody gives up waiting during the test
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc := natsClient(t, svc)
	for i := range 30 {
		user := fmt.Sprintf("u%d", i%10)
		seed(t, db, newEvent(fmt.Sprintf("c%02d", i), fmt.Sprintf("2026-11-20T10:%02d:00Z", i), user, "user.login", "user", true))
	}

	// 40 searches at once, each for one user's three events.
	const searches = 40
	stop := highWater(t, svc.HTTPAddr(), "requests")
	var wg sync.WaitGroup
	codes, counts := make([]string, searches), make([]int, searches)
	for i := range searches {
		wg.Go(func() {
			code, data := request(nc, contract.SubjectQuery, fmt.Sprintf(`{"userId":"u%d"}`, i%10))
			var page struct{ Events []json.RawMessage }
			_ = json.Unmarshal(data, &page)
			codes[i], counts[i] = code, len(page.Events)
		})
	}
	wg.Wait()
	if peak := stop(); peak > 3 {
		t.Errorf("%v searches in flight at once, the bound is 3", peak)
	}
	for i := range searches {
		if codes[i] != "" || counts[i] != 3 {
			t.Errorf("search %d: code %q, %d events; want every search answered with 3 events", i, codes[i], counts[i])
		}
	}
	if got := servicetest.Metric(t, svc.HTTPAddr(), `auditq_requests_total{code="200",subject="audit.query"}`); got != searches {
		t.Errorf("auditq_requests_total of audit.query 200: %v, want %d", got, searches)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "action = 'audit.query' AND resource_id = 'audit.query'")
		return n == searches, fmt.Sprintf("%d searches recorded as reads, want %d", n, searches)
	})

	// Reports held by a lock on audit_spans, which every report reads first.
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE audit_spans IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const reports = 1 + 16 + 4 // one runs, 16 wait (16 per slot), 4 are refused
	reportCodes := make(chan string, reports)
	body := `{"reportType":"custom","startDate":"2026-11-01T00:00:00Z","endDate":"2026-11-30T00:00:00Z"}`
	send := func() {
		wg.Go(func() {
			code, _ := request(nc, contract.SubjectReport, body)
			reportCodes <- code
		})
	}
	send()
	servicetest.Eventually(t, time.Minute, func() (bool, string) {
		n, _, err := gauges(svc.HTTPAddr(), "reports")
		return err == nil && n == 1, fmt.Sprintf("reports in flight %v (%v), want 1", n, err)
	})
	for range reports - 1 {
		send()
	}
	busy := 0
	for range reports - 17 {
		if code := <-reportCodes; code != "429" {
			t.Fatalf("a report beyond the waiting bound was answered %q, want 429", code)
		}
		busy++
	}
	servicetest.Eventually(t, time.Minute, func() (bool, string) {
		n, w, err := gauges(svc.HTTPAddr(), "reports")
		return err == nil && n == 1 && w == 16, fmt.Sprintf("reports in flight %v, waiting %v (%v); want 1 and 16", n, w, err)
	})
	// Searches are not held up by the reports.
	for i := range 5 {
		if code, _ := request(nc, contract.SubjectQuery, fmt.Sprintf(`{"userId":"u%d"}`, i)); code != "" {
			t.Errorf("search while reports are held: code %s", code)
		}
	}
	stop = highWater(t, svc.HTTPAddr(), "reports")
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if peak := stop(); peak > 1 {
		t.Errorf("%v reports in flight at once, the bound is 1", peak)
	}
	close(reportCodes)
	answered := 0
	for code := range reportCodes {
		if code != "" {
			t.Errorf("a waiting report was answered %q, want a report", code)
		}
		answered++
	}
	if answered != 17 || busy != 4 {
		t.Errorf("%d reports answered and %d refused busy, want 17 and 4", answered, busy)
	}
	if got := servicetest.Metric(t, svc.HTTPAddr(), `auditq_requests_total{code="429",subject="audit.report"}`); got != 4 {
		t.Errorf("auditq_requests_total of audit.report 429: %v, want 4", got)
	}
	if n, w, err := gauges(svc.HTTPAddr(), "reports"); err != nil || n != 0 || w != 0 {
		t.Errorf("after the reports: in flight %v, waiting %v (%v); want 0 and 0", n, w, err)
	}
}

// At shutdown, requests waiting for a slot are answered 503 rather than
// left to time out.
func TestShutdownAnswersWaitingRequests(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_REQUEST_REPORT_CONCURRENCY"] = "1"
	env["AUDITQ_REQUEST_TIMEOUT"] = "5m"
	env["AUDITQ_REQUEST_QUEUE_WAIT"] = "5m"
	env["AUDITQ_SHUTDOWN_TIMEOUT"] = "1s"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, err := nats.Connect(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE audit_spans IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	codes := make(chan string, 3)
	for range 3 {
		go func() {
			code, _ := request(nc, contract.SubjectReport, `{"reportType":"daily","date":"2026-11-24"}`)
			codes <- code
		}()
	}
	servicetest.Eventually(t, time.Minute, func() (bool, string) {
		n, w, err := gauges(svc.HTTPAddr(), "reports")
		return err == nil && n == 1 && w == 2, fmt.Sprintf("reports in flight %v, waiting %v (%v); want 1 and 2", n, w, err)
	})
	go func() { _ = svc.Close() }()
	for range 2 {
		if code := <-codes; code != "503" {
			t.Errorf("a report waiting at shutdown was answered %q, want 503", code)
		}
	}
	_ = tx.Rollback()
}
