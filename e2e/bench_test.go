package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/postgres/pgtest"
)

// TestBenchBothOrders runs "auditq bench -both-orders" at a tiny size: the
// benchmark that measures what tamper evidence costs must keep working. It
// checks what each run measured, that the second run swapped positions,
// and that the combined ratios are the geometric means of the two runs'.
// (The figures themselves mean nothing at this size.)
func TestBenchBothOrders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, auditqBinary(t), "bench", "-admin-url", pgtest.AdminURL(),
		"-events", "2000", "-baseline-events", "200", "-rounds", "1", "-both-orders", "-settle", "0",
		"-latency-for", "1s", "-latency-warmup", "1s", "-latency-rate", "1000")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("auditq bench: %v\n%s\nstderr:\n%s", err, out.String(), tail(errOut.String(), 4<<10))
	}
	type result struct {
		Swap            bool    `json:"swap"`
		SinglePerSec    float64 `json:"single_events_per_sec"`
		BulkPerSec      float64 `json:"bulk_events_per_sec"`
		OffSinglePerSec float64 `json:"evidence_off_single_events_per_sec"`
		OffBulkPerSec   float64 `json:"evidence_off_bulk_events_per_sec"`
		RatioSingle     float64 `json:"ratio_single_evidence_on_off"`
		RatioBulk       float64 `json:"ratio_bulk_evidence_on_off"`
		BothSingle      float64 `json:"ratio_single_evidence_on_off_both_orders"`
		BothBulk        float64 `json:"ratio_bulk_evidence_on_off_both_orders"`
		Baseline        float64 `json:"seed_baseline_events_per_sec"`
		Plain           float64 `json:"plain_pipeline_events_per_sec"`
		LatencyP50      float64 `json:"latency_p50_ms"`
	}
	var runs []result
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "{") {
			var r result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("JSON line %q: %v", line, err)
			}
			runs = append(runs, r)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("want 2 JSON lines (one per run), got %d:\n%s", len(runs), out.String())
	}
	first, second := runs[0], runs[1]
	if first.Swap || !second.Swap {
		t.Errorf("swap: first run %v, second %v; want false, true", first.Swap, second.Swap)
	}
	for i, r := range runs {
		if r.SinglePerSec <= 0 || r.BulkPerSec <= 0 || r.OffSinglePerSec <= 0 || r.OffBulkPerSec <= 0 || r.LatencyP50 <= 0 {
			t.Errorf("run %d measured nothing: %+v", i+1, r)
		}
	}
	if first.Baseline != 0 || first.Plain != 0 || second.Baseline <= 0 || second.Plain <= 0 {
		t.Errorf("seed baseline / plain pipeline: first run %v / %v, second %v / %v; want them in the second run only",
			first.Baseline, first.Plain, second.Baseline, second.Plain)
	}
	near := func(got, want float64) bool { return got > 0 && (got-want)/want < 1e-9 && (want-got)/want < 1e-9 }
	if !near(second.BothSingle, math.Sqrt(first.RatioSingle*second.RatioSingle)) || !near(second.BothBulk, math.Sqrt(first.RatioBulk*second.RatioBulk)) {
		t.Errorf("combined ratios %v / %v are not the geometric means of %v, %v / %v, %v",
			second.BothSingle, second.BothBulk, first.RatioSingle, second.RatioSingle, first.RatioBulk, second.RatioBulk)
	}
	if !strings.Contains(out.String(), "tamper evidence on vs off, both runs (geometric mean)") {
		t.Errorf("the table has no combined line:\n%s", out.String())
	}
}
