package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type publisher struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newPublisher(natsURL string) (*publisher, error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &publisher{nc: nc, js: js}, nil
}

func (p *publisher) close() {
	if p.nc != nil {
		p.nc.Close()
	}
}

// eventJSON returns a realistic event of about 400 bytes.
func eventJSON(id string, i int, at time.Time) []byte {
	return fmt.Appendf(nil, `{"id":%q,"userId":"user-%d","action":"%s","resourceType":"%s","resourceId":"res-%d",`+
		`"details":{"field":"settings.name","old":"alpha","new":"beta","reason":"benchmark"},"ipAddress":"203.0.113.%d",`+
		`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36","sessionId":"sess-%d","requestId":"req-%d",`+
		`"success":%t,"timestamp":%q}`,
		id, i%1000, actions[i%len(actions)], resourceTypes[i%len(resourceTypes)], i%5000, i%250, i%20000, i,
		i%17 != 0, at.UTC().Format(time.RFC3339Nano))
}

var (
	actions       = []string{"user.login", "user.logout", "guild.update", "guild.create", "settings.change", "role.assign", "message.delete", "admin.access"}
	resourceTypes = []string{"user", "guild", "settings", "role", "message"}
)

// messages builds n events on subject, one per message for audit.log or
// perMsg per message for audit.bulk.
func messages(subject string, n, perMsg int, prefix string) []*nats.Msg {
	now := time.Now()
	var out []*nats.Msg
	for start := 0; start < n; start += perMsg {
		m := nats.NewMsg(subject)
		if perMsg == 1 {
			id := prefix + strconv.Itoa(start)
			m.Data = eventJSON(id, start, now)
			m.Header.Set(nats.MsgIdHdr, id)
		} else {
			var b strings.Builder
			b.WriteString(`{"events":[`)
			for i := start; i < min(start+perMsg, n); i++ {
				if i > start {
					b.WriteByte(',')
				}
				b.Write(eventJSON(prefix+strconv.Itoa(i), i, now))
			}
			b.WriteString(`]}`)
			m.Data = []byte(b.String())
			m.Header.Set(nats.MsgIdHdr, prefix+"-bulk-"+strconv.Itoa(start))
		}
		out = append(out, m)
	}
	return out
}

// throughput publishes n events and returns events/s from the first
// publish until the service reports every one of them committed.
func (p *publisher) throughput(ctx context.Context, subject string, n, perMsg int, prefix string) (float64, error) {
	msgs := messages(subject, n, perMsg, fmt.Sprintf("%s-%d-", prefix, time.Now().UnixNano()))
	cons, err := p.js.Consumer(ctx, "AUDIT", "auditq-"+strings.TrimPrefix(subject, "audit."))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for _, m := range msgs {
		if _, err := p.js.PublishMsgAsync(m, stall); err != nil {
			return 0, err
		}
	}
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return 0, errors.New("publishes not acknowledged within 5 minutes")
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, err
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= info.Delivered.Stream {
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// latencyRun is what one latency run measured, per event in publish
// order: the time from its publish until the consumer's ack floor passed
// it (floor), and until its stream ack came back (streamAck).
type latencyRun struct {
	floor, streamAck []time.Duration
}

// latency offers rate events/s for d and returns, per event, the time from
// its publish until the consumer's ack floor passed it (a message is acked
// only after its row is committed), sampled every 2 ms while publishing,
// and the time until its stream ack came back. atWarm, if set, runs in a
// goroutine of its own just before event warm is published.
func (p *publisher) latency(ctx context.Context, rate int, d time.Duration, warm int, atWarm func()) (latencyRun, error) {
	cons, err := p.js.Consumer(ctx, "AUDIT", "auditq-log")
	if err != nil {
		return latencyRun{}, err
	}
	type sample struct {
		at    time.Time
		floor uint64
	}
	var samples []sample
	stop := make(chan struct{})
	sampled := make(chan error, 1)
	go func() {
		for {
			info, err := cons.Info(ctx)
			if err != nil {
				sampled <- err
				return
			}
			samples = append(samples, sample{time.Now(), info.AckFloor.Stream})
			select {
			case <-stop:
				sampled <- nil
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	n := int(float64(rate) * d.Seconds())
	msgs := messages("audit.log", n, 1, fmt.Sprintf("lat-%d-", time.Now().UnixNano()))
	times := make([]time.Time, n)
	// The stream acks are read in publish order as they come (a connection
	// gets them in that order), so each one's arrival time is its own.
	futures := make(chan jetstream.PubAckFuture, n)
	seqs, acked := make([]uint64, n), make([]time.Time, n)
	acks := make(chan error, 1)
	go func() {
		i := 0
		for f := range futures {
			select {
			case a := <-f.Ok():
				seqs[i], acked[i] = a.Sequence, time.Now()
			case err := <-f.Err():
				acks <- err
				for range futures {
				}
				return
			}
			i++
		}
		acks <- nil
	}()
	start := time.Now()
	const tick = 10 * time.Millisecond
	perTick := max(rate*int(tick)/int(time.Second), 1)
	for i := 0; i < n; i += perTick {
		if wait := time.Until(start.Add(time.Duration(i/perTick) * tick)); wait > 0 {
			time.Sleep(wait)
		}
		for j := i; j < min(i+perTick, n); j++ {
			if j == warm && atWarm != nil {
				go atWarm()
			}
			times[j] = time.Now()
			f, err := p.js.PublishMsgAsync(msgs[j], stall)
			if err != nil {
				close(futures)
				if aerr := <-acks; aerr != nil {
					err = fmt.Errorf("%w (and a publish before it failed: %v)", err, aerr)
				}
				close(stop)
				return latencyRun{}, err
			}
			futures <- f
		}
	}
	close(futures)
	if err := <-acks; err != nil {
		close(stop)
		return latencyRun{}, err
	}
	last := seqs[n-1]
	var final sample
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			close(stop)
			return latencyRun{}, err
		}
		if info.AckFloor.Stream >= last {
			final = sample{time.Now(), info.AckFloor.Stream}
			break
		}
		if time.Since(start) > d+2*time.Minute {
			close(stop)
			return latencyRun{}, errors.New("latency run did not drain within 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	if err := <-sampled; err != nil {
		return latencyRun{}, err
	}
	// The sampler may have stopped before it saw the last commits.
	samples = append(samples, final)
	run := latencyRun{floor: make([]time.Duration, 0, n), streamAck: make([]time.Duration, n)}
	k := 0
	for i := range n {
		for k < len(samples) && (samples[k].floor < seqs[i] || samples[k].at.Before(times[i])) {
			k++
		}
		if k == len(samples) {
			return latencyRun{}, fmt.Errorf("event %d was never seen committed", i)
		}
		run.floor = append(run.floor, samples[k].at.Sub(times[i]))
		run.streamAck[i] = acked[i].Sub(times[i])
	}
	return run, nil
}

// stall lets a publisher wait for room among its outstanding publishes
// instead of failing: the benchmark offers load as fast as the broker takes it.
var stall = jetstream.WithStallWait(time.Minute)

// cleanupResult is the part of an audit.results.cleanup message the
// benchmark reads.
type cleanupResult struct {
	ID           string `json:"id"`
	DeletedCount int64  `json:"deletedCount"`
	DurationMs   int64  `json:"durationMs"`
}

// cleanup publishes a retention job deleting events older than days and
// waits for its result: rows deleted and the time from publish to result.
func (p *publisher) cleanup(ctx context.Context, days int) (int64, time.Duration, error) {
	results := make(chan *nats.Msg, 16)
	sub, err := p.nc.ChanSubscribe("audit.results.cleanup", results)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	id := fmt.Sprintf("bench-cleanup-%d", time.Now().UnixNano())
	m := nats.NewMsg("audit.cleanup")
	m.Header.Set(nats.MsgIdHdr, id)
	m.Data = fmt.Appendf(nil, `{"retentionDays":%d}`, days)
	start := time.Now()
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		return 0, 0, err
	}
	timeout := time.After(30 * time.Minute)
	for {
		select {
		case r := <-results:
			var res cleanupResult
			if err := json.Unmarshal(r.Data, &res); err != nil || res.ID != id {
				continue
			}
			return res.DeletedCount, time.Since(start), nil
		case <-timeout:
			return 0, 0, errors.New("no cleanup result within 30 minutes")
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
}
