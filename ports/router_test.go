package ports

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
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
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	poison, err := ps.Subscribe(context.Background(), contract.PoisonPrefix+"log")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := NewRouter(RouterConfig{
		Subscriber: ps, Poison: ps, Reports: noReports{}, Attempts: 3, Backoff: time.Millisecond,
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
