package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"
)

// Metadata keys the Subscriber sets on every Watermill message, besides the
// NATS headers of the message (copied verbatim, first value of each).
const (
	MetaStream    = "nats_stream"
	MetaSequence  = "nats_sequence"
	MetaSubject   = "nats_subject"
	MetaMsgID     = "nats_msg_id"
	MetaDelivered = "nats_delivered"
	MetaTimestamp = "nats_timestamp" // when the stream stored it, RFC 3339 with nanoseconds
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	Stream string
	// Consumer maps a topic (subject) to the durable consumer that serves it.
	Consumer func(topic string) string
	// InFlight is how many messages of one topic may be handled at once per
	// process.
	InFlight int
	// InFlightFor optionally lowers InFlight per topic, e.g. for jobs whose
	// messages are large (a bulk job holds up to 1,000 events in memory).
	InFlightFor map[string]int
	// BatchFor hands the messages of the topics it names to the router in
	// batches of up to that many: one Watermill message per batch, whose
	// messages Unbatch returns (see Unbatch). A topic absent from it gets
	// one Watermill message per JetStream message.
	BatchFor map[string]int
	// InFlightBytes bounds the bytes of the messages handed to handlers
	// and not yet settled, all topics together; a message larger than the
	// bound waits until nothing else is in flight. Each topic's pull buffer
	// then holds at most the server's largest message plus 128 KiB (by
	// bytes, not by count). Zero means no byte bound: a buffer of
	// InFlight messages per topic.
	InFlightBytes int64
	// AckWait is the consumer's ack wait; the Subscriber reports progress
	// every AckWait/3 while a handler runs so a slow handler keeps its message.
	AckWait time.Duration
	// NakDelay returns how long JetStream waits before redelivering a
	// message whose handler failed, given how often it was delivered.
	NakDelay func(delivered uint64) time.Duration
	// CloseTimeout bounds how long Close waits for handlers still running;
	// their messages are left unacked and JetStream redelivers them.
	CloseTimeout time.Duration
	Logger       *slog.Logger
}

func (c *SubscriberConfig) setDefaults() {
	if c.InFlight <= 0 {
		c.InFlight = 2
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.NakDelay == nil {
		c.NakDelay = DefaultNakDelay
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a missing stream or consumer mapping, or a negative
// byte bound.
func (c SubscriberConfig) Validate() error {
	if c.Stream == "" || c.Consumer == nil {
		return errors.New("natsjs: SubscriberConfig needs Stream and Consumer")
	}
	if c.InFlightBytes < 0 {
		return errors.New("natsjs: SubscriberConfig.InFlightBytes must not be negative")
	}
	return nil
}

// DefaultNakDelay backs off redeliveries of failing messages: 5 s, 10 s, 20 s
// ... up to 2 minutes. Messages are never terminated.
func DefaultNakDelay(delivered uint64) time.Duration {
	d := 5 * time.Second
	for i := uint64(1); i < delivered && d < 2*time.Minute; i++ {
		d *= 2
	}
	return min(d, 2*time.Minute)
}

// Subscriber is a Watermill subscriber over JetStream pull consumers that the
// service created beforehand (it only binds; it never creates or deletes
// consumers, so Close cannot lose a durable's position). A message is acked
// only after the router acks it, naked with a delay when the handler fails,
// and left alone (for redelivery after the ack wait) when the process stops
// first. It is safe for concurrent use.
type Subscriber struct {
	js  jetstream.JetStream
	cfg SubscriberConfig

	// bytes holds InFlightBytes (nil: no byte bound).
	bytes *semaphore.Weighted

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
	iters   []*puller
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber on js, or an error for a bad config.
func NewSubscriber(js jetstream.JetStream, cfg SubscriberConfig) (*Subscriber, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Subscriber{js: js, cfg: cfg, closing: make(chan struct{})}
	if cfg.InFlightBytes > 0 {
		s.bytes = semaphore.NewWeighted(cfg.InFlightBytes)
	}
	return s, nil
}

// Subscribe starts pulling topic's messages from its durable consumer. The
// channel is closed when ctx ends or the Subscriber closes. It fails when the
// consumer does not exist.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("natsjs: subscriber closed")
	}
	name := s.cfg.Consumer(topic)
	cons, err := s.js.Consumer(ctx, s.cfg.Stream, name)
	if err != nil {
		return nil, fmt.Errorf("bind consumer %s on stream %s for %s: %w", name, s.cfg.Stream, topic, err)
	}
	inFlight := s.cfg.InFlight
	if n, ok := s.cfg.InFlightFor[topic]; ok && n > 0 && n < inFlight {
		inFlight = n
	}
	opts := []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(inFlight)}
	if s.bytes != nil {
		// Bounded by bytes: one largest message plus headers beyond a
		// refill threshold of 64 KiB, so that a pull never asks for fewer
		// bytes than the next message may hold (it would stall).
		maxMsg := int(s.js.Conn().MaxPayload()) + 64<<10
		opts = []jetstream.PullConsumeOpt{jetstream.PullMaxBytes(maxMsg + 64<<10), jetstream.PullThresholdBytes(64 << 10)}
	}
	opts = append(opts, jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
	it, err := newPuller(cons, s.cfg.Logger.With("topic", topic), opts...)
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", name, err)
	}
	s.iters = append(s.iters, it)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-it.done
	}()

	out := make(chan *message.Message)
	// In-flight work finishes during a graceful stop: message contexts are
	// not cancelled by shutdown, only bounded by the handler deadline.
	msgCtx := context.WithoutCancel(ctx)
	prog := newProgress(max(s.cfg.AckWait/3, 100*time.Millisecond))
	var workers sync.WaitGroup
	workerCount := inFlight
	if n := s.cfg.BatchFor[topic]; n > 1 {
		workers.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer workers.Done()
			s.gather(ctx, msgCtx, topic, it, prog, out, n, inFlight)
		}()
		workerCount = 0 // one gatherer instead of a worker per message
	}
	for range workerCount {
		workers.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer workers.Done()
			s.work(ctx, msgCtx, topic, it, prog, out)
		}()
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		it.stop()
	}()
	stopped := make(chan struct{})
	go prog.run(stopped)
	go func() {
		workers.Wait()
		close(stopped)
		close(out)
	}()
	return out, nil
}

// pullFailed handles a failed pull of topic: it reports false when the
// iterator is closed, or the Subscriber closes or ctx ends within the
// second it waits after logging err before the next pull.
func (s *Subscriber) pullFailed(ctx context.Context, topic string, err error) bool {
	if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
		return false
	}
	s.cfg.Logger.Warn("pull failed; retrying", "topic", topic, "err", err)
	select {
	case <-time.After(time.Second):
		return true
	case <-s.closing:
		return false
	case <-ctx.Done():
		return false
	}
}

// work hands messages one at a time to the router and settles each.
func (s *Subscriber) work(ctx, msgCtx context.Context, topic string, it *puller, prog *progress, out chan<- *message.Message) {
	for {
		jm, err := it.next(0)
		if err != nil {
			if !s.pullFailed(ctx, topic, err) {
				return
			}
			continue
		}
		s.handle(ctx, msgCtx, topic, it, jm, prog, out)
	}
}

func (s *Subscriber) handle(ctx, msgCtx context.Context, topic string, it *puller, jm jetstream.Msg, prog *progress, out chan<- *message.Message) {
	// Waiting for the byte budget or for the router counts as in progress,
	// so a message that waits does not come back as a redelivery.
	prog.add(jm)
	defer prog.remove(jm)
	if s.bytes != nil {
		n := min(msgSize(jm), s.cfg.InFlightBytes)
		if err := s.acquire(ctx, s.bytes, n); err != nil {
			s.giveBack(topic, it, jm) // stopping before it was handed over
			return
		}
		defer s.bytes.Release(n)
	}
	msg, delivered := toWatermill(jm)
	msg.SetContext(msgCtx)

	select {
	case out <- msg:
	case <-s.closing:
		s.giveBack(topic, it, jm) // never handed over
		return
	case <-ctx.Done():
		s.giveBack(topic, it, jm)
		return
	}

	// After the close signal, only the handler's outcome or the deadline
	// ends the wait: a closed channel left in the select would fire on
	// every turn and spin (one core per in-flight message, starving the
	// very handlers the shutdown waits for).
	closing := s.closing
	var deadline <-chan time.Time
	for {
		select {
		case <-msg.Acked():
			if err := jm.Ack(); err != nil {
				// The row is committed; a lost ack means one redelivery that
				// the unique event id turns into a counted duplicate.
				s.cfg.Logger.Warn("ack failed; message will be redelivered", "topic", topic, "id", msg.UUID, "err", err)
			}
			return
		case <-msg.Nacked():
			if err := jm.NakWithDelay(s.cfg.NakDelay(delivered)); err != nil {
				s.cfg.Logger.Warn("nak failed; message will be redelivered after the ack wait", "topic", topic, "id", msg.UUID, "err", err)
			}
			return
		case <-closing:
			closing = nil
			deadline = time.After(s.cfg.CloseTimeout)
		case <-deadline:
			s.cfg.Logger.Warn("handler still running at shutdown; leaving message for redelivery", "topic", topic, "id", msg.UUID)
			return
		}
	}
}

// giveBack naks messages pulled from it and never handed to a handler,
// once it has stopped and no pull of it is under way (a nak earlier would
// have the server deliver the message to that pull again), so that
// another instance or a restart gets them at once instead of after the
// ack wait.
func (s *Subscriber) giveBack(topic string, it *puller, jms ...jetstream.Msg) {
	<-it.done
	nakAll(s.cfg.Logger.With("topic", topic), jms)
}

// acquire takes n of sem (bytes of the byte budget, or a batch's slots),
// waiting until they are free; it fails when ctx ends or the Subscriber
// closes first.
func (s *Subscriber) acquire(ctx context.Context, sem *semaphore.Weighted, n int64) error {
	if sem.TryAcquire(n) {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return sem.Acquire(ctx, n)
}

// msgSize is what a message weighs against the byte budget: its payload
// and headers.
func msgSize(jm jetstream.Msg) int64 {
	n := int64(len(jm.Data()))
	for k, vs := range jm.Headers() {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}

// progress keeps the messages of one subscription that handlers are
// working on and, every interval, tells JetStream that those handed over
// at least an interval ago are still in progress, so a slow handler keeps
// its message past the ack wait. One ticker serves all of them: a ticker
// per message would cost a noticeable share of the subscriber's CPU under
// load.
type progress struct {
	every time.Duration
	mu    sync.Mutex
	since map[jetstream.Msg]time.Time
}

func newProgress(every time.Duration) *progress {
	return &progress{every: every, since: make(map[jetstream.Msg]time.Time)}
}

func (p *progress) add(jm jetstream.Msg) {
	p.mu.Lock()
	p.since[jm] = time.Now()
	p.mu.Unlock()
}

func (p *progress) remove(jm jetstream.Msg) {
	p.mu.Lock()
	delete(p.since, jm)
	p.mu.Unlock()
}

// due returns the messages handed over before cutoff.
func (p *progress) due(cutoff time.Time) []jetstream.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []jetstream.Msg
	for jm, t := range p.since {
		if t.Before(cutoff) {
			out = append(out, jm)
		}
	}
	return out
}

// run reports progress every interval until done closes: after the
// subscription's last worker returned, so messages still being handled
// during a graceful stop keep being reported.
func (p *progress) run(done <-chan struct{}) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			for _, jm := range p.due(time.Now().Add(-p.every)) {
				_ = jm.InProgress()
			}
		}
	}
}

// toWatermill converts a JetStream message. The UUID is the message id the
// publisher named in header _watermill_message_uuid (HeaderMessageID), else
// its Nats-Msg-Id, else "<stream>:<sequence>": all stable across
// redeliveries. The two headers differ only on a replay from the poison
// stream (Poison.Republish): the message keeps its original id, so its
// event is stored under the id it would have had, while its Nats-Msg-Id is
// the replay's own, which the job stream has not seen yet.
func toWatermill(jm jetstream.Msg) (*message.Message, uint64) {
	h := jm.Headers()
	id := h.Get(HeaderMessageID)
	if id == "" {
		id = h.Get(nats.MsgIdHdr)
	}
	scheduler := h.Get("Nats-Scheduler")
	if scheduler != "" {
		// A fired schedule copies the schedule message's headers on every
		// firing: a copied id would repeat, the stream sequence does not.
		id = ""
	}
	meta, metaErr := jm.Metadata()
	if id == "" && metaErr == nil {
		id = meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)
	}
	msg := message.NewMessage(id, jm.Data())
	// NewMessage's empty map holds up to 8 entries in its first group;
	// a message with more headers gets a map of the right size instead.
	md := msg.Metadata
	if n := len(h) + 6; n > 8 {
		md = make(message.Metadata, n)
		msg.Metadata = md
	}
	for k, v := range h {
		if len(v) > 0 && !strings.HasPrefix(k, "Nats-") {
			md[k] = v[0]
		}
	}
	md[MetaSubject] = jm.Subject()
	var delivered uint64 = 1
	if metaErr == nil {
		md[MetaStream] = meta.Stream
		md[MetaSequence] = strconv.FormatUint(meta.Sequence.Stream, 10)
		md[MetaDelivered] = strconv.FormatUint(meta.NumDelivered, 10)
		md[MetaTimestamp] = meta.Timestamp.UTC().Format(time.RFC3339Nano)
		delivered = meta.NumDelivered
	}
	if v := h.Get(nats.MsgIdHdr); v != "" {
		md[MetaMsgID] = v
	}
	// Headers a fired schedule carries; kept for handlers that key on them.
	if scheduler != "" {
		md["Nats-Scheduler"] = scheduler
	}
	if v := h.Get("Nats-Schedule-Next"); v != "" {
		md["Nats-Schedule-Next"] = v
	}
	return msg, delivered
}

// Close stops pulling, waits up to CloseTimeout for messages already handed
// to handlers to settle, and returns. It does not close the NATS connection.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	for _, it := range s.iters {
		it.stop()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(s.cfg.CloseTimeout + time.Second):
		return errors.New("natsjs: subscriber close timed out")
	}
}
