package natsjs_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/natsjs/natstest"
)

// A handler that runs three times the ack wait keeps its message: the
// subscriber reports progress while it runs, so JetStream neither
// redelivers the message to another worker nor counts a second delivery,
// and the message is acked (gone from the work queue) once it returns.
func TestSlowHandlerKeepsItsMessage(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv.ClientURL())
	const ackWait = time.Second
	if err := natsjs.Ensure(ctx, js, natsjs.Topology{
		JobSubjects: []string{"audit.log"}, PoisonSubjects: "audit.poison.>", ResultSubjects: "audit.results.>",
		PoisonMaxMsgs: 100, PoisonMaxBytes: 1 << 20, ResultsMaxMsgs: 10,
		DuplicateWindow: time.Minute, AckWait: ackWait, MaxAckPending: 100,
	}); err != nil {
		t.Fatal(err)
	}
	sub, err := natsjs.NewSubscriber(js, natsjs.SubscriberConfig{
		Stream: natsjs.StreamAudit, Consumer: natsjs.ConsumerName, InFlight: 4, AckWait: ackWait,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
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
