package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// BatchWriter is what a Batcher flushes into: Repository.WriteReturning.
type BatchWriter interface {
	WriteReturning(ctx context.Context, events []audit.Event) ([]int, error)
}

// BatcherConfig configures group commit.
type BatcherConfig struct {
	// MaxEvents flushes a batch once it holds this many events.
	MaxEvents int
	// MaxDelay holds a batch this long after its first event for more
	// events even when a flusher is free; 0 hands it over at once.
	MaxDelay time.Duration
	// Flushers is how many batches may be written at once.
	Flushers int
	// FlushTimeout bounds one flush.
	FlushTimeout time.Duration
	// Observe, if set, is called with the events of every batch once
	// they are committed, before their writes return.
	Observe func(events []audit.Event)
}

// setDefaults fills in the zero settings: 1000 events, 2 flushers, a
// flush timeout of 30 s (MaxDelay zero means none).
func (c *BatcherConfig) setDefaults() {
	if c.MaxEvents == 0 {
		c.MaxEvents = 1000
	}
	if c.Flushers == 0 {
		c.Flushers = 2
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 30 * time.Second
	}
}

// Validate returns an error naming a negative setting.
func (c BatcherConfig) Validate() error {
	if c.MaxEvents < 0 || c.MaxDelay < 0 || c.Flushers < 0 || c.FlushTimeout < 0 {
		return fmt.Errorf("postgres: BatcherConfig: MaxEvents (%d), MaxDelay (%s), Flushers (%d) and FlushTimeout (%s) must not be negative",
			c.MaxEvents, c.MaxDelay, c.Flushers, c.FlushTimeout)
	}
	return nil
}

// Batcher is an audit.Writer that commits the events of concurrent Write
// calls together (group commit): a batch is flushed when a flusher is free
// (and MaxDelay has passed since its first event) or at MaxEvents events,
// whichever comes first, in one COPY and one transaction. Each Write returns only after its own events are committed,
// so a message is acked only after its row is. A failed flush fails exactly
// the writes in it; when the failure is permanent (a row the database
// refuses), the writes are retried one by one so only the culprit fails.
type Batcher struct {
	w    BatchWriter
	cfg  BatcherConfig
	in   chan []*pending
	out  chan []*pending
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type pending struct {
	events []audit.Event
	res    audit.WriteResult
	err    error
	// done closes once res and err are set, for a Write; the writes of
	// one WriteEach share group instead (done is nil).
	done    chan struct{}
	group   *group
	settled atomic.Bool // res and err are set
}

// group is the writes of one WriteEach: done closes when the last of
// them is settled, so that they cost one channel, not one each.
type group struct {
	left atomic.Int64
	done chan struct{}
}

// settle publishes p's res and err to its writer.
func (p *pending) settle() {
	p.settled.Store(true)
	if p.group == nil {
		close(p.done)
	} else if p.group.left.Add(-1) == 0 {
		close(p.group.done)
	}
}

var _ audit.EachWriter = (*Batcher)(nil)

// NewBatcher starts a Batcher over w, or returns cfg's validation error;
// Close stops it.
func NewBatcher(w BatchWriter, cfg BatcherConfig) (*Batcher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Batcher{w: w, cfg: cfg, in: make(chan []*pending), out: make(chan []*pending), stop: make(chan struct{})}
	b.wg.Add(1 + cfg.Flushers)
	go b.collect()
	for range cfg.Flushers {
		go b.flusher()
	}
	return b, nil
}

// ErrBatcherClosed is returned by Write after Close.
var ErrBatcherClosed = errors.New("batcher closed")

// Write queues events for the next batch and waits until that batch is
// committed or failed, or ctx ends (the events may still be committed
// then, and read until their batch is written, so they must stay as
// they are; a redelivery finds them as duplicates).
func (b *Batcher) Write(ctx context.Context, events []audit.Event) (audit.WriteResult, error) {
	if len(events) == 0 {
		return audit.WriteResult{}, nil
	}
	p := &pending{events: events, done: make(chan struct{})}
	select {
	case b.in <- []*pending{p}:
	case <-ctx.Done():
		return audit.WriteResult{}, ctx.Err()
	case <-b.stop:
		return audit.WriteResult{}, ErrBatcherClosed
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return audit.WriteResult{}, ctx.Err()
	}
}

// WriteEach writes each event as a write of its own, as if by one Write
// call per event (the same batches, and a permanent failure fails only
// the event that caused it), but queues them in one step. It returns each
// event's result and error, in order; when ctx ends first, the events not
// yet settled get ctx's error (they may still be committed, and read
// until their batch is written, so they must stay as they are; a
// redelivery finds them as duplicates).
func (b *Batcher) WriteEach(ctx context.Context, events []audit.Event) ([]audit.WriteResult, []error) {
	results, errs := make([]audit.WriteResult, len(events)), make([]error, len(events))
	if len(events) == 0 {
		return results, errs
	}
	g := &group{done: make(chan struct{})}
	g.left.Store(int64(len(events)))
	all := make([]pending, len(events))
	ps := make([]*pending, len(events))
	for i := range events {
		all[i] = pending{events: events[i : i+1 : i+1], group: g}
		ps[i] = &all[i]
	}
	fail := func(err error) {
		for i := range errs {
			errs[i] = err
		}
	}
	select {
	case b.in <- ps:
	case <-ctx.Done():
		fail(ctx.Err())
		return results, errs
	case <-b.stop:
		fail(ErrBatcherClosed)
		return results, errs
	}
	select {
	case <-g.done:
	case <-ctx.Done():
	}
	for i, p := range ps {
		if p.settled.Load() {
			results[i], errs[i] = p.res, p.err
		} else {
			errs[i] = ctx.Err()
		}
	}
	return results, errs
}

// collect groups incoming writes into batches. A batch goes to a flusher
// as soon as one is free (after MaxDelay, if set) or when it is full; while
// every flusher is busy, writes keep joining the waiting batch. Under light
// load each write is committed at once; under heavy load batches grow to
// MaxEvents on their own (self-clocking group commit).
func (b *Batcher) collect() {
	defer b.wg.Done()
	defer close(b.out)
	var (
		batch []*pending
		size  int
		ready bool // MaxDelay has passed since the batch's first write
		timer = time.NewTimer(time.Hour)
		carry []*pending // writes of one WriteEach beyond a full batch
	)
	timer.Stop()
	// take adds writes to the batch until it is full and carries the rest
	// over to the next one.
	take := func(ps []*pending) {
		if len(batch) == 0 && len(ps) > 0 {
			ready = b.cfg.MaxDelay == 0
			if !ready {
				timer.Reset(b.cfg.MaxDelay)
			}
		}
		for len(ps) > 0 && size < b.cfg.MaxEvents {
			batch = append(batch, ps[0])
			size += len(ps[0].events)
			ps = ps[1:]
		}
		carry = ps
	}
	for {
		var in chan []*pending
		if size < b.cfg.MaxEvents && len(carry) == 0 {
			in = b.in
		}
		var out chan []*pending
		if len(batch) > 0 && (ready || size >= b.cfg.MaxEvents) {
			out = b.out
		}
		select {
		case ps := <-in:
			take(ps)
		case <-timer.C:
			ready = true
		case out <- batch:
			batch, size, ready = nil, 0, false
			timer.Stop()
			take(carry)
		case <-b.stop:
			batch = append(batch, carry...)
			if len(batch) > 0 {
				select {
				case b.out <- batch:
				case <-time.After(b.cfg.FlushTimeout):
					b.fail(batch, ErrBatcherClosed)
				}
			}
			return
		}
	}
}

func (b *Batcher) flusher() {
	defer b.wg.Done()
	for batch := range b.out {
		b.flush(batch)
	}
}

func (b *Batcher) flush(batch []*pending) {
	n := 0
	for _, p := range batch {
		n += len(p.events)
	}
	events := make([]audit.Event, 0, n)
	for _, p := range batch {
		events = append(events, p.events...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.FlushTimeout)
	defer cancel()
	inserted, err := b.w.WriteReturning(ctx, events)
	if b.cfg.Observe != nil && err == nil {
		b.cfg.Observe(events)
	}
	if err != nil {
		if audit.IsPermanent(err) && len(batch) > 1 {
			for _, p := range batch {
				b.flush([]*pending{p})
			}
			return
		}
		b.fail(batch, err)
		return
	}
	// Hand each write its own counts: inserted indexes are in order.
	next, start := 0, 0
	for _, p := range batch {
		end := start + len(p.events)
		n := 0
		for next < len(inserted) && inserted[next] < end {
			n++
			next++
		}
		p.res = audit.WriteResult{Inserted: n, Duplicates: len(p.events) - n}
		start = end
		p.settle()
	}
}

func (b *Batcher) fail(batch []*pending, err error) {
	for _, p := range batch {
		p.err = err
		p.settle()
	}
}

// Close flushes what is queued, waits for running flushes and stops.
func (b *Batcher) Close() error {
	b.once.Do(func() { close(b.stop) })
	b.wg.Wait()
	return nil
}
