package natsjs

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"
)

// batchKey is the context key under which a batch message carries its
// messages.
type batchKey struct{}

// Unbatch returns the messages a batch message carries (see
// SubscriberConfig.BatchFor), each as the Subscriber hands a message over
// on its own (UUID, metadata, payload), or nil for a message that is not a
// batch. The handler settles each of them: Ack once it is done with it
// (its event committed, or the message poisoned), Nack or nothing to have
// JetStream redeliver it. When the router settles the batch message, the
// Subscriber acks with JetStream every message the handler acked and naks
// (with the redelivery delay) every other one, whether the batch message
// was acked or nacked.
func Unbatch(msg *message.Message) []*message.Message {
	msgs, _ := msg.Context().Value(batchKey{}).([]*message.Message)
	return msgs
}

// batchLinger is how long gathering waits for one more message before it
// hands over the batch it has: under load messages follow each other far
// faster, and when they trickle in a batch of one costs one message this
// much latency.
const batchLinger = 200 * time.Microsecond

// batched is one JetStream message of a batch being gathered.
type batched struct {
	jm        jetstream.Msg
	msg       *message.Message
	delivered uint64
	size      int64 // what it weighs against the byte budget (0: none)
}

// gather hands topic's messages to the router in batches of up to size:
// one takes the first message that comes, then every message that
// follows within batchLinger, as long as slots (at most inFlight messages
// of the topic handed over and not yet settled) and the byte budget
// allow. Each batch is settled by a goroutine of its own; gather returns
// once the iterator stops and every batch is settled.
func (s *Subscriber) gather(ctx, msgCtx context.Context, topic string, it *puller, prog *progress, out chan<- *message.Message, size, inFlight int) {
	slots := semaphore.NewWeighted(int64(inFlight))
	var settling sync.WaitGroup
	defer settling.Wait()
	// The arrays of settled batches, for the next ones: a batch array of
	// size entries is kilobytes, allocated afresh for every batch it would
	// be much of what the subscriber allocates under load.
	arrays := sync.Pool{New: func() any { a := make([]batched, 0, size); return &a }}
	var carry *batched // took a slot and a message, waits for its bytes
	for {
		array := arrays.Get().(*[]batched)
		batch := *array
		if carry != nil {
			if !s.weigh(ctx, carry) {
				s.abandon(topic, it, prog, slots, nil, carry)
				return
			}
			batch, carry = append(batch, *carry), nil
		}
		for len(batch) < size {
			wait := batchLinger
			if len(batch) == 0 {
				wait = 0 // the first message: wait as long as it takes
				if err := s.acquire(ctx, slots, 1); err != nil {
					return
				}
			} else if !slots.TryAcquire(1) {
				break
			}
			jm, err := it.next(wait)
			if err != nil {
				slots.Release(1)
				if errors.Is(err, nats.ErrTimeout) {
					break
				}
				if len(batch) > 0 {
					break // hand over what we have; the error comes back on the next pull
				}
				if !s.pullFailed(ctx, topic, err) {
					return
				}
				continue
			}
			// Waiting for the byte budget or for the router counts as in
			// progress, so a message that waits does not come back as a
			// redelivery.
			prog.add(jm)
			b := batched{jm: jm}
			b.msg, b.delivered = toWatermill(jm)
			if s.bytes != nil {
				b.size = min(msgSize(jm), s.cfg.InFlightBytes)
				if !s.bytes.TryAcquire(b.size) {
					c := b     // a copy, so that b itself stays off the heap
					carry = &c // first of the next batch, once the budget frees up
					break
				}
			}
			batch = append(batch, b)
		}
		if len(batch) == 0 {
			arrays.Put(array)
			continue // only a carried message: weigh it at the top
		}
		msg := s.batchMessage(msgCtx, batch)
		select {
		case out <- msg:
		case <-s.closing:
			s.abandon(topic, it, prog, slots, batch, carry)
			return
		case <-ctx.Done():
			s.abandon(topic, it, prog, slots, batch, carry)
			return
		}
		settling.Add(1)
		go func() {
			defer settling.Done()
			s.settleBatch(topic, msg, batch)
			s.release(prog, slots, batch)
			clear(batch)
			*array = batch[:0]
			arrays.Put(array)
		}()
	}
}

// weigh takes b's bytes of the byte budget, waiting until they are free;
// false when the Subscriber closes or ctx ends first.
func (s *Subscriber) weigh(ctx context.Context, b *batched) bool {
	return s.bytes == nil || s.acquire(ctx, s.bytes, b.size) == nil
}

// abandon gives back, at a stop, a batch never handed over and the
// carried message that never got its bytes (nil: none): it stops
// reporting their progress, returns their slots and bytes, and naks them
// (giveBack).
func (s *Subscriber) abandon(topic string, it *puller, prog *progress, slots *semaphore.Weighted, batch []batched, carry *batched) {
	s.release(prog, slots, batch)
	jms := make([]jetstream.Msg, 0, len(batch)+1)
	for _, b := range batch {
		jms = append(jms, b.jm)
	}
	if carry != nil {
		prog.remove(carry.jm)
		slots.Release(1)
		jms = append(jms, carry.jm)
	}
	s.giveBack(topic, it, jms...)
}

// release returns a batch's slots and bytes and stops reporting its
// progress.
func (s *Subscriber) release(prog *progress, slots *semaphore.Weighted, batch []batched) {
	for _, b := range batch {
		prog.remove(b.jm)
		if s.bytes != nil {
			s.bytes.Release(b.size)
		}
	}
	slots.Release(int64(len(batch)))
}

// batchMessage is the Watermill message of a batch: no payload, UUID
// "batch:<first>..<last>" of its messages' UUIDs, the messages in its
// context (Unbatch).
func (s *Subscriber) batchMessage(msgCtx context.Context, batch []batched) *message.Message {
	msgs := make([]*message.Message, len(batch))
	for i, b := range batch {
		msgs[i] = b.msg
	}
	id := "batch:" + msgs[0].UUID
	if len(msgs) > 1 {
		id += ".." + msgs[len(msgs)-1].UUID + " (" + strconv.Itoa(len(msgs)) + ")"
	}
	msg := message.NewMessage(id, nil)
	msg.SetContext(context.WithValue(msgCtx, batchKey{}, msgs))
	return msg
}

// settleBatch waits until the router settles msg, then acks with
// JetStream each message of batch its handler acked and naks each other
// one with the redelivery delay. After the close signal only the router's
// settlement or the CloseTimeout ends the wait; then the unsettled
// messages are left for redelivery after the ack wait.
func (s *Subscriber) settleBatch(topic string, msg *message.Message, batch []batched) {
	closing := s.closing
	var deadline <-chan time.Time
	for {
		select {
		case <-msg.Acked():
		case <-msg.Nacked():
		case <-closing:
			closing = nil
			deadline = time.After(s.cfg.CloseTimeout)
			continue
		case <-deadline:
			s.cfg.Logger.Warn("handler still running at shutdown; leaving messages for redelivery", "topic", topic, "id", msg.UUID)
			return
		}
		break
	}
	for _, b := range batch {
		if acked(b.msg) {
			if err := b.jm.Ack(); err != nil {
				// The row is committed; a lost ack means one redelivery that
				// the unique event id turns into a counted duplicate.
				s.cfg.Logger.Warn("ack failed; message will be redelivered", "topic", topic, "id", b.msg.UUID, "err", err)
			}
			continue
		}
		if err := b.jm.NakWithDelay(s.cfg.NakDelay(b.delivered)); err != nil {
			s.cfg.Logger.Warn("nak failed; message will be redelivered after the ack wait", "topic", topic, "id", b.msg.UUID, "err", err)
		}
	}
}

// acked reports whether msg was acked.
func acked(msg *message.Message) bool {
	select {
	case <-msg.Acked():
		return true
	default:
		return false
	}
}
