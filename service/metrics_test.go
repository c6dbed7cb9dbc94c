package service_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/service/servicetest"
)

// The metrics of requests, checkpoints and cleanups, read through /metrics
// of the running service.
func TestMetricsOfRequestsCheckpointsAndCleanups(t *testing.T) {
	env := servicetest.Env(t)
	began := time.Now()
	svc := servicetest.Start(t, env)
	cenv := clientEnv(env, svc)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	ctx := context.Background()
	metric := func(sample string) float64 { t.Helper(); return servicetest.Metric(t, svc.HTTPAddr(), sample) }

	// Every request subject has its series from the start.
	for _, s := range []string{`auditq_requests_total{code="200",subject="audit.query"}`, `auditq_request_duration_seconds_count{subject="audit.event.get"}`} {
		if !hasSample(t, svc.HTTPAddr(), s) {
			t.Errorf("/metrics has no %s before any request", s)
		}
	}

	// Requests: counted by subject and code, timed by subject.
	if out, err := servicetest.Client(ctx, t, cenv, "query"); err != nil {
		t.Fatalf("query: %v\n%s", err, out)
	}
	for body, code := range map[string]string{`{"id":"nope"}`: "404", `{"bogus":1}`: "400"} {
		m, err := nc.Request("audit.event.get", []byte(body), 10*time.Second)
		if err != nil || m.Header.Get("Nats-Service-Error-Code") != code {
			t.Fatalf("event.get %s: %v %v, want code %s", body, err, m, code)
		}
	}
	for sample, want := range map[string]float64{
		`auditq_requests_total{code="200",subject="audit.query"}`:          1,
		`auditq_requests_total{code="404",subject="audit.event.get"}`:      1,
		`auditq_requests_total{code="400",subject="audit.event.get"}`:      1,
		`auditq_requests_total{code="200",subject="audit.event.get"}`:      0,
		`auditq_request_duration_seconds_count{subject="audit.query"}`:     1,
		`auditq_request_duration_seconds_count{subject="audit.event.get"}`: 2,
	} {
		if got := metric(sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}

	// Checkpoints: one at start, and one on request (audit.checkpoint.write).
	const checkpoint = "auditq_last_checkpoint_timestamp_seconds"
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		v := metric(checkpoint)
		return v >= float64(began.Add(-time.Second).Unix()), fmt.Sprintf("%s = %v, want the start checkpoint's time", checkpoint, v)
	})
	first := metric(checkpoint)
	time.Sleep(20 * time.Millisecond)
	if out, err := servicetest.Client(ctx, t, cenv, "checkpoint"); err != nil {
		t.Fatalf("checkpoint: %v\n%s", err, out)
	}
	if now, v := float64(time.Now().UnixNano())/1e9, metric(checkpoint); v <= first || v > now+1 {
		t.Errorf("%s = %v after a checkpoint written on request, want after %v and before %v", checkpoint, v, first, now)
	}
	if got := metric(`auditq_requests_total{code="200",subject="audit.checkpoint.write"}`); got != 1 {
		t.Errorf("checkpoint.write requests = %v, want 1", got)
	}

	// Cleanups: none yet, then one deleting two old events, then one the
	// policy refuses. A dry run leaves the gauges alone.
	if metric("auditq_last_cleanup_timestamp_seconds") != 0 || metric("auditq_last_cleanup_success") != 0 {
		t.Fatal("cleanup gauges set before any cleanup")
	}
	old := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"action":"doc.read","resourceType":"doc","resourceId":"1","timestamp":"2020-01-01T00:00:00Z"}`, id)
	}
	servicetest.PublishAll(t, js, []*nats.Msg{
		servicetest.EventMsg("audit.log", "old-1", old("old-1")), servicetest.EventMsg("audit.log", "old-2", old("old-2")),
	})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'old-%'")
		return n == 2, fmt.Sprintf("%d old rows, want 2", n)
	})
	if out, err := servicetest.Client(ctx, t, cenv, "cleanup", "--retention-days", "90", "--dry-run", "--timeout", "30s"); err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if metric("auditq_last_cleanup_timestamp_seconds") != 0 {
		t.Error("a dry run set auditq_last_cleanup_timestamp_seconds")
	}
	beforeCleanup := float64(time.Now().UnixNano()) / 1e9
	if out, err := servicetest.Client(ctx, t, cenv, "cleanup", "--retention-days", "90", "--timeout", "30s"); err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if v := metric("auditq_last_cleanup_timestamp_seconds"); v < beforeCleanup || v > float64(time.Now().Unix()+1) {
		t.Errorf("auditq_last_cleanup_timestamp_seconds = %v, want between %v and now", v, beforeCleanup)
	}
	if v := metric("auditq_last_cleanup_duration_seconds"); v <= 0 || v > 30 {
		t.Errorf("auditq_last_cleanup_duration_seconds = %v", v)
	}
	if metric("auditq_last_cleanup_deleted_rows") != 2 || metric("auditq_last_cleanup_success") != 1 {
		t.Errorf("after the cleanup: deleted %v, success %v; want 2 and 1",
			metric("auditq_last_cleanup_deleted_rows"), metric("auditq_last_cleanup_success"))
	}
	// The CLI's request is refused before any job; a job published
	// straight to audit.cleanup is rejected by the job itself.
	if _, err := servicetest.Client(ctx, t, cenv, "cleanup", "--retention-days", "5", "--timeout", "30s"); err == nil || !strings.Contains(err.Error(), "answered 400") {
		t.Fatalf("cleanup below the minimum retention: %v, want a refusal", err)
	}
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.cleanup", "below-min", `{"retentionDays": 5}`)})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		ok := metric("auditq_last_cleanup_success") == 0 && metric("auditq_last_cleanup_deleted_rows") == 0
		return ok, fmt.Sprintf("after a rejected cleanup: success %v, deleted %v; want 0 and 0",
			metric("auditq_last_cleanup_success"), metric("auditq_last_cleanup_deleted_rows"))
	})
}

// hasSample reports whether /metrics at httpAddr has a line for sample.
func hasSample(t *testing.T, httpAddr, sample string) bool {
	t.Helper()
	for _, l := range strings.Split(metricsText(t, httpAddr), "\n") {
		if strings.HasPrefix(l, sample+" ") {
			return true
		}
	}
	return false
}

// metricsText returns the text of /metrics at httpAddr.
func metricsText(t *testing.T, httpAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// auditq_event_commit_seconds observes each audit.log event once, with
// the time from its message's stream timestamp to its commit: no
// observation lies outside the time the test waited.
func TestMetricEventCommitSeconds(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	_, js := natstest.Connect(t, svc.NATSURL())
	const n = 40
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		id := fmt.Sprintf("commit-metric-%d", i)
		msgs[i] = servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "doc.read"))
	}
	published := time.Now()
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		got := servicetest.CountRows(t, db, "id LIKE 'commit-metric-%'")
		return got == n, fmt.Sprintf("%d rows, want %d", got, n)
	})
	// The last commit's observation may follow its row by a moment.
	servicetest.Eventually(t, 10*time.Second, func() (bool, string) {
		got := servicetest.Metric(t, svc.HTTPAddr(), "auditq_event_commit_seconds_count")
		return got == n, fmt.Sprintf("auditq_event_commit_seconds_count = %v, want %d", got, n)
	})
	waited := time.Since(published).Seconds()
	sum := servicetest.Metric(t, svc.HTTPAddr(), "auditq_event_commit_seconds_sum")
	if sum <= 0 || sum > n*waited {
		t.Errorf("auditq_event_commit_seconds_sum = %v, want above 0 and at most %d x %.3f s", sum, n, waited)
	}
	if inf := servicetest.Metric(t, svc.HTTPAddr(), `auditq_event_commit_seconds_bucket{le="+Inf"}`); inf != n {
		t.Errorf("+Inf bucket = %v, want %d", inf, n)
	}
}
