package bench

import (
	"bufio"
	"math"
	"strings"
	"testing"
)

func TestCommitHistogram(t *testing.T) {
	read := func(text string) commitHistogram {
		t.Helper()
		h, err := parseCommits(bufio.NewScanner(strings.NewReader(text)))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := read(`# HELP auditq_event_commit_seconds x
auditq_event_commit_seconds_bucket{le="0.01"} 5
auditq_event_commit_seconds_bucket{le="0.02"} 5
auditq_event_commit_seconds_bucket{le="0.1"} 5
auditq_event_commit_seconds_bucket{le="+Inf"} 5
auditq_event_commit_seconds_sum 0.02
auditq_event_commit_seconds_count 5
auditq_write_batch_events_bucket{le="1"} 9
`)
	after := read(`auditq_event_commit_seconds_bucket{le="0.01"} 55
auditq_event_commit_seconds_bucket{le="0.02"} 105
auditq_event_commit_seconds_bucket{le="0.1"} 105
auditq_event_commit_seconds_bucket{le="+Inf"} 106
`)
	d := after.since(before)
	if d.total() != 101 {
		t.Fatalf("total = %v, want 101", d.total())
	}
	// 50 events up to 10 ms, 50 between 10 and 20 ms, 1 past 100 ms.
	for _, c := range []struct{ q, want float64 }{{0.25, 5.05}, {0.5, 10.1}, {0.75, 15.15}, {0.999, 100}} {
		if got := d.quantile(c.q); math.Abs(got-c.want) > 0.01 {
			t.Errorf("quantile(%v) = %v ms, want %v", c.q, got, c.want)
		}
	}
	if got := d.maxBound(); got != 100 {
		t.Errorf("maxBound = %v ms, want 100 (the last finite bound)", got)
	}
	if _, err := parseCommits(bufio.NewScanner(strings.NewReader("auditq_other 1\n"))); err == nil {
		t.Error("no error for /metrics without the histogram")
	}
}
