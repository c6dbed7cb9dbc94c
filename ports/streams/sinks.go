package streams

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/ports/contract"
)

// Item is one encoded event handed to a sink.
type Item struct {
	ID   string    // the event's key across tenants (audit.EventKey): its id in a single-tenant deployment
	Time time.Time // when the event happened
	Body []byte    // the event in the stream's format: one JSON value
}

// Sink delivers items. Send returns nil only once the receiver confirmed
// every item (durably, where the receiver offers a way to tell); on error
// the runner sends the same items again, so a sink must be safe to repeat
// (receivers deduplicate by Item.ID).
type Sink interface {
	Send(ctx context.Context, items []Item) error
	Close() error
}

// Webhook signature headers (docs/streams.md, "Webhook"): the signature
// is hex HMAC-SHA256, keyed by the stream's secret, over
// "<timestamp>.<body>", the timestamp being HeaderTimestamp (Unix
// seconds).
const (
	HeaderTimestamp = "X-Auditq-Timestamp"
	HeaderSignature = "X-Auditq-Signature"
	HeaderStream    = "X-Auditq-Stream"
)

// Sign returns the webhook signature of body sent at timestamp ts ("v1="
// and hex HMAC-SHA256 of "<ts>.<body>" keyed by secret).
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// bodyBuffer is an HTTP sink's request body, reused from one request to
// the next: a batch's body is about as large as its events' encodings, so
// a new one per request would be most of what a stream allocates besides
// them. The HTTP transport may read a body after Do returned (it closes it
// when done, per http.RoundTripper), so a buffer is reused only once
// every reader of it was closed; until then the next request gets a new
// one.
type bodyBuffer struct {
	cur *sentBytes
}

// sentBytes is the bytes of one request body and how many of its readers
// the transport has not closed yet.
type sentBytes struct {
	b    []byte
	open atomic.Int32
}

// take returns an empty body with room for n bytes: the last one when no
// request reads it any more and it is large enough, else a new one.
func (p *bodyBuffer) take(n int) *sentBytes {
	if c := p.cur; c != nil && c.open.Load() == 0 && cap(c.b) >= n {
		c.b = c.b[:0]
		return c
	}
	p.cur = &sentBytes{b: make([]byte, 0, n+n/8)}
	return p.cur
}

// post returns a POST of c's bytes to url whose body readers (the first,
// and those GetBody gives the transport to send it again) c counts.
func (c *sentBytes) post(ctx context.Context, url string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, c.reader())
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(c.b))
	req.GetBody = func() (io.ReadCloser, error) { return c.reader(), nil }
	return req, nil
}

func (c *sentBytes) reader() io.ReadCloser {
	c.open.Add(1)
	return &bodyReader{Reader: bytes.NewReader(c.b), of: c}
}

// bodyReader reads a sentBytes; Close releases it (once).
type bodyReader struct {
	*bytes.Reader
	of     *sentBytes
	closed atomic.Bool
}

func (r *bodyReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.of.open.Add(-1)
	}
	return nil
}

// webhook POSTs each batch as one JSON array.
type webhook struct {
	name, url string
	secret    []byte
	client    *http.Client
	now       func() time.Time
	body      bodyBuffer
}

func (w *webhook) Send(ctx context.Context, items []Item) error {
	n := 2 + len(items)
	for _, it := range items {
		n += len(it.Body)
	}
	sb := w.body.take(n)
	body := append(sb.b, '[')
	for i, it := range items {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, it.Body...)
	}
	body = append(body, ']')
	sb.b = body
	req, err := sb.post(ctx, w.url)
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderStream, w.name)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.secret, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	return drainStatus(resp, "webhook")
}

func (w *webhook) Close() error { w.client.CloseIdleConnections(); return nil }

// drainStatus reads and closes resp, returning an error for a status
// other than 2xx that quotes the start of the body.
func drainStatus(resp *http.Response, what string) error {
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %s", what, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// splunk sends to the HTTP Event Collector: POST
// <url>/services/collector/event with "Authorization: Splunk <token>" and
// a channel (X-Splunk-Request-Channel). When the answer carries an ackId
// (indexer acknowledgement is on), it polls <url>/services/collector/ack
// until the events are indexed; only then is the batch delivered.
type splunk struct {
	url, token, channel string
	index, sourceType   string
	ackTimeout, ackPoll time.Duration
	client              *http.Client
	body                bodyBuffer
}

// hecFields returns the members every HEC event of s has after its time:
// source, sourcetype and, when set, index.
func (s *splunk) hecFields() []byte {
	b := append([]byte(nil), `,"source":"auditq","sourcetype":`...)
	b = contract.AppendJSONString(b, s.sourceType)
	if s.index != "" {
		b = contract.AppendJSONString(append(b, `,"index":`...), s.index)
	}
	return append(b, `,"event":`...)
}

// Send posts items as concatenated HEC event objects, one a line:
// {"time": <epoch seconds, 3 decimals>, "source", "sourcetype", "index"?,
// "event": <the encoded event>}.
func (s *splunk) Send(ctx context.Context, items []Item) error {
	fields := s.hecFields()
	n := 0
	for _, it := range items {
		n += len(`{"time":}`) + 24 + len(fields) + len(it.Body) + 1
	}
	sb := s.body.take(n)
	body := sb.b
	for _, it := range items {
		body = strconv.AppendFloat(append(body, `{"time":`...), float64(it.Time.UnixMilli())/1000, 'f', 3, 64)
		body = append(body, fields...)
		body = append(body, it.Body...)
		body = append(body, '}', '\n')
	}
	sb.b = body
	var ans struct {
		Text  string `json:"text"`
		Code  int    `json:"code"`
		AckID *int64 `json:"ackId"`
	}
	req, err := sb.post(ctx, s.url+"/services/collector/event")
	if err != nil {
		return err
	}
	if err := s.do(req, "/services/collector/event", &ans); err != nil {
		return err
	}
	if ans.Code != 0 {
		return fmt.Errorf("splunk HEC: code %d: %s", ans.Code, ans.Text)
	}
	if ans.AckID == nil {
		return nil // no indexer acknowledgement on this token: accepted is all we learn
	}
	return s.awaitAck(ctx, *ans.AckID)
}

// awaitAck polls the ack endpoint until ackID is true or ackTimeout.
func (s *splunk) awaitAck(ctx context.Context, ackID int64) error {
	deadline := time.Now().Add(s.ackTimeout)
	req, _ := json.Marshal(map[string][]int64{"acks": {ackID}})
	for {
		var ans struct {
			Acks map[string]bool `json:"acks"`
		}
		if err := s.post(ctx, "/services/collector/ack", req, &ans); err != nil {
			return fmt.Errorf("splunk HEC ack %d: %w", ackID, err)
		}
		if ans.Acks[strconv.FormatInt(ackID, 10)] {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("splunk HEC: ack %d not indexed within %s; sending again", ackID, s.ackTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.ackPoll):
		}
	}
}

func (s *splunk) post(ctx context.Context, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	return s.do(req, path, out)
}

// do sends req (a POST to path) with the HEC headers and decodes the
// answer into out; an error for a status other than 200 quotes the
// answer.
func (s *splunk) do(req *http.Request, path string, out any) error {
	req.Header.Set("Authorization", "Splunk "+s.token)
	req.Header.Set("X-Splunk-Request-Channel", s.channel)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("splunk HEC %s answered %s: %s", path, resp.Status, strings.TrimSpace(string(b[:min(len(b), 512)])))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("splunk HEC %s: answer %.200q: %w", path, b, err)
	}
	return nil
}

func (s *splunk) Close() error { s.client.CloseIdleConnections(); return nil }

// newChannel returns a random GUID: Splunk wants the channel to be one.
func newChannel() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// elastic writes with the Bulk API: one "create" per event with Item.ID
// (the event id, with its tenant for a tenant's event) as _id, so a re-send is a 409 conflict per item, counted as
// delivered; any other item error fails the batch.
type elastic struct {
	url, index     string
	auth           string // Authorization header value, or ""
	client         *http.Client
	user, password string
	body           bodyBuffer
}

// Send posts items to the Bulk API: for each, the action line
// {"create":{"_id":<Item.ID>,"_index":<index>}} and the event.
func (e *elastic) Send(ctx context.Context, items []Item) error {
	index := contract.AppendJSONString(append([]byte(nil), `,"_index":`...), e.index)
	n := 0
	for _, it := range items {
		n += len(`{"create":{"_id":}}`) + 2*len(it.ID) + 2 + len(index) + len(it.Body) + 2
	}
	sb := e.body.take(n)
	body := sb.b
	for _, it := range items {
		body = contract.AppendJSONString(append(body, `{"create":{"_id":`...), it.ID)
		body = append(body, index...)
		body = append(body, '}', '}', '\n')
		body = append(body, it.Body...)
		body = append(body, '\n')
	}
	sb.b = body
	req, err := sb.post(ctx, e.url+"/_bulk")
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	switch {
	case e.auth != "":
		req.Header.Set("Authorization", e.auth)
	case e.user != "":
		req.SetBasicAuth(e.user, e.password)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("elasticsearch _bulk answered %s: %s", resp.Status, strings.TrimSpace(string(b[:min(len(b), 512)])))
	}
	var ans struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			ID     string          `json:"_id"`
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("elasticsearch _bulk: answer %.200q: %w", b, err)
	}
	if len(ans.Items) != len(items) {
		return fmt.Errorf("elasticsearch _bulk: %d items answered for %d sent", len(ans.Items), len(items))
	}
	for i, m := range ans.Items {
		r, ok := m["create"]
		switch {
		case !ok:
			return fmt.Errorf("elasticsearch _bulk: item %d is no create result", i)
		case r.Status/100 == 2, r.Status == http.StatusConflict: // stored now, or by an earlier send
		default:
			return fmt.Errorf("elasticsearch _bulk: event %s: status %d: %.300s", items[i].ID, r.Status, r.Error)
		}
	}
	return nil
}

func (e *elastic) Close() error { e.client.CloseIdleConnections(); return nil }

// file appends NDJSON to <dir>/<name>.ndjson and fsyncs before Send
// returns. It rotates the file, renaming it to <name>-<UTC time>.ndjson,
// once it reaches maxBytes or maxAge, and then keeps the newest keepFiles
// rotated files (-1: all), none older than keepFor (0: no age bound).
type file struct {
	dir, name string
	maxBytes  int64
	maxAge    time.Duration
	keepFiles int
	keepFor   time.Duration
	now       func() time.Time

	f      *os.File
	w      *bufio.Writer // the writes' buffer, reused by every Send
	size   int64
	opened time.Time
}

func (f *file) path() string { return filepath.Join(f.dir, f.name+".ndjson") }

// open opens the current file for appending. A line that a crash left
// half-written was never confirmed: it is cut off (the runner sends it
// again).
func (f *file) open() error {
	fh, err := os.OpenFile(f.path(), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := fh.Stat()
	if err != nil {
		_ = fh.Close()
		return err
	}
	size := st.Size()
	if size > 0 {
		end, err := lastNewline(fh, size)
		if err != nil {
			_ = fh.Close()
			return err
		}
		if end != size {
			if err := fh.Truncate(end); err != nil {
				_ = fh.Close()
				return err
			}
			size = end
		}
	}
	if _, err := fh.Seek(size, io.SeekStart); err != nil {
		_ = fh.Close()
		return err
	}
	f.f, f.size, f.opened = fh, size, f.now()
	if size > 0 {
		f.opened = st.ModTime() // age counts from the file's last write before the restart
	}
	return nil
}

// lastNewline returns the offset just after the last '\n' in the file's
// first size bytes (0 when there is none).
func lastNewline(fh *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		n, err := fh.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

func (f *file) rotate() error {
	if err := f.f.Close(); err != nil {
		return err
	}
	f.f = nil
	to := filepath.Join(f.dir, f.name+"-"+f.now().UTC().Format(rotatedTime)+".ndjson")
	if err := os.Rename(f.path(), to); err != nil {
		return err
	}
	if err := f.prune(); err != nil {
		return err
	}
	return syncDir(f.dir)
}

// rotatedTime is the time in a rotated file's name: UTC, sortable as text.
const rotatedTime = "20060102T150405.000000000Z"

// prune removes the rotated files of this stream beyond the newest
// keepFiles and those rotated more than keepFor ago. Only names of the
// form <name>-<rotatedTime>.ndjson are touched: other files in the
// directory, another stream's included, stay.
func (f *file) prune() error {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return err
	}
	type rotated struct {
		name string
		at   time.Time
	}
	var files []rotated
	for _, e := range entries {
		stamp, ok := strings.CutPrefix(e.Name(), f.name+"-")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		stamp, ok = strings.CutSuffix(stamp, ".ndjson")
		at, err := time.Parse(rotatedTime, stamp)
		if !ok || err != nil || len(stamp) != len(rotatedTime) {
			continue
		}
		files = append(files, rotated{e.Name(), at})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name > files[j].name }) // newest first
	now := f.now()
	var errs []error
	for i, r := range files {
		if (f.keepFiles >= 0 && i >= f.keepFiles) || (f.keepFor > 0 && now.Sub(r.at) > f.keepFor) {
			if err := os.Remove(filepath.Join(f.dir, r.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

func (f *file) Send(_ context.Context, items []Item) error {
	if f.f != nil && f.size > 0 && (f.size >= f.maxBytes || f.now().Sub(f.opened) >= f.maxAge) {
		if err := f.rotate(); err != nil {
			return fmt.Errorf("rotate %s: %w", f.path(), err)
		}
	}
	if f.f == nil {
		if err := f.open(); err != nil {
			return fmt.Errorf("open %s: %w", f.path(), err)
		}
		if err := f.prune(); err != nil { // the bounds may have changed since the last rotation
			return fmt.Errorf("remove old rotated files of %s: %w", f.path(), err)
		}
	}
	if f.w == nil {
		f.w = bufio.NewWriterSize(f.f, 256<<10)
	}
	w := f.w
	w.Reset(f.f)
	n := int64(0)
	for _, it := range items {
		m, _ := w.Write(it.Body)
		_ = w.WriteByte('\n')
		n += int64(m) + 1
	}
	err := w.Flush()
	if err == nil {
		err = f.f.Sync()
	}
	if err != nil {
		// What was written is unconfirmed: reopen (cutting a partial line)
		// before the next attempt.
		_ = f.f.Close()
		f.f = nil
		return fmt.Errorf("write %s: %w", f.path(), err)
	}
	f.size += n
	return nil
}

func (f *file) Close() error {
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}

// natsSink publishes each event as one message on a subject, with
// Nats-Msg-Id set to Item.ID (the event id, with its tenant for a
// tenant's event). With JetStream it waits for every
// publish acknowledgement (a stream capturing the subject stores each id
// once within its duplicate window); without, for the server's
// round trip only (core NATS keeps nothing for a subscriber that is
// away).
type natsSink struct {
	name, subject string
	nc            *nats.Conn
	own           bool // nc is the sink's own connection, to url, closed with it
	url           string
	js            jetstream.JetStream // nil: core NATS
}

func (n *natsSink) Send(ctx context.Context, items []Item) error {
	if n.own && !n.nc.IsConnected() { // it reconnects by itself; nothing waits in its buffer meanwhile
		return fmt.Errorf("not connected to the stream's NATS server %s: %v", n.url, n.nc.LastError())
	}
	var futures []jetstream.PubAckFuture
	for _, it := range items {
		m := nats.NewMsg(n.subject)
		m.Data = it.Body
		m.Header.Set(nats.MsgIdHdr, it.ID)
		m.Header.Set("Auditq-Stream", n.name)
		m.Header.Set("Content-Type", "application/json")
		if n.js == nil {
			if err := n.nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		f, err := n.js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	if n.js == nil {
		return n.nc.FlushWithContext(ctx)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish event %s to %s: %w", items[i].ID, n.subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (n *natsSink) Close() error {
	if n.own {
		n.nc.Close()
	}
	return nil
}
