package natsjs_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/natsjs/natstest"
)

// newTestSubscriber sets up the work-queue topology on a fresh in-process
// server and returns a Subscriber on it with cfg's knobs and an ack wait of
// ackWait.
func newTestSubscriber(t *testing.T, ackWait time.Duration, cfg natsjs.SubscriberConfig) (*natsjs.Subscriber, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv.ClientURL())
	if err := natsjs.Ensure(context.Background(), js, natsjs.Topology{
		JobSubjects: []string{"audit.log"}, PoisonSubjects: "audit.poison.>", ResultSubjects: "audit.results.>",
		PoisonMaxMsgs: 100, PoisonMaxBytes: 1 << 20, ResultsMaxMsgs: 10,
		DuplicateWindow: time.Minute, AckWait: ackWait, MaxAckPending: 100,
	}); err != nil {
		t.Fatal(err)
	}
	cfg.Stream, cfg.Consumer, cfg.AckWait = natsjs.StreamAudit, natsjs.ConsumerName, ackWait
	sub, err := natsjs.NewSubscriber(js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub, nc, js
}

// cpuTime is the CPU time this process has used so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Close waits for the handlers still running, idle: spinning on the closed
// signal would burn a core per in-flight message and, on two cores,
// starve the very writes the shutdown waits for (a SIGTERM under load
// would leave every message unacked). Messages acked during the wait are
// acked.
func TestCloseWaitsForRunningHandlersWithoutSpinning(t *testing.T) {
	const n = 8
	sub, nc, js := newTestSubscriber(t, 30*time.Second, natsjs.SubscriberConfig{InFlight: n, CloseTimeout: 10 * time.Second})
	msgs, err := sub.Subscribe(context.Background(), "audit.log")
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := nc.Publish("audit.log", []byte(`held`)); err != nil {
			t.Fatal(err)
		}
	}
	held := make([]*message.Message, 0, n)
	for len(held) < n {
		select {
		case m := <-msgs:
			held = append(held, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d messages delivered", len(held), n)
		}
	}

	closed := make(chan error, 1)
	go func() { closed <- sub.Close() }()
	time.Sleep(100 * time.Millisecond) // Close has signalled the handlers
	before := time.Now()
	cpuBefore := cpuTime(t)
	time.Sleep(500 * time.Millisecond)
	used, wall := cpuTime(t)-cpuBefore, time.Since(before)
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while %d handlers were still running", err, n)
	default:
	}
	t.Logf("CPU while Close waited on %d handlers: %s in %s", n, used, wall.Round(time.Millisecond))
	if used > wall/4 {
		t.Errorf("Close used %s of CPU in %s waiting on %d handlers: it spins", used, wall.Round(time.Millisecond), n)
	}

	for _, m := range held {
		m.Ack()
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after every handler finished")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := js.Stream(context.Background(), natsjs.StreamAudit)
		if err != nil {
			t.Fatal(err)
		}
		left := st.CachedInfo().State.Msgs
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages left in the work queue: acks given during Close were lost", left)
		}
	}
}

// A handler that runs three times the ack wait keeps its message: the
// subscriber reports progress while it runs, so JetStream neither
// redelivers the message to another worker nor counts a second delivery,
// and the message is acked (gone from the work queue) once it returns.
func TestSlowHandlerKeepsItsMessage(t *testing.T) {
	ctx := context.Background()
	const ackWait = time.Second
	sub, nc, js := newTestSubscriber(t, ackWait, natsjs.SubscriberConfig{InFlight: 4})
	msgs, err := sub.Subscribe(ctx, "audit.log")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("audit.log", []byte(`slow`)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if d := m.Metadata.Get(natsjs.MetaDelivered); d != "1" {
			t.Fatalf("first delivery counted as %s", d)
		}
		time.Sleep(3 * ackWait)
		m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("message not delivered")
	}
	select {
	case m := <-msgs:
		t.Fatalf("message redelivered (delivery %s) although its handler reported progress", m.Metadata.Get(natsjs.MetaDelivered))
	case <-time.After(500 * time.Millisecond):
	}
	cons, err := js.Consumer(ctx, natsjs.StreamAudit, natsjs.ConsumerName("audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Consumer != 1 {
			t.Fatalf("consumer delivered %d times, want once", info.Delivered.Consumer)
		}
		if info.NumAckPending == 0 && info.AckFloor.Stream == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message not acked: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, err := js.Stream(ctx, natsjs.StreamAudit); err != nil {
		t.Fatal(err)
	} else if n := st.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d messages left in the work queue", n)
	}
}

// The byte budget bounds what handlers hold, whatever the count allows:
// with room for three 100 KiB messages, ten workers hand over three at a
// time and the next one only when one settles; a message larger than the
// whole budget goes through alone.
func TestInFlightBytesBoundWhatHandlersHold(t *testing.T) {
	const size, budget = 100 << 10, 3 * (100<<10 + 1<<10)
	sub, nc, _ := newTestSubscriber(t, 30*time.Second, natsjs.SubscriberConfig{InFlight: 10, InFlightBytes: budget})
	msgs, err := sub.Subscribe(context.Background(), "audit.log")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		t.Helper()
		if err := nc.Publish("audit.log", make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	next := func() *message.Message {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no message handed over")
			return nil
		}
	}
	none := func(why string) {
		t.Helper()
		select {
		case m := <-msgs:
			t.Fatalf("a message of %d bytes was handed over %s", len(m.Payload), why)
		case <-time.After(300 * time.Millisecond):
		}
	}

	for range 9 {
		publish(size)
	}
	held := []*message.Message{next(), next(), next()}
	none("beyond the budget of three")
	for settled := 0; settled < 9; settled++ {
		held[0].Ack()
		held = held[1:]
		if settled < 6 {
			held = append(held, next())
			none("while three are held")
		}
	}

	publish(4 * size) // larger than the whole budget
	big := next()
	if len(big.Payload) != 4*size {
		t.Fatalf("got %d bytes, want the large message", len(big.Payload))
	}
	publish(size)
	none("beside the one larger than the budget")
	big.Ack()
	if m := next(); len(m.Payload) != size {
		t.Fatalf("got %d bytes after the large message settled, want %d", len(m.Payload), size)
	} else {
		m.Ack()
	}
}

// A batch topic hands over one message per batch, bounded by InFlight,
// with the JetStream messages in it (Unbatch, in order, each with the
// UUID and payload it has alone); once the batch settles, the messages
// its handler acked are acked with JetStream and the others redelivered,
// whether the batch was acked or nacked.
func TestBatchesSettleEachMessageWithJetStream(t *testing.T) {
	sub, _, js := newTestSubscriber(t, 30*time.Second, natsjs.SubscriberConfig{
		InFlight: 8, InFlightBytes: 1 << 20, BatchFor: map[string]int{"audit.log": 5},
		NakDelay: func(uint64) time.Duration { return 10 * time.Millisecond },
	})
	for i := range 8 {
		m := nats.NewMsg("audit.log")
		m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("m%d", i))
		m.Data = []byte(fmt.Sprintf("payload %d", i))
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := sub.Subscribe(context.Background(), "audit.log")
	if err != nil {
		t.Fatal(err)
	}
	next := func() *message.Message {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no batch handed over")
			return nil
		}
	}
	// The first deliveries: every message once, in batches of at most 5,
	// never more than 8 unsettled.
	var held []*message.Message
	seen := map[string]int{}
	for len(seen) < 8 {
		b := next()
		inner := natsjs.Unbatch(b)
		if len(inner) == 0 || len(inner) > 5 {
			t.Fatalf("a batch of %d messages, want 1 to 5", len(inner))
		}
		for _, m := range inner {
			seen[m.UUID]++
			if want := "payload " + strings.TrimPrefix(m.UUID, "m"); string(m.Payload) != want {
				t.Fatalf("message %s carries %q, want %q", m.UUID, m.Payload, want)
			}
		}
		held = append(held, b)
	}
	// Ack every message but m2 and m6; the batch holding m6 is nacked.
	for _, b := range held {
		nack := false
		for _, m := range natsjs.Unbatch(b) {
			switch m.UUID {
			case "m2":
			case "m6":
				nack = true
			default:
				m.Ack()
			}
		}
		if nack {
			b.Nack()
		} else {
			b.Ack()
		}
	}
	// m2 and m6 come back, and nothing else.
	again := map[string]bool{}
	for len(again) < 2 {
		b := next()
		for _, m := range natsjs.Unbatch(b) {
			if m.UUID != "m2" && m.UUID != "m6" {
				t.Fatalf("%s redelivered after its handler acked it", m.UUID)
			}
			again[m.UUID] = true
			m.Ack()
		}
		b.Ack()
	}
	cons, err := js.Consumer(context.Background(), natsjs.StreamAudit, natsjs.ConsumerName("audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer not drained: %+v", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A Subscriber that stops gives back at once what it had pulled and not
// handed to a handler (its pull buffer, messages waiting for the router,
// a batch being gathered): a second subscriber on the same consumer gets
// every message the first did not ack within seconds, not after the ack
// wait, and none twice.
func TestStopGivesBackPulledMessagesAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   natsjs.SubscriberConfig
		batch bool
	}{
		{"one at a time", natsjs.SubscriberConfig{InFlight: 4, InFlightBytes: 1 << 20}, false},
		{"batches", natsjs.SubscriberConfig{InFlight: 8, InFlightBytes: 1 << 20, BatchFor: map[string]int{"audit.log": 4}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const total = 60
			cfg := tc.cfg
			cfg.CloseTimeout = 5 * time.Second
			first, _, js := newTestSubscriber(t, time.Minute, cfg)
			for i := range total {
				m := nats.NewMsg("audit.log")
				m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("m%d", i))
				if _, err := js.PublishMsg(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			ids := func(m *message.Message) []*message.Message {
				if tc.batch {
					return natsjs.Unbatch(m)
				}
				return []*message.Message{m}
			}
			msgs, err := first.Subscribe(context.Background(), "audit.log")
			if err != nil {
				t.Fatal(err)
			}
			// The handler holds the first message (a batch) it gets; the
			// others wait in the subscriber and in its pull buffer.
			var held *message.Message
			select {
			case held = <-msgs:
			case <-time.After(10 * time.Second):
				t.Fatal("no message handed over")
			}
			time.Sleep(200 * time.Millisecond) // let the pulls fill up
			acked := map[string]bool{}
			closed := make(chan error, 1)
			go func() { closed <- first.Close() }()
			// It finishes its message during the stop: that one is acked.
			time.Sleep(100 * time.Millisecond)
			for _, m := range ids(held) {
				acked[m.UUID] = true
				m.Ack()
			}
			held.Ack()
			for m := range msgs {
				t.Fatalf("%s handed over after the close began", m.UUID)
			}
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			stopped := time.Now()

			second, err := natsjs.NewSubscriber(js, natsjs.SubscriberConfig{
				Stream: natsjs.StreamAudit, Consumer: natsjs.ConsumerName, AckWait: time.Minute, InFlight: 16,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = second.Close() })
			again, err := second.Subscribe(context.Background(), "audit.log")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for len(got) < total-len(acked) {
				select {
				case m := <-again:
					if acked[m.UUID] || got[m.UUID] {
						t.Fatalf("%s delivered again after it was acked", m.UUID)
					}
					got[m.UUID] = true
					m.Ack()
				case <-time.After(10 * time.Second):
					t.Fatalf("after the first subscriber stopped, the second got %d of the %d messages it had not acked within 10 s (ack wait 1 min)", len(got), total-len(acked))
				}
			}
			t.Logf("first subscriber acked %d; the second got the other %d within %s of the stop", len(acked), len(got), time.Since(stopped).Round(time.Millisecond))
		})
	}
}
