// Package streams delivers every committed event, at least once and in
// commit order, to the configured log streams (docs/streams.md): a
// webhook, Splunk HEC, Elasticsearch/OpenSearch, rotated NDJSON files or
// a NATS subject. Each stream reads the trail from its durable cursor in
// PostgreSQL (audit.StreamStore), hands a batch to its sink, and advances
// the cursor only once the sink confirmed the batch; a failed batch is
// sent again after an exponential backoff. One instance at a time
// delivers a stream (a lease on its cursor row).
package streams

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/ports/streams/format"
)

// Sink kinds.
const (
	KindWebhook = "webhook"
	KindSplunk  = "splunk"
	KindElastic = "elasticsearch"
	KindFile    = "file"
	KindNATS    = "nats"
)

// Kinds lists the sink kinds.
var Kinds = []string{KindWebhook, KindSplunk, KindElastic, KindFile, KindNATS}

// StreamConfig is one stream: its name, sink, format and the sink's
// settings (docs/streams.md lists which sink reads which). Zero values
// mean the documented defaults.
type StreamConfig struct {
	Name       string
	Sink       string
	Format     string
	Paused     bool
	BatchSize  int           // events per delivery; default 1000 (a group commit's batch)
	Timeout    time.Duration // of one HTTP request; default 30s
	URL        string        // webhook, splunk, elasticsearch
	Secret     string        // webhook: HMAC key
	Token      string        // splunk: HEC token
	Index      string        // splunk (optional), elasticsearch (required)
	SourceType string        // splunk; default "auditq:<format>"
	AckTimeout time.Duration // splunk: how long to wait for the indexer acknowledgement; default 2m
	APIKey     string        // elasticsearch: "Authorization: ApiKey <key>"
	Username   string        // elasticsearch: basic auth
	Password   string
	Path       string        // file: directory
	MaxBytes   int64         // file: rotate at this size; default 100 MiB
	MaxAge     time.Duration // file: rotate at this age; default 24h
	KeepFiles  int           // file: rotated files kept, the newest; default 30, -1 keeps all
	KeepFor    time.Duration // file: rotated files older than this are removed; 0: no age bound
	Subject    string        // nats
	JetStream  bool          // nats: publish with JetStream acknowledgements
	CredsFile  string        // nats (with URL): a credentials file (user JWT and nkey seed)
	NKeyFile   string        // nats (with URL): an nkey seed file
	Source     string        // cloudevents source; default /auditq
}

// DefaultKeepFiles is how many rotated files a file stream keeps.
const DefaultKeepFiles = 30

func (c *StreamConfig) setDefaults() {
	if c.Format == "" {
		c.Format = format.Native
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 2 * time.Minute
	}
	if c.SourceType == "" {
		c.SourceType = "auditq:" + c.Format
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 100 << 20
	}
	if c.MaxAge == 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.KeepFiles == 0 {
		c.KeepFiles = DefaultKeepFiles
	}
}

// Validate names the first bad field of the stream.
func (c StreamConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("stream %q: %s: %s", c.Name, field, fmt.Sprintf(format, args...))
	}
	if c.Name == "" || strings.ContainsFunc(c.Name, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_'
	}) || len(c.Name) > 64 {
		return bad("name", "must be 1 to 64 characters a-z, 0-9, - or _, got %q", c.Name)
	}
	if _, err := format.New(c.Format, format.Options{}); err != nil {
		return bad("format", "%v", err)
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		return bad("batchSize", "must be between 1 and 10000")
	}
	if c.Timeout < 0 || c.AckTimeout < 0 || c.MaxAge < 0 || c.MaxBytes < 0 || c.KeepFor < 0 {
		return bad("timeout, ackTimeout, maxAge, maxBytes, keepFor", "must not be negative")
	}
	needURL := func() error {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("url", "must be an http or https URL, got %q", c.URL)
		}
		return nil
	}
	switch c.Sink {
	case KindWebhook:
		if err := needURL(); err != nil {
			return err
		}
		if len(c.Secret) < 16 {
			return bad("secret", "the webhook's HMAC key must be at least 16 bytes")
		}
	case KindSplunk:
		if err := needURL(); err != nil {
			return err
		}
		if c.Token == "" {
			return bad("token", "the HEC token is required")
		}
	case KindElastic:
		if err := needURL(); err != nil {
			return err
		}
		if c.Index == "" {
			return bad("index", "the index or data stream is required")
		}
		if c.APIKey != "" && c.Username != "" {
			return bad("apiKey, username", "set one, not both")
		}
	case KindFile:
		if c.Path == "" {
			return bad("path", "the directory is required")
		}
		if c.KeepFiles < -1 {
			return bad("keepFiles", "must be at least 1, or -1 to keep every rotated file, got %d", c.KeepFiles)
		}
	case KindNATS:
		if c.Subject == "" || strings.ContainsAny(c.Subject, " \t*>") {
			return bad("subject", "must be a subject without wildcards, got %q", c.Subject)
		}
		if err := c.validateNATSServer(bad); err != nil {
			return err
		}
	default:
		return bad("sink", "must be one of %s, got %q", strings.Join(Kinds, ", "), c.Sink)
	}
	return nil
}

// validateNATSServer checks a nats sink's own server and credentials:
// none (the service's connection), or url with at most one way to
// authenticate.
func (c StreamConfig) validateNATSServer(bad func(field, format string, args ...any) error) error {
	ways := 0
	for _, set := range []bool{c.Username != "" || c.Password != "", c.Token != "", c.CredsFile != "", c.NKeyFile != ""} {
		if set {
			ways++
		}
	}
	if c.URL == "" {
		if ways > 0 {
			return bad("url", "credentials (username, password, token, credsFile, nkeyFile) need the sink's own NATS url")
		}
		if c.Subject == "audit" || strings.HasPrefix(c.Subject, "audit.") {
			return bad("subject", "audit.> is auditq's own namespace on its NATS (a stream there would be taken for jobs or requests); publish elsewhere, or to another server (url)")
		}
		return nil
	}
	for _, one := range strings.Split(c.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return bad("url", "must be NATS server URLs (nats://, tls://, ws:// or wss://), comma-separated, got %q", one)
		}
		if u.User != nil {
			return bad("url", "must not hold credentials: use username and password (passwordEnv), token (tokenEnv), credsFile or nkeyFile")
		}
	}
	if ways > 1 {
		return bad("username, token, credsFile, nkeyFile", "set one way to authenticate, not several")
	}
	if (c.Username == "") != (c.Password == "") {
		return bad("username, password", "set both or neither")
	}
	return nil
}

// natsOptions returns the connection options of a nats sink with its own
// server: its credentials, and reconnects without end, refused
// credentials included (a failed publish is retried by the runner, so
// nothing waits in the client's buffer).
func (c StreamConfig) natsOptions() ([]nats.Option, error) {
	opts := []nats.Option{nats.Name("auditq stream " + c.Name), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1), nats.IgnoreAuthErrorAbort()}
	switch {
	case c.Username != "":
		opts = append(opts, nats.UserInfo(c.Username, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.CredsFile != "":
		if _, err := os.Stat(c.CredsFile); err != nil {
			return nil, fmt.Errorf("stream %q: credsFile: %w", c.Name, err)
		}
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("stream %q: nkeyFile: %w", c.Name, err)
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// newSink returns the sink of c; nc is the service's NATS connection.
func newSink(c StreamConfig, nc *nats.Conn) (Sink, error) {
	client := &http.Client{Timeout: c.Timeout}
	base := strings.TrimRight(c.URL, "/")
	switch c.Sink {
	case KindWebhook:
		return &webhook{name: c.Name, url: c.URL, secret: []byte(c.Secret), client: client, now: time.Now}, nil
	case KindSplunk:
		return &splunk{url: base, token: c.Token, channel: newChannel(), index: c.Index, sourceType: c.SourceType,
			ackTimeout: c.AckTimeout, ackPoll: 500 * time.Millisecond, client: client}, nil
	case KindElastic:
		e := &elastic{url: base, index: c.Index, client: client, user: c.Username, password: c.Password}
		if c.APIKey != "" {
			e.auth = "ApiKey " + c.APIKey
		}
		return e, nil
	case KindFile:
		return &file{dir: c.Path, name: c.Name, maxBytes: c.MaxBytes, maxAge: c.MaxAge, keepFiles: c.KeepFiles, keepFor: c.KeepFor,
			now: time.Now}, nil
	case KindNATS:
		s := &natsSink{name: c.Name, subject: c.Subject, nc: nc}
		if c.URL != "" {
			opts, err := c.natsOptions()
			if err != nil {
				return nil, err
			}
			own, err := nats.Connect(c.URL, opts...)
			if err != nil {
				return nil, fmt.Errorf("stream %q: connect to %s: %w", c.Name, c.URL, err)
			}
			s.nc, s.own, s.url = own, true, c.URL
		}
		if s.nc == nil {
			return nil, fmt.Errorf("stream %q: no NATS connection", c.Name)
		}
		if c.JetStream {
			js, err := jetstream.New(s.nc)
			if err != nil {
				_ = s.Close()
				return nil, fmt.Errorf("stream %q: %w", c.Name, err)
			}
			s.js = js
		}
		return s, nil
	}
	return nil, fmt.Errorf("stream %q: unknown sink %q", c.Name, c.Sink)
}

// Config configures the Runner.
type Config struct {
	Streams []StreamConfig
	Store   audit.StreamStore
	// Owner names this instance in the leases.
	Owner string
	// NATS is the connection NATS sinks publish on.
	NATS *nats.Conn
	// ProductVersion goes into OCSF metadata.
	ProductVersion string
	// Personal reveals the personal fields as reads show them
	// (docs/personal-data.md); nil delivers events as stored.
	Personal Revealer
	// Registerer gets the stream metrics (auditq_stream_*); nil: none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Lease is how long a stream's lease lasts unrenewed; default 15s.
	Lease time.Duration
	// Poll is the wait before reading again after a read that reached the
	// end of the trail (nothing new, or everything new delivered); default
	// 250ms.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed delivery,
	// doubled on each failure in a row; defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// LagInterval is how often the lag metrics are refreshed; default 5s.
	LagInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Lease == 0 {
		c.Lease = 15 * time.Second
	}
	if c.Poll == 0 {
		c.Poll = 250 * time.Millisecond
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.LagInterval == 0 {
		c.LagInterval = 5 * time.Second
	}
	for i := range c.Streams {
		c.Streams[i].setDefaults()
	}
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	if c.Store == nil || c.Logger == nil || c.Owner == "" {
		return errors.New("streams: Store, Logger and Owner are required")
	}
	if c.Lease < time.Second || c.Poll <= 0 || c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff || c.LagInterval <= 0 {
		return errors.New("streams: Lease must be at least 1s; Poll, MinBackoff, LagInterval positive; MaxBackoff at least MinBackoff")
	}
	return validateStreams(c.Streams)
}

// ValidateStreams checks every stream of list (defaults applied) and that
// no name repeats; the error names the stream and the field.
func ValidateStreams(list []StreamConfig) error {
	list = append([]StreamConfig(nil), list...)
	for i := range list {
		list[i].setDefaults()
	}
	return validateStreams(list)
}

func validateStreams(list []StreamConfig) error {
	seen := map[string]bool{}
	for _, s := range list {
		if err := s.Validate(); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("stream %q: name: used twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// Runner delivers the configured streams until Stop.
type Runner struct {
	cfg     Config
	streams []*stream
	metrics *metrics
	encoded *encodings
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// stream is one configured stream and what this instance knows of it.
type stream struct {
	cfg    StreamConfig
	sink   Sink
	encode format.Encoder
	// encKey names the encoding: streams with the same key deliver the
	// same bytes for an event and share them (encodings).
	encKey string
	// scratch is the encoder's working space and perEvent the bytes
	// per event of its last buffer (encodeInto); only the stream's own
	// goroutine uses them.
	scratch  bytes.Buffer
	perEvent int
}

// New returns a Runner for cfg, its sinks built but not started; an error
// names the first bad setting.
func New(cfg Config) (*Runner, error) {
	cfg.Streams = append([]StreamConfig(nil), cfg.Streams...)
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, metrics: newMetrics(cfg.Registerer), encoded: newEncodings(cfg.Personal)}
	for _, sc := range cfg.Streams {
		enc, err := format.New(sc.Format, format.Options{ProductVersion: cfg.ProductVersion, Source: sc.Source})
		if err != nil {
			return nil, err
		}
		sink, err := newSink(sc, cfg.NATS)
		if err != nil {
			return nil, err
		}
		key := sc.Format
		if sc.Format == format.CloudEvents {
			key += " " + sc.Source // the one option that differs between streams
		}
		r.streams = append(r.streams, &stream{cfg: sc, sink: sink, encode: enc, encKey: key})
		if !sc.Paused {
			r.encoded.readers[key]++
		}
		r.metrics.init(sc.Name)
	}
	return r, nil
}

// Start delivers every stream that is not paused, each in its own
// goroutine, and refreshes the lag metrics, until Stop.
func (r *Runner) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for _, s := range r.streams {
		if s.cfg.Paused {
			continue
		}
		r.wg.Go(func() { r.run(ctx, s) })
	}
	if len(r.streams) > 0 {
		r.wg.Go(func() { r.watchLag(ctx) })
	}
}

// Stop ends delivery (a batch in flight is abandoned unconfirmed and sent
// again by whoever delivers next), waits for the goroutines and closes the
// sinks. It returns the first close error.
func (r *Runner) Stop() error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	var errs []error
	for _, s := range r.streams {
		errs = append(errs, s.sink.Close())
	}
	return errors.Join(errs...)
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// run delivers one stream: claim the lease, read after the cursor, send,
// advance; on failure record it and back off.
func (r *Runner) run(ctx context.Context, s *stream) {
	name, owner, lease := s.cfg.Name, r.cfg.Owner, r.cfg.Lease
	log := r.cfg.Logger.With("stream", name, "sink", s.cfg.Sink)
	var (
		cur     audit.StreamCursor
		owned   bool
		renewed time.Time
		pending *audit.StreamRead // read, not yet confirmed
		items   []Item
		sent    bool // pending confirmed by the sink, cursor not yet stored
		resend  bool // a delivery of pending failed: encode it again (an erasure may have come since)
		backoff = r.cfg.MinBackoff
	)
	fail := func(what string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		log.Warn("stream "+what+" failed; retrying", "err", err, "retry_in", backoff)
		ok := sleep(ctx, backoff)
		backoff = min(backoff*2, r.cfg.MaxBackoff)
		return ok
	}
	for ctx.Err() == nil {
		if !owned || time.Since(renewed) > lease/3 {
			c, ok, err := r.cfg.Store.Claim(ctx, name, owner, lease)
			if err != nil {
				if !fail("lease", err) {
					return
				}
				continue
			}
			if !ok {
				if owned {
					log.Warn("stream lease taken by another instance")
				}
				owned, pending, sent = false, nil, false
				if !sleep(ctx, lease/3) {
					return
				}
				continue
			}
			if !owned {
				cur, pending, sent = c, nil, false
			}
			owned, renewed = true, time.Now()
		}
		if pending == nil {
			rd, err := r.cfg.Store.Read(ctx, cur, s.cfg.BatchSize)
			if err != nil {
				if !fail("read", err) {
					return
				}
				continue
			}
			if len(rd.Events) == 0 && rd.Next == cur {
				if !sleep(ctx, r.cfg.Poll) {
					return
				}
				continue
			}
			items, err = r.encoded.encode(ctx, s, rd.Events)
			if err != nil {
				log.Error("stream cannot encode an event; retrying", "err", err)
				if !fail("encode", err) {
					return
				}
				continue
			}
			pending, sent, resend = &rd, len(rd.Events) == 0, false
		}
		if !sent && resend {
			var err error
			if items, err = r.encoded.encode(ctx, s, pending.Events); err != nil {
				if !fail("encode", err) {
					return
				}
				continue
			}
		}
		if !sent {
			sctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout+s.cfg.AckTimeout)
			err := s.sink.Send(sctx, items)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.metrics.failed.WithLabelValues(name).Inc()
				resend = true
				if ferr := r.cfg.Store.Fail(ctx, name, owner, truncate(err.Error(), 1000), lease); errors.Is(ferr, audit.ErrLeaseLost) {
					owned = false
				} else if ferr == nil {
					renewed = time.Now()
				}
				if !fail("delivery", err) {
					return
				}
				continue
			}
			sent = true
		}
		err := r.cfg.Store.Advance(ctx, name, owner, pending.Next, len(pending.Events), pending.Skipped, lease)
		if errors.Is(err, audit.ErrLeaseLost) {
			log.Warn("stream lease lost before the cursor was stored; the new owner sends the batch again")
			owned = false
			continue
		}
		if err != nil {
			if !fail("cursor update", err) {
				return
			}
			continue
		}
		r.metrics.delivered.WithLabelValues(name).Add(float64(len(pending.Events)))
		if pending.Skipped > 0 {
			r.metrics.skipped.WithLabelValues(name).Add(float64(pending.Skipped))
			log.Warn("stream skipped events deleted before delivery (retention ran while the stream was behind)",
				"skipped", pending.Skipped, "before_batch", pending.Next.NextSeq)
		}
		caughtUp := !pending.More
		cur, pending, items, renewed, backoff = pending.Next, nil, nil, time.Now(), r.cfg.MinBackoff
		// A read that reached the end of the trail took everything
		// committed: let the next batches gather for a poll interval
		// rather than deliver each as it commits (fewer, larger deliveries
		// under load). A stream that is behind reads again at once.
		if caughtUp && !sleep(ctx, r.cfg.Poll) {
			return
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// watchLag refreshes the lag gauges every LagInterval.
func (r *Runner) watchLag(ctx context.Context) {
	for {
		if _, err := r.List(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("stream lag not refreshed", "err", err)
		}
		if !sleep(ctx, r.cfg.LagInterval) {
			return
		}
	}
}

// List returns every configured stream with its state, from the store (so
// any instance answers the same), and refreshes the lag gauges. A stream
// that is paused by configuration is "paused"; one the store has not seen
// yet is "starting".
func (r *Runner) List(ctx context.Context) ([]contract.StreamView, error) {
	states, err := r.cfg.Store.States(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]audit.StreamState{}
	for _, st := range states {
		byName[st.Name] = st
	}
	now := time.Now()
	out := make([]contract.StreamView, 0, len(r.streams))
	for _, s := range r.streams {
		st, known := byName[s.cfg.Name]
		v := contract.StreamView{
			Name: s.cfg.Name, Sink: s.cfg.Sink, Format: s.cfg.Format, State: st.State,
			Cursor:    contract.StreamCursorView{NextBatchSeq: st.Cursor.NextSeq, AfterLeaf: st.Cursor.AfterLeaf},
			Delivered: st.Delivered, Failed: st.Failed, Skipped: st.Skipped, LagEvents: st.LagEvents,
			LastError: contract.Nullable(st.LastError), Owner: contract.Nullable(st.Owner),
		}
		if !known {
			v.State, v.Cursor = "starting", contract.StreamCursorView{NextBatchSeq: audit.StreamStart.NextSeq, AfterLeaf: audit.StreamStart.AfterLeaf}
		}
		if s.cfg.Paused {
			v.State = "paused"
		}
		if st.State != "retrying" {
			v.LastError = nil
		}
		if !st.LastErrorAt.IsZero() && v.LastError != nil {
			t := st.LastErrorAt
			v.LastErrorAt = &t
		}
		if !st.DeliveredAt.IsZero() {
			t := st.DeliveredAt
			v.DeliveredAt = &t
		}
		if st.LagEvents > 0 && !st.LagSince.IsZero() {
			v.LagSeconds = max(now.Sub(st.LagSince).Seconds(), 0)
		}
		out = append(out, v)
		r.metrics.lagEvents.WithLabelValues(v.Name).Set(float64(v.LagEvents))
		r.metrics.lagSeconds.WithLabelValues(v.Name).Set(v.LagSeconds)
	}
	return out, nil
}

// metrics are the auditq_stream_* metrics, by stream.
type metrics struct {
	lagEvents, lagSeconds      *prometheus.GaugeVec
	delivered, failed, skipped *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditq_stream_lag_events", Help: "Committed events a log stream has not delivered yet (leaves of the batches after its cursor).",
		}, []string{"stream"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditq_stream_lag_seconds", Help: "Age of the oldest committed event a log stream has not delivered yet; 0 when it is caught up.",
		}, []string{"stream"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditq_stream_delivered_total", Help: "Events a log stream's sink confirmed (by this instance).",
		}, []string{"stream"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditq_stream_failed_total", Help: "Failed delivery attempts of a log stream (each is retried).",
		}, []string{"stream"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditq_stream_skipped_total", Help: "Events retention deleted before a log stream delivered them.",
		}, []string{"stream"}),
	}
	if reg != nil {
		reg.MustRegister(m.lagEvents, m.lagSeconds, m.delivered, m.failed, m.skipped)
	}
	return m
}

// init creates a stream's series at zero, so that they exist before the
// first delivery.
func (m *metrics) init(name string) {
	m.lagEvents.WithLabelValues(name)
	m.lagSeconds.WithLabelValues(name)
	m.delivered.WithLabelValues(name)
	m.failed.WithLabelValues(name)
	m.skipped.WithLabelValues(name)
}
