package ports

import (
	"bytes"
	"context"
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

// syncBuffer is a log sink for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bulkSink takes a bulk job's rejections and result.
type bulkSink struct{ done chan command.BulkResult }

func (bulkSink) BulkRejected(context.Context, string, audit.Rejection) error { return nil }
func (b bulkSink) BulkResult(_ context.Context, r command.BulkResult) error {
	b.done <- r
	return nil
}

// A poisoned single event and each rejected event of a bulk job are
// logged alike: "message poisoned" with the message id and the event id.
func TestPoisonedMessagesAndBulkEventsAreLoggedWithTheirEventID(t *testing.T) {
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	poisoned, err := ps.Subscribe(context.Background(), contract.PoisonPrefix+"log")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ok := writerFunc(func(_ context.Context, e []audit.Event) (audit.WriteResult, error) {
		return audit.WriteResult{Inserted: len(e)}, nil
	})
	sink := bulkSink{done: make(chan command.BulkResult, 1)}
	r, err := NewRouter(RouterConfig{
		Subscriber: ps, Poison: ps, Reports: noReports{}, Attempts: 1, Backoff: time.Millisecond,
		HandlerTimeout: time.Second, CloseTimeout: time.Second, BulkMaxEvents: 10,
		Metrics: NewMetrics(), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}, app.Application{Commands: app.Commands{
		RecordEvents: command.NewRecordEventsHandler(ok),
		RecordBulk:   command.NewRecordBulkHandler(ok, sink),
	}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Run(context.Background()) }()
	t.Cleanup(func() { _ = r.Close() })
	<-r.Running()

	valid := `{"id":"ok-1","userId":"u","action":"a","resourceType":"t","resourceId":"r"}`
	bulk := `{"events":[` + valid + `,{"id":"bad-1","action":"a"},{"userId":"u"}]}`
	if err := ps.Publish(contract.SubjectBulk, message.NewMessage("AUDIT:128", []byte(bulk))); err != nil {
		t.Fatal(err)
	}
	if err := ps.Publish(contract.SubjectLog, message.NewMessage("m-7", []byte(`{"id":"single-1","action":"a"}`))); err != nil {
		t.Fatal(err)
	}
	// A whole bulk job rejected names no event.
	if err := ps.Publish(contract.SubjectBulk, message.NewMessage("m-8", []byte(`{"events":[]}`))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sink.done:
	case <-time.After(5 * time.Second):
		t.Fatal("bulk job not done")
	}
	select {
	case <-poisoned:
	case <-time.After(5 * time.Second):
		t.Fatal("single event not poisoned")
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), "message poisoned") < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{
		`handler=audit.log id=m-7 event_id=single-1 reason=`,
		`handler=audit.bulk id=m-8 reason="events: must hold at least one event"`,
		`handler=audit.bulk id=AUDIT:128:1 event_id=bad-1 reason="events[1].`,
		`handler=audit.bulk id=AUDIT:128:2 event_id=AUDIT:128:2 reason="events[2].action: is required: a non-empty string" bulk_id=AUDIT:128 bulk_index=2`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line with %s in:\n%s", want, logs.String())
		}
	}
}
