package natsjs

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A fetch asks for at most fetchBatchMax messages and lives at most
// fetchExpiry. A pull request can be lost without notice when a
// JetStream cluster node dies (seen in TestClusterFailoverR3LosesNothing);
// nats.go ends a fetch by itself one second after its expiry, so a lost
// one stalls ingest for at most about 2 s. The short expiry also bounds
// how long a stop waits for the fetch under way to end (see
// fetcher.stop). An idle subject costs one pull request a second.
const (
	fetchBatchMax = 256
	fetchExpiry   = time.Second
)

// fetcher pulls one consumer's messages by fetch requests of at most batch
// messages (and at most maxBytes bytes, when maxBytes > 0), one after
// another, and hands them out through next. Messages pulled ahead are at
// most those of the fetch under way plus batch more waiting in msgs: each
// fetch sizes nats.go's buffers to its own batch, with room for the
// server's status messages beside them, so a full buffer never drops a
// message ("slow consumer"), and no buffer sized for a million messages
// (what nats.go's Messages allocates when bounded by bytes) is held per
// subscription.
//
// On stop it pulls no more and, once the fetch under way has ended, naks
// every message it pulled and did not hand out, so another instance or a
// restart gets them at once instead of after the ack wait.
type fetcher struct {
	cons     jetstream.Consumer
	batch    int
	maxBytes int
	log      *slog.Logger

	msgs     chan jetstream.Msg
	errs     chan error    // a failed fetch, for next to report (at most one waiting)
	stopping chan struct{} // closed by stop
	done     chan struct{} // closed once no fetch is under way and the leftovers are naked
	once     sync.Once
}

func newFetcher(cons jetstream.Consumer, batch, maxBytes int, log *slog.Logger) *fetcher {
	f := &fetcher{
		cons: cons, batch: batch, maxBytes: maxBytes, log: log,
		msgs: make(chan jetstream.Msg, batch), errs: make(chan error, 1),
		stopping: make(chan struct{}), done: make(chan struct{}),
	}
	go f.run()
	return f
}

// run fetches until stop, then naks what it pulled and did not hand out.
func (f *fetcher) run() {
	defer close(f.done)
	var left []jetstream.Msg
	for !f.stopped() {
		left = f.fetch(left)
	}
	for {
		select {
		case jm := <-f.msgs:
			left = append(left, jm)
		default:
			nakAll(f.log, left)
			return
		}
	}
}

// fetch runs one fetch, handing its messages to msgs; the messages that
// arrive after stop are appended to left, which it returns.
func (f *fetcher) fetch(left []jetstream.Msg) []jetstream.Msg {
	opts := []jetstream.FetchOpt{jetstream.FetchMaxWait(fetchExpiry)}
	if f.maxBytes > 0 {
		opts = append(opts, jetstream.FetchMaxBytes(f.maxBytes))
	}
	b, err := f.cons.Fetch(f.batch, opts...)
	if err != nil {
		f.fail(err)
		return left
	}
	for jm := range b.Messages() {
		select {
		case f.msgs <- jm:
		case <-f.stopping:
			left = append(left, jm)
		}
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrConsumerLeadershipChanged) && !errors.Is(err, jetstream.ErrNoHeartbeat) {
		f.fail(err) // a new leader or a lost pull: pull again at once
	}
	return left
}

// fail hands err to next and waits a second before the next fetch (or
// until stop); a closed connection stops the fetcher.
func (f *fetcher) fail(err error) {
	if errors.Is(err, nats.ErrConnectionClosed) {
		f.stop()
		return
	}
	select {
	case f.errs <- err:
	default: // one is waiting already
	}
	select {
	case <-time.After(time.Second):
	case <-f.stopping:
	}
}

// next returns the next message, waiting at most wait (0: as long as it
// takes): nats.ErrTimeout when none came in time, a failed fetch's error
// (the fetcher goes on), or jetstream.ErrMsgIteratorClosed after stop.
func (f *fetcher) next(wait time.Duration) (jetstream.Msg, error) {
	if f.stopped() {
		return nil, jetstream.ErrMsgIteratorClosed
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case jm := <-f.msgs:
		return jm, nil
	case err := <-f.errs:
		return nil, err
	case <-timeout:
		return nil, nats.ErrTimeout
	case <-f.stopping:
		return nil, jetstream.ErrMsgIteratorClosed
	}
}

func (f *fetcher) stopped() bool {
	select {
	case <-f.stopping:
		return true
	default:
		return false
	}
}

// stop ends fetching; done closes once the fetch under way has ended and
// the messages not handed out are naked.
func (f *fetcher) stop() {
	f.once.Do(func() { close(f.stopping) })
}

// nakAll naks jms for redelivery at once, logging each failure (that
// message then comes back after the ack wait).
func nakAll(log *slog.Logger, jms []jetstream.Msg) {
	for _, jm := range jms {
		if err := jm.Nak(); err != nil {
			log.Warn("nak at stop failed; the message comes back after the ack wait", "subject", jm.Subject(), "err", err)
		}
	}
}
