package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The subjects and streams of auditq's contract that the client uses
// (docs/contract.md, "Subjects and streams").
const (
	subjectLog          = "audit.log"
	subjectBulk         = "audit.bulk"
	subjectBulkResults  = "audit.results.bulk"
	streamResults       = "AUDIT_RESULTS"
	headerJobID         = "job_id"
	headerRequester     = "Auditq-Requester"
	headerServiceCode   = "Nats-Service-Error-Code"
	headerServiceReason = "Nats-Service-Error"
)

// Options configure a Client. The zero value is ready to use.
type Options struct {
	// Rules are the service's validation settings; the zero value is its
	// defaults.
	Rules Rules
	// AttemptTimeout is how long one publish attempt waits for
	// JetStream's acknowledgement; default 5s.
	AttemptTimeout time.Duration
	// RetryBackoff is the wait after the first failed attempt, doubled
	// after each further one up to MaxRetryBackoff, with jitter; defaults
	// 100ms and 5s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// RequestTimeout bounds each request (Report, Query's pages, ...) when
	// its context has no earlier deadline; default 15s.
	RequestTimeout time.Duration
	// Requester names the caller on requests (header Auditq-Requester):
	// the service records it with each read as an unverified claim.
	Requester string
}

// Client publishes events to auditq and asks it for reports, events and
// proofs, over a NATS connection it does not own. It is safe for
// concurrent use.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
}

// New returns a Client over nc. Publish retries through reconnects only
// while nc does: connect with nats.MaxReconnects(-1) so that a long outage
// does not close it. It returns an error when an option is negative.
func New(nc *nats.Conn, opts Options) (*Client, error) {
	if nc == nil {
		return nil, errors.New("client: no NATS connection")
	}
	for _, d := range []struct {
		name string
		val  time.Duration
		def  *time.Duration
		to   time.Duration
	}{
		{"AttemptTimeout", opts.AttemptTimeout, &opts.AttemptTimeout, 5 * time.Second},
		{"RetryBackoff", opts.RetryBackoff, &opts.RetryBackoff, 100 * time.Millisecond},
		{"MaxRetryBackoff", opts.MaxRetryBackoff, &opts.MaxRetryBackoff, 5 * time.Second},
		{"RequestTimeout", opts.RequestTimeout, &opts.RequestTimeout, 15 * time.Second},
		{"Rules.FutureSkew", opts.Rules.FutureSkew, nil, 0},
	} {
		if d.val < 0 {
			return nil, fmt.Errorf("client: Options.%s is %s, must not be negative", d.name, d.val)
		}
		if d.val == 0 && d.def != nil {
			*d.def = d.to
		}
	}
	if opts.Rules.MaxBulkEvents < 0 {
		return nil, fmt.Errorf("client: Options.Rules.MaxBulkEvents is %d, must not be negative", opts.Rules.MaxBulkEvents)
	}
	opts.MaxRetryBackoff = max(opts.MaxRetryBackoff, opts.RetryBackoff)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{nc: nc, js: js, opts: opts}, nil
}

// Publish checks e with the service's rules (giving it an id that grows
// with time when e.ID is empty, see Event.ID) and publishes it to audit.log, retrying with backoff
// through reconnects, leader elections and a service that is not up yet,
// until JetStream acknowledges it or ctx ends. Every attempt carries the
// same Nats-Msg-Id, a random one of this call: the stream drops a retry
// whose first attempt got through, and never takes the event for another
// publisher's (with tenants, docs/tenants.md, the stream's duplicate
// window spans every tenant, while an event id is unique within its
// tenant only). Once it returns nil the event is stored exactly once,
// however often it was sent: the service keeps one event per tenant and
// id. It returns the event's id, and an error: a
// *ValidationError when e breaks a rule (nothing was sent), else the
// reason the publish could not complete (wrapping ctx's error when ctx
// ended first).
func (c *Client) Publish(ctx context.Context, e Event) (string, error) {
	if e.ID == "" {
		e.ID = newEventID(time.Now())
	}
	data := e.appendJSON(nil)
	if err := c.opts.Rules.CheckEvent(data, time.Now()); err != nil {
		return e.ID, err
	}
	m := nats.NewMsg(subjectLog)
	m.Header.Set(nats.MsgIdHdr, newID())
	m.Data = data
	if _, err := c.publish(ctx, m); err != nil {
		return e.ID, fmt.Errorf("publish event %s: %w", quoteID(e.ID), err)
	}
	return e.ID, nil
}

// publish sends m until JetStream acknowledges it, ctx ends or the error
// is one a retry cannot fix.
func (c *Client) publish(ctx context.Context, m *nats.Msg) (*jetstream.PubAck, error) {
	if size, limit := int64(len(m.Data)), c.nc.MaxPayload(); limit > 0 && size > limit {
		return nil, fmt.Errorf("the message is %d bytes, more than the server's max_payload of %d bytes", size, limit)
	}
	var ack *jetstream.PubAck
	err := c.retry(ctx, permanent, func(ctx context.Context) error {
		var err error
		ack, err = c.js.PublishMsg(ctx, m)
		return err
	})
	return ack, err
}

// retry runs attempt, each time with a deadline of AttemptTimeout, until
// it succeeds, ctx ends or it fails with an error stop says is final;
// between attempts it waits RetryBackoff, doubling up to MaxRetryBackoff.
func (c *Client) retry(ctx context.Context, stop func(error) bool, attempt func(context.Context) error) error {
	wait := c.opts.RetryBackoff
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (after %d attempts; the last: %v)", ctx.Err(), n, err)
		}
		if stop(err) {
			return err
		}
		// Jitter over the upper half of the wait: many publishers that lost
		// the same server do not come back in step.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %d attempts; the last: %v)", ctx.Err(), n, err)
		case <-t.C:
		}
		wait = min(2*wait, c.opts.MaxRetryBackoff)
	}
}

// permanent reports whether a publish error stays the same on retry: a
// closed connection, a message the server refuses for its size or
// subject, or a request JetStream rejects (a 4xx API error). Timeouts,
// no responders (no stream leader yet, or the service not up) and 503s
// are worth retrying.
func permanent(err error) bool {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject):
		return true
	case errors.As(err, &api):
		return api.Code >= 400 && api.Code < 500 && api.Code != 408 && api.Code != 429
	}
	return false
}

// BulkResult is the result of a bulk job, as the service published it on
// audit.results.bulk: Total = Inserted + Duplicates + len(Rejected).
type BulkResult struct {
	ID         string      `json:"id"` // the job id: the message's Nats-Msg-Id
	Total      int         `json:"total"`
	Inserted   int         `json:"inserted"`
	Duplicates int         `json:"duplicates"` // events whose id was stored before
	Rejected   []Rejection `json:"rejected"`
	// IDs are the ids of the events published, in order: as given, or
	// generated by PublishBulk.
	IDs []string `json:"-"`
}

// Rejection is one event of a bulk job the service rejected (and put in
// the poison stream): its index in the job and the reason, e.g.
// "events[2].timestamp: is more than 1s after the time it was received".
type Rejection struct {
	Index  int    `json:"index"`
	Reason string `json:"error"`
}

// PublishBulk checks events with the service's rules, publishes them as
// one audit.bulk job (events without an id get one first, as Publish
// gives it, listed in the result's IDs; the job's id, its Nats-Msg-Id, is "bulk-" and a
// random id of this call, for the reasons Publish gives), retrying as
// Publish does, and waits for the job's result until ctx ends. The
// service stores the valid events in one transaction; an event it rejects
// (under settings stricter than Options.Rules) is listed in the result's
// Rejected, not an error. Events published again, by this call's retries
// or by another call, are stored once and counted in Duplicates. It waits
// on audit.results.bulk, which the connection must be allowed to subscribe
// to (the publisher role of docs/security.md is; with tenants, a tenant's
// publisher gets its own tenant's results there). When a retry finds the
// job already in the stream, the earlier result is looked up in stream
// AUDIT_RESULTS where the connection may read it (operators); a publisher
// gets it from the subscription unless it was published while the
// connection was down, and the error when ctx ends then says so. It returns a
// *ValidationError when an event breaks a rule (nothing was sent), and an
// error when the publish failed, the service rejected the job as a whole,
// or ctx ended before the result came.
func (c *Client) PublishBulk(ctx context.Context, events []Event) (BulkResult, error) {
	if len(events) == 0 {
		return BulkResult{}, invalid("events", "must hold at least one event")
	}
	if n, limit := len(events), c.opts.Rules.maxBulk(); n > limit {
		return BulkResult{}, invalid("events", "holds %d events, more than the limit of %d", n, limit)
	}
	data := append(make([]byte, 0, 256*len(events)), `{"events":[`...)
	ids := make([]string, len(events))
	now := time.Now()
	for i, e := range events {
		if i > 0 {
			data = append(data, ',')
		}
		if e.ID == "" {
			e.ID = newEventID(now)
		}
		ids[i] = e.ID
		data = e.appendJSON(data)
	}
	data = append(data, "]}"...)
	if err := c.opts.Rules.CheckBulk(data, now); err != nil {
		return BulkResult{}, err
	}
	id := "bulk-" + newID()
	m := nats.NewMsg(subjectBulk)
	m.Header.Set(nats.MsgIdHdr, id)
	m.Data = data

	// The result comes on audit.results.bulk, which the publisher role
	// may read (with tenants, its own tenant's results only), subscribed
	// to before the publish so that it cannot be missed; a job rejected
	// as a whole has a result naming why. A job published again within
	// the service's duplicate window is not run again: its earlier result
	// is looked up in AUDIT_RESULTS where the connection may read that
	// stream (operators), while the subscription waits for a result still
	// to come (the earlier job may not have run yet).
	results := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(subjectBulkResults, results)
	if err != nil {
		return BulkResult{}, fmt.Errorf("bulk %s: subscribe to %s: %w", id, subjectBulkResults, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// The server has the subscription before the job: a flush, retried
	// through a reconnect.
	err = c.retry(ctx, func(err error) bool { return errors.Is(err, nats.ErrConnectionClosed) }, c.nc.FlushWithContext)
	if err != nil {
		return BulkResult{}, fmt.Errorf("bulk %s: subscribe to %s: %w", id, subjectBulkResults, err)
	}
	ack, err := c.publish(ctx, m)
	if err != nil {
		return BulkResult{}, fmt.Errorf("publish bulk %s: %w", id, err)
	}
	earlier := make(chan []byte, 1)
	if ack.Duplicate {
		go func() {
			if data, ok := c.earlierBulkResult(ctx, id); ok {
				earlier <- data
			}
		}()
	}
	for {
		var data []byte
		select {
		case msg := <-results:
			if msg.Header.Get(headerJobID) != id {
				continue
			}
			data = msg.Data
		case data = <-earlier:
		case <-ctx.Done():
			if ack.Duplicate {
				return BulkResult{}, fmt.Errorf("no result for bulk %s: it is a duplicate of a job published within the service's duplicate window, whose result was published then (reading it needs AUDIT_RESULTS, which this connection may not read): %w", id, ctx.Err())
			}
			return BulkResult{}, fmt.Errorf("no result for bulk %s (published, it may still be waiting in the stream): %w", id, ctx.Err())
		}
		var r struct {
			BulkResult
			Error string `json:"error"` // why the job was rejected as a whole
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return BulkResult{}, fmt.Errorf("unreadable result of bulk %s: %w", id, err)
		}
		if r.Error != "" {
			return BulkResult{}, fmt.Errorf("bulk %s rejected as a whole: %s", id, r.Error)
		}
		r.IDs = ids
		return r.BulkResult, nil
	}
}

// earlierBulkResult reads the result of bulk job id from the results kept
// in AUDIT_RESULTS, within RequestTimeout; false when it is not there or
// the connection may not read the stream.
func (c *Client) earlierBulkResult(ctx context.Context, id string) ([]byte, bool) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	cons, err := c.js.OrderedConsumer(ctx, streamResults, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjectBulkResults}})
	if err != nil {
		return nil, false
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, false
	}
	for left := info.NumPending; left > 0; {
		batch, err := cons.Fetch(int(min(left, 100)), jetstream.FetchContext(ctx))
		if err != nil {
			return nil, false
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if msg.Headers().Get(headerJobID) == id {
				return msg.Data(), true
			}
		}
		if n == 0 {
			return nil, false
		}
		left -= uint64(n)
	}
	return nil, false
}
