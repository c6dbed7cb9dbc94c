package natsjs

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A pull request lives pullExpiry; while it waits, the server holding it
// sends a heartbeat every pullHeartbeat, and after two missed ones the
// client pulls again. A pull request can be lost without notice when a
// JetStream cluster node dies (seen in TestClusterFailoverR3LosesNothing:
// ingest stood still for 30 s after the stream leader was killed, with
// the library's defaults of 30 s and 15 s); these bound that stall to about
// 4 s, for a heartbeat every 2 s per waiting pull.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// What waits in a puller's queue for next, beyond what the pull itself
// bounds: the callback stops taking messages once the queue holds
// queueMaxMsgs messages or queueMaxBytes bytes of payload (one more
// message, however large, always fits), and goes on once next has taken
// it down to half of both. Waiting for half rather than for one free
// place wakes the callback once per many messages under load, not once
// per message.
const (
	queueMaxMsgs  = 256
	queueMaxBytes = 128 << 10
)

// puller pulls one consumer's messages with nats.go's Consume and hands
// them out through next. Consume delivers to a callback, which queues the
// message and waits while the queue is full: what is pulled ahead is
// bounded by the pull options (bytes or messages), in nats.go's queue of
// the subscription, which grows only as messages arrive, plus this
// queue. (nats.go's Messages instead allocates a buffer of the bound in
// messages: a million slots, 8 MB, per subscription when bounded by
// bytes; and a bound by count fills it beside the server's status
// messages and drops one, "slow consumer".)
//
// On stop it pulls no more and, once nats.go has delivered what it had
// received, naks every message it pulled and did not hand out, so another
// instance or a restart gets them at once instead of after the ack wait.
type puller struct {
	log      *slog.Logger
	cc       jetstream.ConsumeContext
	stopping chan struct{} // closed by stop
	done     chan struct{} // closed once no message can arrive any more and the leftovers are naked
	once     sync.Once

	mu      sync.Mutex
	queue   []jetstream.Msg // queue[head:] waits; the backing array is reused once it is empty
	head    int
	bytes   int           // payload bytes waiting
	waiters int           // calls of next waiting for a message
	ready   chan struct{} // a message waits for one of the waiters
	full    bool          // the callback waits for room
	room    chan struct{} // the queue went down to half while the callback waited
}

// newPuller starts pulling from cons with opts (the bound of what is
// pulled ahead, expiry, heartbeat).
func newPuller(cons jetstream.Consumer, log *slog.Logger, opts ...jetstream.PullConsumeOpt) (*puller, error) {
	p := &puller{
		log: log, stopping: make(chan struct{}), done: make(chan struct{}),
		ready: make(chan struct{}, 1), room: make(chan struct{}, 1),
	}
	opts = append(opts, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, nats.ErrConnectionClosed) {
			log.Warn("pull failed; retrying", "err", err)
		}
	}))
	cc, err := cons.Consume(p.deliver, opts...)
	if err != nil {
		return nil, err
	}
	p.cc = cc
	go p.finish()
	return p, nil
}

// deliver is Consume's callback: it queues jm, first waiting for room
// while the queue is full (until stop: then it queues jm for the nak at
// the end).
func (p *puller) deliver(jm jetstream.Msg) {
	p.mu.Lock()
	for len(p.queue)-p.head >= queueMaxMsgs || p.bytes >= queueMaxBytes {
		p.full = true
		p.mu.Unlock()
		select {
		case <-p.room:
		case <-p.stopping:
		}
		p.mu.Lock()
		if p.stopped() {
			break
		}
	}
	p.full = false
	p.queue = append(p.queue, jm)
	p.bytes += len(jm.Data())
	if p.waiters > 0 {
		signal(p.ready)
	}
	p.mu.Unlock()
}

// signal wakes the one waiting on c, if any; a signal not yet taken
// stands.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// finish waits until the subscription is closed (stop, or nats.go ending
// it: a deleted consumer, a closed connection), then naks what was pulled
// and not handed out.
func (p *puller) finish() {
	defer close(p.done)
	select {
	case <-p.cc.Closed():
		p.stop()
	case <-p.stopping:
		p.cc.Drain() // delivers what arrived, then closes
		<-p.cc.Closed()
	}
	p.mu.Lock()
	left := p.queue[p.head:]
	p.queue, p.head, p.bytes = nil, 0, 0
	p.mu.Unlock()
	nakAll(p.log, left)
}

// next returns the next message, waiting at most wait (0: as long as it
// takes): nats.ErrTimeout when none came in time, or
// jetstream.ErrMsgIteratorClosed after stop.
func (p *puller) next(wait time.Duration) (jetstream.Msg, error) {
	var timeout <-chan time.Time
	for {
		if p.stopped() {
			return nil, jetstream.ErrMsgIteratorClosed
		}
		p.mu.Lock()
		if p.head < len(p.queue) {
			jm := p.queue[p.head]
			p.queue[p.head] = nil
			p.head++
			p.bytes -= len(jm.Data())
			if p.head == len(p.queue) {
				p.queue, p.head = p.queue[:0], 0
			}
			if p.full && len(p.queue)-p.head <= queueMaxMsgs/2 && p.bytes <= queueMaxBytes/2 {
				signal(p.room)
			}
			if p.head < len(p.queue) && p.waiters > 0 {
				signal(p.ready) // the signal taken may have been for the messages left
			}
			p.mu.Unlock()
			return jm, nil
		}
		p.waiters++
		p.mu.Unlock()
		if timeout == nil && wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		var err error
		select {
		case <-p.ready:
		case <-timeout:
			err = nats.ErrTimeout
		case <-p.stopping:
			err = jetstream.ErrMsgIteratorClosed
		}
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

func (p *puller) stopped() bool {
	select {
	case <-p.stopping:
		return true
	default:
		return false
	}
}

// stop ends pulling; done closes once the last messages nats.go had
// received are delivered and those not handed out are naked.
func (p *puller) stop() {
	p.once.Do(func() { close(p.stopping) })
}

// nakAll naks jms for redelivery at once, logging a failure (that
// message then comes back after the ack wait).
func nakAll(log *slog.Logger, jms []jetstream.Msg) {
	for i, jm := range jms {
		if err := jm.Nak(); err != nil {
			log.Warn("nak at stop failed; the messages come back after the ack wait", "subject", jm.Subject(), "messages", len(jms)-i, "err", err)
			if errors.Is(err, nats.ErrConnectionClosed) {
				return
			}
		}
	}
}
