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

// handoff is how many pulled messages wait for next beyond what the pull
// itself bounds.
const handoff = 64

// puller pulls one consumer's messages with nats.go's Consume and hands
// them out through next. Consume delivers to a callback, which waits until
// next takes the message: what is pulled ahead is bounded by the pull
// options alone (bytes or messages), in nats.go's queue of the
// subscription, which grows only as messages arrive. (nats.go's Messages
// instead allocates a buffer of the bound in messages, a million slots
// (8 MB) per subscription when bounded by bytes, and drops a message,
// "slow consumer", when a bound by count fills it beside the server's
// status messages.)
//
// On stop it pulls no more and, once nats.go has delivered what it had
// received, naks every message it pulled and did not hand out, so another
// instance or a restart gets them at once instead of after the ack wait.
type puller struct {
	log      *slog.Logger
	cc       jetstream.ConsumeContext
	msgs     chan jetstream.Msg
	stopping chan struct{} // closed by stop
	done     chan struct{} // closed once no message can arrive any more and the leftovers are naked
	once     sync.Once
	left     []jetstream.Msg // arrived after stop; only the callback appends, before cc.Closed()
}

// newPuller starts pulling from cons with opts (the bound of what is
// pulled ahead, expiry, heartbeat).
func newPuller(cons jetstream.Consumer, log *slog.Logger, opts ...jetstream.PullConsumeOpt) (*puller, error) {
	p := &puller{
		log: log, msgs: make(chan jetstream.Msg, handoff),
		stopping: make(chan struct{}), done: make(chan struct{}),
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

// deliver is Consume's callback: it waits until next takes jm, or keeps
// it for the nak at the end once stop was called.
func (p *puller) deliver(jm jetstream.Msg) {
	select {
	case p.msgs <- jm:
	case <-p.stopping:
		p.left = append(p.left, jm)
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
	left := p.left
	for {
		select {
		case jm := <-p.msgs:
			left = append(left, jm)
		default:
			nakAll(p.log, left)
			return
		}
	}
}

// next returns the next message, waiting at most wait (0: as long as it
// takes): nats.ErrTimeout when none came in time, or
// jetstream.ErrMsgIteratorClosed after stop.
func (p *puller) next(wait time.Duration) (jetstream.Msg, error) {
	select {
	case <-p.stopping:
		return nil, jetstream.ErrMsgIteratorClosed
	default:
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case jm := <-p.msgs:
		return jm, nil
	case <-timeout:
		return nil, nats.ErrTimeout
	case <-p.stopping:
		return nil, jetstream.ErrMsgIteratorClosed
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
