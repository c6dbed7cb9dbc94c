package ports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/auditq/auditq/app"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// writerFunc adapts a function to audit.Writer.
type writerFunc func(context.Context, []audit.Event) (audit.WriteResult, error)

func (f writerFunc) Write(ctx context.Context, e []audit.Event) (audit.WriteResult, error) {
	return f(ctx, e)
}

// runRouter runs the real middleware chain over an in-memory pub/sub and
// returns the channel of poisoned messages.
// noReports is the report publisher of routers that get no report jobs.
type noReports struct{}

func (noReports) ReportGenerated(context.Context, string, audit.StoredReport) error {
	return errors.New("no report jobs in this test")
}

func runRouter(t *testing.T, w audit.Writer) (pub message.Publisher, poisoned <-chan *message.Message) {
	t.Helper()
	return runBatchRouter(t, w, nil)
}

// runBatchRouter is runRouter with the router's Unbatch.
func runBatchRouter(t *testing.T, w audit.Writer, unbatch func(*message.Message) []*message.Message) (pub message.Publisher, poisoned <-chan *message.Message) {
	t.Helper()
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	poison, err := ps.Subscribe(context.Background(), contract.PoisonPrefix+"log")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := NewRouter(RouterConfig{
		Subscriber: ps, Poison: ps, Reports: noReports{}, Unbatch: unbatch, Attempts: 3, Backoff: time.Millisecond,
		HandlerTimeout: time.Second, CloseTimeout: time.Second, BulkMaxEvents: 10,
		Metrics: NewMetrics(), Logger: log,
	}, app.Application{Commands: app.Commands{RecordEvents: command.NewRecordEventsHandler(w)}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Run(context.Background()) }()
	t.Cleanup(func() { _ = r.Close() })
	<-r.Running()
	return ps, poison
}

func TestPanicIsRecoveredAndPoisonedOnce(t *testing.T) {
	calls := 0
	pub, poisoned := runRouter(t, writerFunc(func(context.Context, []audit.Event) (audit.WriteResult, error) {
		calls++
		panic("boom")
	}))
	msg := message.NewMessage("m1", []byte(`{"id":"e1","action":"a","resourceType":"t","resourceId":"r"}`))
	if err := pub.Publish(contract.SubjectLog, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-poisoned:
		if r := p.Metadata.Get("reason_poisoned"); !strings.Contains(r, "handler panicked: boom") {
			t.Fatalf("reason = %q", r)
		}
		if calls != 1 {
			t.Fatalf("a panic was retried: %d calls", calls)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("panicking message was not poisoned")
	}
}

func TestTransientErrorIsRetriedThenNacked(t *testing.T) {
	calls := make(chan struct{}, 10)
	pub, poisoned := runRouter(t, writerFunc(func(context.Context, []audit.Event) (audit.WriteResult, error) {
		select {
		case calls <- struct{}{}:
		default: // redeliveries after the nack may outnumber the buffer
		}
		return audit.WriteResult{}, errors.New("connection refused")
	}))
	msg := message.NewMessage("m2", []byte(`{"id":"e2","action":"a","resourceType":"t","resourceId":"r"}`))
	if err := pub.Publish(contract.SubjectLog, msg); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("attempt %d did not happen", i+1)
		}
	}
	select {
	case p := <-poisoned:
		t.Fatalf("transient failure poisoned: %s", p.Metadata.Get("reason_poisoned"))
	case <-time.After(200 * time.Millisecond):
	}
}

// eachWriter is an audit.EachWriter whose outcome per event is decided by
// outcome; it records the ids of every WriteEach call.
type eachWriter struct {
	mu      sync.Mutex
	calls   [][]string
	outcome func(id string, call int) error
}

func (w *eachWriter) Write(ctx context.Context, events []audit.Event) (audit.WriteResult, error) {
	_, errs := w.WriteEach(ctx, events)
	return audit.WriteResult{Inserted: len(events)}, errors.Join(errs...)
}

func (w *eachWriter) WriteEach(_ context.Context, events []audit.Event) ([]audit.WriteResult, []error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, len(events))
	results, errs := make([]audit.WriteResult, len(events)), make([]error, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
		if errs[i] = w.outcome(ev.ID, len(w.calls)); errs[i] == nil {
			results[i].Inserted = 1
		}
	}
	w.calls = append(w.calls, ids)
	return results, errs
}

func (w *eachWriter) callIDs() [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]string(nil), w.calls...)
}

func eventMsg(id, payload string) *message.Message {
	return message.NewMessage(id, []byte(payload))
}

// A batch of audit.log messages is settled message by message, by the
// rules of a single message: committed ones are acked, an invalid event
// and one the database refuses are poisoned with their reasons and acked,
// a transient failure is retried for its own message only, and one that
// stays transient is left unacked (for the subscriber to nak) without
// being poisoned.
func TestBatchSettlesEachMessageByItsOwnOutcome(t *testing.T) {
	w := &eachWriter{outcome: func(id string, call int) error {
		switch {
		case id == "refused":
			return fmt.Errorf("%w: value too long for the column", audit.ErrPermanent)
		case id == "flaky" && call == 0:
			return errors.New("connection reset")
		case id == "down":
			return errors.New("connection refused")
		}
		return nil
	}}
	msgs := []*message.Message{
		eventMsg("ok", `{"id":"ok","action":"a","resourceType":"t","resourceId":"r"}`),
		eventMsg("invalid", `{"id":"invalid","action":"a","resourceId":"r"}`),
		eventMsg("refused", `{"id":"refused","action":"a","resourceType":"t","resourceId":"r"}`),
		eventMsg("flaky", `{"id":"flaky","action":"a","resourceType":"t","resourceId":"r"}`),
		eventMsg("down", `{"id":"down","action":"a","resourceType":"t","resourceId":"r"}`),
	}
	pub, poisoned := runBatchRouter(t, w, func(m *message.Message) []*message.Message {
		if m.UUID == "batch-1" {
			return msgs
		}
		return nil
	})
	if err := pub.Publish(contract.SubjectLog, message.NewMessage("batch-1", nil)); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for range 2 {
		select {
		case p := <-poisoned:
			reasons[p.UUID] = p.Metadata.Get("reason_poisoned")
			if topic := p.Metadata.Get("topic_poisoned"); topic != contract.SubjectLog {
				t.Errorf("poisoned %s: topic_poisoned %q, want %s", p.UUID, topic, contract.SubjectLog)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 2 messages poisoned: %v", len(reasons), reasons)
		}
	}
	if r := reasons["invalid"]; !strings.Contains(r, "resourceType") {
		t.Errorf("invalid event poisoned with reason %q, want one naming resourceType", r)
	}
	if r := reasons["refused"]; !strings.Contains(r, "value too long") {
		t.Errorf("refused event poisoned with reason %q", r)
	}
	// Three attempts: every valid event, then the ones still open (the
	// in-memory pub/sub redelivers the nacked batch after that).
	deadline := time.Now().Add(5 * time.Second)
	for len(w.callIDs()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	calls := w.callIDs()
	want := [][]string{{"ok", "refused", "flaky", "down"}, {"flaky", "down"}, {"down"}}
	if len(calls) < 3 || fmt.Sprint(calls[:3]) != fmt.Sprint(want) {
		t.Fatalf("writes %v, want %v first", calls, want)
	}
	for _, m := range msgs {
		wantAcked := m.UUID != "down"
		if got := isAcked(m); got != wantAcked {
			t.Errorf("message %s acked %v, want %v", m.UUID, got, wantAcked)
		}
	}
	select {
	case p := <-poisoned:
		t.Fatalf("%s poisoned after a transient failure: %s", p.UUID, p.Metadata.Get("reason_poisoned"))
	case <-time.After(100 * time.Millisecond):
	}
}
