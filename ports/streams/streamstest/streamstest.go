// Package streamstest has receivers for the log stream sinks that speak
// the receivers' documented wire protocols (a signed webhook, Splunk HEC
// with indexer acknowledgement, the Elasticsearch Bulk API) and the
// checks the tests make of what arrived: every event at least once, in
// commit order, repeats only as re-sends of whole batches. It does not
// import "testing": the benchmark ("auditq bench") runs a webhook
// receiver too.
package streamstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
)

// Received is one event as a receiver got it: its id and seal, and which
// delivery (request, file line batch, message) brought it.
type Received struct {
	ID       string
	BatchSeq int64
	BatchID  int64
	Leaf     int
	Delivery int
	// Raw is the event as delivered, kept by a Webhook after KeepBodies
	// and by ReadFiles.
	Raw []byte
}

// ParseEvent reads the id and seal of one delivered event in any of the
// formats (native, ocsf, cloudevents).
func ParseEvent(raw []byte) (Received, error) {
	var v struct {
		ID   string `json:"id"`
		Seal *struct {
			BatchSeq int64 `json:"batchSeq"`
			BatchID  int64 `json:"batchId"`
			Leaf     int   `json:"leaf"`
		} `json:"seal"`
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
		Unmapped struct {
			Seal *struct {
				BatchSeq int64 `json:"batchSeq"`
				BatchID  int64 `json:"batchId"`
				Leaf     int   `json:"leaf"`
			} `json:"auditq_seal"`
		} `json:"unmapped"`
		CESeq  *int64 `json:"auditqbatchseq"`
		CEID   int64  `json:"auditqbatchid"`
		CELeaf int    `json:"auditqleaf"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return Received{}, err
	}
	switch {
	case v.Seal != nil:
		return Received{ID: v.ID, BatchSeq: v.Seal.BatchSeq, BatchID: v.Seal.BatchID, Leaf: v.Seal.Leaf}, nil
	case v.Unmapped.Seal != nil:
		s := v.Unmapped.Seal
		return Received{ID: v.Metadata.UID, BatchSeq: s.BatchSeq, BatchID: s.BatchID, Leaf: s.Leaf}, nil
	case v.CESeq != nil:
		return Received{ID: v.ID, BatchSeq: *v.CESeq, BatchID: v.CEID, Leaf: v.CELeaf}, nil
	}
	return Received{}, fmt.Errorf("no seal in %.200s", raw)
}

// Report is what Check found.
type Report struct {
	Unique     int
	Missing    []string // wanted, never received
	Unexpected []string // received, not wanted
	Duplicates int      // receptions beyond the first of an id
	// Rewinds counts deliveries that began at or before a position already
	// received: a re-send after a failure. Outside rewinds the positions
	// must grow.
	Rewinds int
	// Disorder lists problems of order: a delivery whose events do not
	// grow, or a repeated id at a different seal.
	Disorder []string
}

// Check compares received (in arrival order) with the wanted ids.
func Check(received []Received, want []string) Report {
	var r Report
	seen := map[string]Received{}
	var last *Received
	delivery := -1
	for i := range received {
		e := received[i]
		if prev, ok := seen[e.ID]; ok {
			r.Duplicates++
			if prev.BatchSeq != e.BatchSeq || prev.Leaf != e.Leaf || prev.BatchID != e.BatchID {
				r.Disorder = append(r.Disorder, fmt.Sprintf("%s came at seal %d/%d and %d/%d", e.ID, prev.BatchSeq, prev.Leaf, e.BatchSeq, e.Leaf))
			}
		} else {
			seen[e.ID] = e
		}
		if last != nil && !after(e, *last) {
			if e.Delivery != delivery {
				r.Rewinds++
			} else {
				r.Disorder = append(r.Disorder, fmt.Sprintf("delivery %d: %s (%d/%d) after %s (%d/%d)", e.Delivery, e.ID, e.BatchSeq, e.Leaf, last.ID, last.BatchSeq, last.Leaf))
			}
		}
		last, delivery = &received[i], e.Delivery
	}
	wanted := map[string]bool{}
	for _, id := range want {
		wanted[id] = true
		if _, ok := seen[id]; !ok {
			r.Missing = append(r.Missing, id)
		}
	}
	for id := range seen {
		if !wanted[id] {
			r.Unexpected = append(r.Unexpected, id)
		}
	}
	sort.Strings(r.Missing)
	sort.Strings(r.Unexpected)
	r.Unique = len(seen)
	return r
}

func after(a, b Received) bool {
	return a.BatchSeq > b.BatchSeq || a.BatchSeq == b.BatchSeq && a.Leaf > b.Leaf
}

// server is an HTTP server on a free port of 127.0.0.1.
type server struct {
	srv *http.Server
	url string
}

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{srv: &http.Server{Handler: h}, url: "http://" + ln.Addr().String()}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *server) close() error {
	err := s.srv.Shutdown(context.Background())
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// log is the arrival-ordered record of a receiver.
type log struct {
	mu         sync.Mutex
	events     []Received
	deliveries int
	failing    int  // answer the next n requests with 503
	down       bool // answer every request with 503
	requests   int
}

// begin counts a request and says whether to refuse it.
func (l *log) begin() (delivery int, refuse bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests++
	if l.down || l.failing > 0 {
		if l.failing > 0 {
			l.failing--
		}
		return 0, true
	}
	l.deliveries++
	return l.deliveries, false
}

func (l *log) add(evs ...Received) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, evs...)
}

// Events returns what arrived so far, in order.
func (l *log) Events() []Received {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Received(nil), l.events...)
}

// Requests returns how many requests arrived, refused ones included.
func (l *log) Requests() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests
}

// Fail makes the next n requests fail with 503.
func (l *log) Fail(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing = n
}

// SetDown makes every request fail with 503 (true) or none (false).
func (l *log) SetDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
}
