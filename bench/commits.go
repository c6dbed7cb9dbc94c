package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// commitMetric is the service's histogram of the time from each event's
// JetStream timestamp to the commit of its row (ports.Metrics).
const commitMetric = "auditq_event_commit_seconds"

// commitHistogram is a reading of commitMetric: cumulative counts by
// upper bound, in seconds, +Inf last.
type commitHistogram struct {
	bounds []float64
	counts []float64
}

// readCommits reads commitMetric from the service's /metrics at addr.
func readCommits(ctx context.Context, addr string) (commitHistogram, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return commitHistogram{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return commitHistogram{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return commitHistogram{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseCommits(bufio.NewScanner(resp.Body))
}

// parseCommits picks commitMetric's buckets out of the Prometheus text
// format.
func parseCommits(sc *bufio.Scanner) (commitHistogram, error) {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := commitMetric + `_bucket{le="`
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(line, `"} `)
		if !ok {
			return commitHistogram{}, fmt.Errorf("%s: unexpected line %q", commitMetric, sc.Text())
		}
		b, err := strconv.ParseFloat(le, 64)
		if err != nil {
			return commitHistogram{}, fmt.Errorf("%s: bound %q: %w", commitMetric, le, err)
		}
		n, err := strconv.ParseFloat(count, 64)
		if err != nil {
			return commitHistogram{}, fmt.Errorf("%s: count %q: %w", commitMetric, count, err)
		}
		bs = append(bs, bucket{b, n})
	}
	if err := sc.Err(); err != nil {
		return commitHistogram{}, err
	}
	if len(bs) == 0 {
		return commitHistogram{}, fmt.Errorf("the service exposes no %s", commitMetric)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	var h commitHistogram
	for _, b := range bs {
		h.bounds, h.counts = append(h.bounds, b.le), append(h.counts, b.n)
	}
	return h, nil
}

// since is the histogram of the events committed between before and h.
func (h commitHistogram) since(before commitHistogram) commitHistogram {
	d := commitHistogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		d.counts[i] = h.counts[i]
		if i < len(before.counts) {
			d.counts[i] -= before.counts[i]
		}
	}
	return d
}

// total is the number of events h counts.
func (h commitHistogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// quantile estimates the q quantile in milliseconds, interpolating
// linearly within its bucket as Prometheus' histogram_quantile does; past
// the last finite bound it returns that bound.
func (h commitHistogram) quantile(q float64) float64 {
	total := h.total()
	if total == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, le := range h.bounds {
		if h.counts[i] >= rank {
			if math.IsInf(le, 1) {
				return lower * 1000
			}
			in := h.counts[i] - below
			if in == 0 {
				return le * 1000
			}
			return (lower + (le-lower)*(rank-below)/in) * 1000
		}
		lower, below = le, h.counts[i]
	}
	return lower * 1000
}

// maxBound is the upper bound, in milliseconds, of the highest bucket
// holding an event; past the last finite bound, that bound.
func (h commitHistogram) maxBound() float64 {
	last := 0.0
	for i, le := range h.bounds {
		if !math.IsInf(le, 1) {
			last = le
		}
		if h.counts[i] >= h.total() {
			return last * 1000
		}
	}
	return last * 1000
}
