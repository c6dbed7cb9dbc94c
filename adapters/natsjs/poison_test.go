package natsjs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs"
)

var testPoisonConfig = natsjs.PoisonConfig{
	Prefix:       "audit.poison.",
	Jobs:         map[string]string{"log": "audit.log", "bulk": "audit.bulk"},
	EventSubject: "audit.log",
}

// poisonRig is the topology on a fresh server with a subscriber on
// audit.log, the service's publisher and a Poison.
type poisonRig struct {
	js     jetstream.JetStream
	pub    message.Publisher
	msgs   <-chan *message.Message
	poison *natsjs.Poison
}

func newPoisonRig(t *testing.T) *poisonRig {
	t.Helper()
	sub, nc, js := newTestSubscriber(t, 30*time.Second, natsjs.SubscriberConfig{InFlight: 1})
	msgs, err := sub.Subscribe(context.Background(), "audit.log")
	if err != nil {
		t.Fatal(err)
	}
	pubConn, err := nats.Connect(nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := natsjs.NewPublisher(pubConn, watermill.NopLogger{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	p, err := natsjs.NewPoison(js, testPoisonConfig)
	if err != nil {
		t.Fatal(err)
	}
	return &poisonRig{js: js, pub: pub, msgs: msgs, poison: p}
}

// next receives the next audit.log message.
func (r *poisonRig) next(t *testing.T) *message.Message {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message on audit.log")
		return nil
	}
}

// reject does what the router's poison middleware does with msg: a copy
// with the reason goes to audit.poison.log, then the original is acked.
func (r *poisonRig) reject(t *testing.T, msg *message.Message, reason string) {
	t.Helper()
	msg.Metadata.Set(middleware.ReasonForPoisonedKey, reason)
	msg.Metadata.Set(middleware.PoisonedTopicKey, "audit.log")
	msg.Metadata.Set(middleware.PoisonedHandlerKey, "audit.log")
	if err := r.pub.Publish("audit.poison.log", msg); err != nil {
		t.Fatal(err)
	}
	msg.Ack()
}

func (r *poisonRig) list(t *testing.T, f natsjs.PoisonFilter) []natsjs.PoisonMsg {
	t.Helper()
	l, err := r.poison.List(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A replay keeps the message id (so an event without an id field would be
// stored under the same id), is not dropped by the job stream's memory of
// the original Nats-Msg-Id, and, rejected again, is a new poison message
// rather than a duplicate of the first rejection.
func TestReplayKeepsTheIDAndARejectedReplayReturns(t *testing.T) {
	r := newPoisonRig(t)
	ctx := context.Background()
	orig := nats.NewMsg("audit.log")
	orig.Data = []byte(`{"action":"doc.read"}`)
	orig.Header.Set(nats.MsgIdHdr, "msg-1")
	orig.Header.Set("tenant", "acme")
	if _, err := r.js.PublishMsg(ctx, orig); err != nil {
		t.Fatal(err)
	}
	first := r.next(t)
	r.reject(t, first, "userId: is required")
	// A redelivery of the same stored message is poisoned once.
	r.reject(t, first, "userId: is required")

	l := r.list(t, natsjs.PoisonFilter{})
	if len(l) != 1 {
		t.Fatalf("%d poison messages, want 1", len(l))
	}
	pm := l[0]
	if pm.ID != "msg-1" || pm.EventID != "msg-1" || pm.Target != "audit.log" || pm.Job != "log" || pm.Reason != "userId: is required" {
		t.Fatalf("poison message: %+v", pm)
	}

	rep, err := r.poison.Replay(ctx, pm.Seq, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Duplicate || rep.Subject != "audit.log" || rep.ID != "msg-1" {
		t.Fatalf("replay: %+v (a duplicate was dropped by the job stream)", rep)
	}
	again := r.next(t)
	if again.UUID != "msg-1" || again.Metadata.Get("tenant") != "acme" || string(again.Payload) != string(orig.Data) {
		t.Fatalf("replayed message: id %q, metadata %v, payload %s", again.UUID, again.Metadata, again.Payload)
	}
	if v := again.Metadata.Get(middleware.ReasonForPoisonedKey); v != "" {
		t.Fatalf("replay carries the old reason %q", v)
	}
	if _, err := r.poison.Get(ctx, pm.Seq); !errors.Is(err, natsjs.ErrPoisonNotFound) {
		t.Fatalf("replayed message still in the poison stream: %v", err)
	}

	r.reject(t, again, "userId: still missing")
	l = r.list(t, natsjs.PoisonFilter{})
	if len(l) != 1 || l[0].Reason != "userId: still missing" || l[0].ID != "msg-1" || l[0].Seq == pm.Seq {
		t.Fatalf("rejected replay: %+v", l)
	}
	if got := l[0].Header.Get(natsjs.HeaderReplayedFrom); !strings.HasSuffix(got, ":1") {
		t.Fatalf("%s = %q", natsjs.HeaderReplayedFrom, got)
	}
}

// Republishing the same poison message twice (a replay that died before
// Remove, run again) is one message in the job stream.
func TestRepublishTwiceIsADuplicate(t *testing.T) {
	r := newPoisonRig(t)
	ctx := context.Background()
	if _, err := r.js.PublishMsg(ctx, &nats.Msg{Subject: "audit.log", Data: []byte(`{"id":"e1"}`), Header: nats.Header{nats.MsgIdHdr: {"m1"}}}); err != nil {
		t.Fatal(err)
	}
	r.reject(t, r.next(t), "bad")
	pm := r.list(t, natsjs.PoisonFilter{})[0]
	one, err := r.poison.Republish(ctx, pm, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.next(t).Ack()
	two, err := r.poison.Replay(ctx, pm.Seq, nil)
	if err != nil {
		t.Fatal(err)
	}
	if one.Duplicate || !two.Duplicate || one.Seq != two.Seq {
		t.Fatalf("first %+v, second %+v: want the second a duplicate of the first", one, two)
	}
	// A corrected payload is a different replay.
	if _, err := r.js.PublishMsg(ctx, &nats.Msg{Subject: "audit.log", Data: []byte(`{"id":"e2"}`), Header: nats.Header{nats.MsgIdHdr: {"m2"}}}); err != nil {
		t.Fatal(err)
	}
	r.reject(t, r.next(t), "bad")
	pm = r.list(t, natsjs.PoisonFilter{})[0]
	a, err := r.poison.Republish(ctx, pm, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.poison.Republish(ctx, pm, []byte(`{"id":"e2","fixed":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.Duplicate || b.Duplicate || a.MsgID == b.MsgID {
		t.Fatalf("original %+v and corrected %+v replays must both be stored", a, b)
	}
}

func TestPoisonListShowDiscardAndStats(t *testing.T) {
	r := newPoisonRig(t)
	ctx := context.Background()
	publish := func(subject, id, reason string, meta ...string) {
		m := message.NewMessage(id, []byte(`{"id":"ev-`+id+`"}`))
		m.Metadata.Set(middleware.ReasonForPoisonedKey, reason)
		for i := 0; i+1 < len(meta); i += 2 {
			m.Metadata.Set(meta[i], meta[i+1])
		}
		if err := r.pub.Publish(subject, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("audit.poison.log", "a", "userId: is required", middleware.PoisonedTopicKey, "audit.log")
	publish("audit.poison.bulk", "job:3", "events[3].action: is required", natsjs.HeaderBulkID, "job", natsjs.HeaderBulkIndex, "3")
	publish("audit.poison.log", "b", "action: unknown field", middleware.PoisonedTopicKey, "audit.log")
	publish("audit.poison.bulk", "big", "events: holds 2000 events", middleware.PoisonedTopicKey, "audit.bulk")

	ids := func(l []natsjs.PoisonMsg) string {
		var s []string
		for _, m := range l {
			s = append(s, m.ID+"="+m.EventID+">"+m.Target)
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct {
		f    natsjs.PoisonFilter
		want string
	}{
		{natsjs.PoisonFilter{}, "big=>audit.bulk b=ev-b>audit.log job:3=ev-job:3>audit.log a=ev-a>audit.log"},
		{natsjs.PoisonFilter{Limit: 2}, "big=>audit.bulk b=ev-b>audit.log"},
		{natsjs.PoisonFilter{Job: "log"}, "b=ev-b>audit.log a=ev-a>audit.log"},
		{natsjs.PoisonFilter{Job: "bulk", Limit: 1}, "big=>audit.bulk"},
		{natsjs.PoisonFilter{Reason: "IS REQUIRED"}, "job:3=ev-job:3>audit.log a=ev-a>audit.log"},
		{natsjs.PoisonFilter{Job: "log", Reason: "unknown"}, "b=ev-b>audit.log"},
	} {
		if got := ids(r.list(t, c.f)); got != c.want {
			t.Errorf("List(%+v) = %s, want %s", c.f, got, c.want)
		}
	}
	if _, err := r.poison.List(ctx, natsjs.PoisonFilter{Job: "nope"}); err == nil || !strings.Contains(err.Error(), "bulk, log") {
		t.Errorf("unknown job: %v", err)
	}

	stats, err := r.poison.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := r.list(t, natsjs.PoisonFilter{})
	if stats["log"].Messages != 2 || stats["bulk"].Messages != 2 ||
		!stats["log"].Oldest.Equal(all[3].Time) || !stats["bulk"].Oldest.Equal(all[2].Time) {
		t.Fatalf("stats %+v", stats)
	}

	d, err := r.poison.Discard(ctx, all[3].Seq)
	if err != nil || d.ID != "a" {
		t.Fatalf("discard: %+v %v", d, err)
	}
	if _, err := r.poison.Discard(ctx, all[3].Seq); !errors.Is(err, natsjs.ErrPoisonNotFound) {
		t.Fatalf("discard twice: %v", err)
	}
	if err := r.poison.Remove(ctx, all[3].Seq); err != nil {
		t.Fatalf("remove of a removed message: %v", err)
	}
	if got := ids(r.list(t, natsjs.PoisonFilter{Job: "log"})); got != "b=ev-b>audit.log" {
		t.Fatalf("after discard: %s", got)
	}
	if stats, _ = r.poison.Stats(ctx); stats["log"].Messages != 1 || !stats["log"].Oldest.Equal(all[1].Time) {
		t.Fatalf("stats after discard %+v", stats)
	}
}

// A payload cut to fit the broker is replayed only corrected.
func TestTruncatedPayloadNeedsACorrection(t *testing.T) {
	r := newPoisonRig(t)
	ctx := context.Background()
	m := message.NewMessage("cut-1", []byte(`{"id":"ev-cut","details":{"blob":"xxxx`))
	m.Metadata.Set(middleware.ReasonForPoisonedKey, "details: too big")
	m.Metadata.Set(middleware.PoisonedTopicKey, "audit.log")
	m.Metadata.Set(natsjs.HeaderPayloadTruncated, "9000000")
	if err := r.pub.Publish("audit.poison.log", m); err != nil {
		t.Fatal(err)
	}
	pm := r.list(t, natsjs.PoisonFilter{})[0]
	if !pm.Truncated || pm.EventID != "ev-cut" {
		t.Fatalf("%+v", pm)
	}
	if _, err := r.poison.Replay(ctx, pm.Seq, nil); err == nil || !strings.Contains(err.Error(), "corrected payload") {
		t.Fatalf("replay of a cut payload: %v", err)
	}
	if _, err := r.poison.Replay(ctx, pm.Seq, []byte(`{"id":"ev-cut"}`)); err != nil {
		t.Fatal(err)
	}
	got := r.next(t)
	got.Ack()
	if got.UUID != "cut-1" || string(got.Payload) != `{"id":"ev-cut"}` || got.Metadata.Get(natsjs.HeaderPayloadTruncated) != "" {
		t.Fatalf("replayed: %s %s %v", got.UUID, got.Payload, got.Metadata)
	}
}
