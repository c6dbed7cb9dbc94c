package streamstest

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/auditq/auditq/ports/streams"
)

// Webhook receives a webhook stream: a POST of a JSON array, signed as
// docs/streams.md says (HMAC-SHA256 of "<timestamp>.<body>"). A request
// with a bad or stale signature is refused with 401 and counted.
type Webhook struct {
	log
	srv           *server
	secret        []byte
	badSignatures int
	delay         time.Duration
	keepBodies    bool
}

// KeepBodies makes the receiver keep each event as delivered
// (Received.Raw).
func (w *Webhook) KeepBodies() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keepBodies = true
}

// SetDelay makes the receiver wait d after taking a batch before it
// answers: a sender that dies meanwhile never learns the batch arrived.
func (w *Webhook) SetDelay(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.delay = d
}

// NewWebhook starts a webhook receiver checking signatures with secret.
func NewWebhook(secret string) (*Webhook, error) {
	w := &Webhook{secret: []byte(secret)}
	srv, err := serve(http.HandlerFunc(w.handle))
	if err != nil {
		return nil, err
	}
	w.srv = srv
	return w, nil
}

// URL returns where the receiver listens.
func (w *Webhook) URL() string { return w.srv.url + "/hook" }

// Close stops the receiver.
func (w *Webhook) Close() error { return w.srv.close() }

// BadSignatures returns how many requests failed the signature check.
func (w *Webhook) BadSignatures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.badSignatures
}

func (w *Webhook) handle(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	ts := r.Header.Get(streams.HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	want := streams.Sign(w.secret, ts, body)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute ||
		!hmac.Equal([]byte(r.Header.Get(streams.HeaderSignature)), []byte(want)) || r.Header.Get("Content-Type") != "application/json" {
		w.mu.Lock()
		w.badSignatures++
		w.mu.Unlock()
		http.Error(rw, "bad signature", http.StatusUnauthorized)
		return
	}
	d, refuse := w.begin()
	if refuse {
		http.Error(rw, "down", http.StatusServiceUnavailable)
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		http.Error(rw, "not a JSON array: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	keep := w.keepBodies
	w.mu.Unlock()
	evs := make([]Received, 0, len(raw))
	for _, m := range raw {
		e, err := ParseEvent(m)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		e.Delivery = d
		if keep {
			e.Raw = m
		}
		evs = append(evs, e)
	}
	w.add(evs...)
	w.mu.Lock()
	delay := w.delay
	w.mu.Unlock()
	time.Sleep(delay)
	rw.WriteHeader(http.StatusNoContent)
}

// Splunk receives a Splunk HEC stream as Splunk documents it ("Format
// events for HTTP Event Collector", "HTTP Event Collector indexer
// acknowledgment"): POST /services/collector/event with "Authorization:
// Splunk <token>", a body of concatenated event objects, each with the
// event under "event"; with indexer acknowledgement on, a request must
// name its channel (X-Splunk-Request-Channel header or channel query
// parameter; without one the answer is 400 {"text":"Data channel is
// missing","code":10}), and the answer carries an ackId, counted per
// channel from 0. POST /services/collector/ack {"acks":[ids]} answers
// {"acks":{"<id>":true|false}}: true once those events are indexed.
// Here an ack turns true at the second query, except for the ackIds
// NeverIndex lists, which stay false (the events count as lost; the
// sender must send them again).
type Splunk struct {
	log
	srv   *server
	token string

	acks      map[string]int64 // channel -> next ackId
	queried   map[string]int   // "channel/ackId" -> times queried
	pending   map[string][]Received
	never     map[int64]bool
	ackChecks int
}

// NewSplunk starts a HEC receiver accepting token; acks listed in
// neverIndex are never confirmed.
func NewSplunk(token string, neverIndex ...int64) (*Splunk, error) {
	s := &Splunk{token: token, acks: map[string]int64{}, queried: map[string]int{}, pending: map[string][]Received{}, never: map[int64]bool{}}
	for _, id := range neverIndex {
		s.never[id] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/collector/event", s.event)
	mux.HandleFunc("POST /services/collector/ack", s.ack)
	srv, err := serve(mux)
	if err != nil {
		return nil, err
	}
	s.srv = srv
	return s, nil
}

// URL returns the HEC base URL.
func (s *Splunk) URL() string { return s.srv.url }

// Close stops the receiver.
func (s *Splunk) Close() error { return s.srv.close() }

// AckChecks returns how many ack queries arrived.
func (s *Splunk) AckChecks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ackChecks
}

func hecError(rw http.ResponseWriter, status, code int, text string) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(map[string]any{"text": text, "code": code})
}

func (s *Splunk) channel(rw http.ResponseWriter, r *http.Request) (string, bool) {
	if r.Header.Get("Authorization") != "Splunk "+s.token {
		hecError(rw, http.StatusUnauthorized, 3, "Invalid authorization")
		return "", false
	}
	ch := r.Header.Get("X-Splunk-Request-Channel")
	if ch == "" {
		ch = r.URL.Query().Get("channel")
	}
	if ch == "" {
		hecError(rw, http.StatusBadRequest, 10, "Data channel is missing")
		return "", false
	}
	return ch, true
}

func (s *Splunk) event(rw http.ResponseWriter, r *http.Request) {
	ch, ok := s.channel(rw, r)
	if !ok {
		return
	}
	d, refuse := s.begin()
	if refuse {
		hecError(rw, http.StatusServiceUnavailable, 9, "Server is busy")
		return
	}
	dec := json.NewDecoder(r.Body)
	var evs []Received
	for {
		var e struct {
			Time  json.Number     `json:"time"`
			Event json.RawMessage `json:"event"`
		}
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil || len(e.Event) == 0 {
			hecError(rw, http.StatusBadRequest, 6, "Invalid data format")
			return
		}
		got, err := ParseEvent(e.Event)
		if err != nil {
			hecError(rw, http.StatusBadRequest, 6, "Invalid data format")
			return
		}
		got.Delivery = d
		evs = append(evs, got)
	}
	s.mu.Lock()
	id := s.acks[ch]
	s.acks[ch] = id + 1
	s.pending[fmt.Sprintf("%s/%d", ch, id)] = evs
	s.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(map[string]any{"text": "Success", "code": 0, "ackId": id})
}

func (s *Splunk) ack(rw http.ResponseWriter, r *http.Request) {
	ch, ok := s.channel(rw, r)
	if !ok {
		return
	}
	var req struct {
		Acks []int64 `json:"acks"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		hecError(rw, http.StatusBadRequest, 6, "Invalid data format")
		return
	}
	out := map[string]bool{}
	s.mu.Lock()
	s.ackChecks++
	for _, id := range req.Acks {
		key := fmt.Sprintf("%s/%d", ch, id)
		s.queried[key]++
		indexed := s.queried[key] >= 2 && !s.never[id]
		if evs, ok := s.pending[key]; ok && indexed {
			s.events = append(s.events, evs...) // indexed: searchable from now on
			delete(s.pending, key)
		}
		out[strconv.FormatInt(id, 10)] = indexed
	}
	s.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(map[string]any{"acks": out})
}

// Elastic receives an Elasticsearch/OpenSearch stream as the Bulk API
// documents it ("Bulk API", Elasticsearch reference): POST /_bulk with
// Content-Type application/x-ndjson, action and source lines each ending
// in a newline (the last one too). A "create" of an _id that exists fails
// that item alone with status 409 (version_conflict_engine_exception);
// the answer lists every item in order with its status and "errors": true
// when any item failed. LoseAnswers(n) stores the next n requests but
// answers them 500, as a lost response would look to the sender.
type Elastic struct {
	log
	srv      *server
	docs     map[string]bool
	lose     int
	conflict int
}

// NewElastic starts a Bulk API receiver.
func NewElastic() (*Elastic, error) {
	e := &Elastic{docs: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_bulk", e.bulk)
	srv, err := serve(mux)
	if err != nil {
		return nil, err
	}
	e.srv = srv
	return e, nil
}

// URL returns the cluster URL.
func (e *Elastic) URL() string { return e.srv.url }

// Close stops the receiver.
func (e *Elastic) Close() error { return e.srv.close() }

// LoseAnswers stores the next n requests but answers them 500.
func (e *Elastic) LoseAnswers(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lose = n
}

// Conflicts returns how many items were answered 409.
func (e *Elastic) Conflicts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conflict
}

func (e *Elastic) bulk(rw http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(rw, `{"error":"Content-Type header [`+r.Header.Get("Content-Type")+`] is not supported","status":406}`, http.StatusNotAcceptable)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil || len(body) == 0 || body[len(body)-1] != '\n' {
		http.Error(rw, `{"error":"The bulk request must be terminated by a newline [\\n]","status":400}`, http.StatusBadRequest)
		return
	}
	d, refuse := e.begin()
	if refuse {
		http.Error(rw, `{"error":"unavailable","status":503}`, http.StatusServiceUnavailable)
		return
	}
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	if len(lines)%2 != 0 {
		http.Error(rw, `{"error":"odd number of lines","status":400}`, http.StatusBadRequest)
		return
	}
	type item struct {
		Index  string         `json:"_index"`
		ID     string         `json:"_id"`
		Status int            `json:"status"`
		Error  map[string]any `json:"error,omitempty"`
	}
	var items []map[string]item
	anyErr := false
	e.mu.Lock()
	for i := 0; i < len(lines); i += 2 {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(lines[i], &action); err != nil || len(action) != 1 {
			e.mu.Unlock()
			http.Error(rw, `{"error":"malformed action","status":400}`, http.StatusBadRequest)
			return
		}
		a, ok := action["create"]
		if !ok {
			items = append(items, map[string]item{"index": {Status: 400, Error: map[string]any{"type": "illegal_argument_exception", "reason": "only create is accepted by a data stream"}}})
			anyErr = true
			continue
		}
		got, err := ParseEvent(lines[i+1])
		if err != nil || got.ID != a.ID {
			items = append(items, map[string]item{"create": {Index: a.Index, ID: a.ID, Status: 400, Error: map[string]any{"type": "mapper_parsing_exception"}}})
			anyErr = true
			continue
		}
		if e.docs[a.ID] {
			e.conflict++
			anyErr = true
			items = append(items, map[string]item{"create": {Index: a.Index, ID: a.ID, Status: 409, Error: map[string]any{
				"type": "version_conflict_engine_exception", "reason": "[" + a.ID + "]: version conflict, document already exists"}}})
			continue
		}
		e.docs[a.ID] = true
		got.Delivery = d
		e.events = append(e.events, got)
		items = append(items, map[string]item{"create": {Index: a.Index, ID: a.ID, Status: 201}})
	}
	lose := e.lose > 0
	if lose {
		e.lose--
	}
	e.mu.Unlock()
	if lose {
		http.Error(rw, `{"error":"lost","status":500}`, http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(map[string]any{"took": 1, "errors": anyErr, "items": items})
}

// ReadFiles reads every NDJSON file a file stream wrote to dir, oldest
// first (rotated files by name, then the current one), and returns the
// events and how many files there were. A line that is not a whole
// event is an error. Each line counts as a delivery of its own: a re-send
// after a crash continues the same file, so Check counts it as a rewind.
func ReadFiles(dir, stream string) ([]Received, int, error) {
	rotated, err := filepath.Glob(filepath.Join(dir, stream+"-*.ndjson"))
	if err != nil {
		return nil, 0, err
	}
	sort.Strings(rotated)
	files := append(rotated, filepath.Join(dir, stream+".ndjson"))
	var out []Received
	n := 0
	for _, p := range files {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		n++
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		line := 0
		for sc.Scan() {
			line++
			e, err := ParseEvent(sc.Bytes())
			if err != nil {
				_ = f.Close()
				return nil, 0, fmt.Errorf("%s:%d: %w", p, line, err)
			}
			e.Delivery, e.Raw = len(out), bytes.Clone(sc.Bytes())
			out = append(out, e)
		}
		err = sc.Err()
		_ = f.Close()
		if err != nil {
			return nil, 0, err
		}
	}
	return out, n, nil
}

// Summary formats a report in one line.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d unique, %d missing, %d unexpected, %d duplicates, %d rewinds", r.Unique, len(r.Missing), len(r.Unexpected), r.Duplicates, r.Rewinds)
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, " (missing e.g. %v)", r.Missing[:min(5, len(r.Missing))])
	}
	if len(r.Disorder) > 0 {
		fmt.Fprintf(&b, "; disorder: %v", r.Disorder[:min(5, len(r.Disorder))])
	}
	return b.String()
}
