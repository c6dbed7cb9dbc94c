package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/auditq/auditq/app"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// RouterConfig configures the job router.
type RouterConfig struct {
	// Subscriber delivers job messages; Poison receives the ones that can
	// never succeed.
	Subscriber message.Subscriber
	Poison     message.Publisher
	// Reports publishes the report an audit.report.generate job stored
	// (audit.results.report).
	Reports ReportPublisher
	// Unbatch returns the messages a batch message of Subscriber carries,
	// nil for a single message (natsjs.Unbatch); nil: no batches. The
	// audit.log handler settles each message of a batch by the rules of a
	// single one (see handlers.logBatch).
	Unbatch func(*message.Message) []*message.Message

	// Attempts is how often a transient failure is tried before the message
	// is handed back to JetStream for a later redelivery.
	Attempts int
	// Backoff is the wait before the second attempt; it doubles after.
	Backoff time.Duration
	// HandlerTimeout bounds one attempt.
	HandlerTimeout time.Duration
	// CleanupTimeout bounds one attempt of a cleanup job, which may run for
	// many minutes (the subscriber reports progress meanwhile, so JetStream
	// does not redeliver it); zero means HandlerTimeout.
	CleanupTimeout time.Duration
	// CloseTimeout bounds how long Close waits for running handlers.
	CloseTimeout time.Duration

	BulkMaxEvents int
	FutureSkew    time.Duration

	// Identity says whether the service may believe who started a cleanup
	// or report job (HeaderStartedBy, the schedule's header).
	Identity Identity

	Metrics *Metrics
	Logger  *slog.Logger
}

// Validate reports every missing or out-of-range setting at once.
func (c RouterConfig) Validate() error {
	var errs []error
	if c.Subscriber == nil || c.Poison == nil || c.Reports == nil {
		errs = append(errs, errors.New("router: Subscriber, Poison and Reports are required"))
	}
	if c.Attempts < 1 {
		errs = append(errs, errors.New("router: Attempts must be at least 1"))
	}
	if c.HandlerTimeout <= 0 || c.BulkMaxEvents < 1 {
		errs = append(errs, errors.New("router: HandlerTimeout and BulkMaxEvents must be positive"))
	}
	if c.Metrics == nil || c.Logger == nil {
		errs = append(errs, errors.New("router: Metrics and Logger are required"))
	}
	return errors.Join(errs...)
}

// NewRouter returns a Watermill router with one handler per job subject.
// Each handler runs inside, from the outside in: metrics, the poison queue
// (permanent failures only, published to audit.poison.<job> and acked),
// retry with exponential backoff (transient failures only), and panic
// recovery (a panic is a permanent failure of that message). A transient
// failure that outlasts its attempts is nacked: JetStream redelivers it
// later, it is never dropped.
func NewRouter(cfg RouterConfig, application app.Application) (*message.Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, WatermillLogger(cfg.Logger.With("component", "router")))
	if err != nil {
		return nil, err
	}
	h := &handlers{app: application, cfg: cfg}
	poisonSubject := make(map[string]string) // job subject -> its poison subject
	for job, subj := range contract.PoisonJobs() {
		poisonSubject[subj] = contract.PoisonPrefix + job
	}
	jobs := []struct {
		name, subject string
		fn            message.NoPublishHandlerFunc
	}{
		{handlerLog, contract.SubjectLog, h.log},
		{handlerBulk, contract.SubjectBulk, h.bulk},
		{handlerCleanup, contract.SubjectCleanup, h.cleanup},
		{handlerReportGenerate, contract.SubjectReportGenerate, h.reportGenerate},
	}
	for _, j := range jobs {
		handler := r.AddConsumerHandler(j.name, j.subject, cfg.Subscriber, j.fn)
		poison, err := middleware.PoisonQueueWithFilter(cfg.Poison, poisonSubject[j.subject], audit.IsPermanent)
		if err != nil {
			return nil, err
		}
		if j.subject == contract.SubjectLog {
			h.poisonLog = poison
		}
		handler.AddMiddleware(
			observe(j.name, cfg.Metrics, cfg.Logger),
			poison,
			middleware.Retry{
				MaxRetries:          cfg.Attempts - 1,
				InitialInterval:     cfg.Backoff,
				MaxInterval:         cfg.Backoff * 8,
				Multiplier:          2,
				RandomizationFactor: 0.1,
				ShouldRetry:         func(p middleware.RetryParams) bool { return !audit.IsPermanent(p.Err) },
				Logger:              WatermillLogger(cfg.Logger.With("component", "retry", "handler", j.name)),
			}.Middleware,
			panicIsPermanent(cfg.Logger),
			middleware.Recoverer,
		)
	}
	return r, nil
}

// observe records latency and poisoning per handler and logs the outcome.
func observe(name string, m *Metrics, log *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			out, err := h(msg)
			m.handled(name, time.Since(start), err)
			if reason := msg.Metadata.Get(middleware.ReasonForPoisonedKey); reason != "" && err == nil {
				m.poisonedMessage(name)
				eventID := "" // other jobs' payloads are not events
				if name == handlerLog {
					eventID = audit.EventID(msg.Payload, msg.UUID)
				}
				logPoisoned(log, name, msg.UUID, eventID, reason)
			} else if err != nil {
				log.Warn("message failed; JetStream will redeliver it", "handler", name, "id", msg.UUID, "err", err)
			}
			return out, err
		}
	}
}

// logPoisoned logs one message or bulk event that went to the poison
// stream, naming the event it holds (eventID, omitted when the payload is
// not one event) besides the message id.
func logPoisoned(log *slog.Logger, handler, id, eventID, reason string, attrs ...any) {
	args := []any{"handler", handler, "id", id}
	if eventID != "" {
		args = append(args, "event_id", eventID)
	}
	args = append(args, "reason", reason)
	log.Warn("message poisoned", append(args, attrs...)...)
}

// panicIsPermanent turns a recovered panic into a short permanent error (the
// stack goes to the log, not into the poison headers).
func panicIsPermanent(log *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			var p middleware.RecoveredPanicError
			if errors.As(err, &p) {
				log.Error("handler panicked", "id", msg.UUID, "panic", fmt.Sprint(p.V), "stack", p.Stacktrace)
				return out, fmt.Errorf("%w: handler panicked: %v", audit.ErrPermanent, p.V)
			}
			return out, err
		}
	}
}

type handlers struct {
	app app.Application
	cfg RouterConfig
	// poisonLog is the audit.log handler's poison queue, which logBatch
	// applies to each message of a batch on its own.
	poisonLog message.HandlerMiddleware
}

// receipt describes how msg reached us. The received time is the time the
// stream stored the message, so every redelivery yields the same row.
func (h *handlers) receipt(msg *message.Message) audit.Receipt {
	received := time.Now()
	if ts, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get("nats_timestamp")); err == nil {
		received = ts
	}
	return audit.Receipt{ReceivedAt: received, FallbackID: msg.UUID, FutureSkew: h.cfg.FutureSkew}
}

func (h *handlers) ctx(msg *message.Message) (context.Context, context.CancelFunc) {
	return context.WithTimeout(msg.Context(), h.cfg.HandlerTimeout)
}

// tenant is the tenant of the subject msg arrived on: the default
// tenant for audit.log and audit.bulk, T for audit.t.T.log and
// audit.t.T.bulk (docs/tenants.md). A payload never names its tenant: the
// decoder refuses a "tenant" member as an unknown field. Any other
// subject, or a tenant token that is no tenant name, is a permanent error
// (the message is poisoned, never stored under a guessed tenant).
func tenant(msg *message.Message) (string, error) {
	subject := msg.Metadata.Get("nats_subject")
	if subject == "" {
		return audit.DefaultTenant, nil // a subscriber that does not say: the job subject itself
	}
	_, t, ok := contract.TenantOf(subject)
	if !ok {
		return "", audit.Invalid("subject", "%q is not an event subject (audit.log, audit.bulk, audit.t.<tenant>.log, audit.t.<tenant>.bulk)", subject)
	}
	if t != audit.DefaultTenant {
		if err := audit.CheckTenant("subject", t); err != nil {
			return "", err
		}
	}
	return t, nil
}

// log handles audit.log (and audit.t.<tenant>.log): one event, or a
// batch of messages of one event each (logBatch).
func (h *handlers) log(msg *message.Message) error {
	if h.cfg.Unbatch != nil {
		if msgs := h.cfg.Unbatch(msg); msgs != nil {
			return h.logBatch(msg, msgs)
		}
	}
	t, err := tenant(msg)
	if err != nil {
		h.cfg.Metrics.rejectedEvents(handlerLog, 1)
		return err
	}
	ev, err := audit.DecodeEventShared(msg.Payload, h.receipt(msg))
	if err != nil {
		h.cfg.Metrics.rejectedEvents(handlerLog, 1)
		return err
	}
	ev.Tenant = t
	ctx, cancel := h.ctx(msg)
	defer cancel()
	res, err := h.app.Commands.RecordEvents.Handle(ctx, []audit.Event{ev})
	if err != nil {
		return err
	}
	h.cfg.Metrics.recorded(handlerLog, res)
	return nil
}

// bulk handles audit.bulk (and audit.t.<tenant>.bulk): {"events": [...]}.
func (h *handlers) bulk(msg *message.Message) error {
	t, err := tenant(msg)
	if err != nil {
		return err
	}
	ctx, cancel := h.ctx(msg)
	defer cancel()
	events, rejected, err := audit.DecodeBulk(msg.Payload, h.cfg.BulkMaxEvents, h.receipt(msg))
	if err != nil {
		// Rejected as a whole: the result says so to its publisher, and
		// the poison queue takes the message once the result is out.
		if rerr := h.app.Commands.RecordBulk.Refuse(ctx, command.Bulk{ID: msg.UUID, Tenant: t}, err); rerr != nil {
			return rerr
		}
		return err
	}
	for i := range events {
		events[i].Tenant = t
	}
	for i := range rejected {
		rejected[i].Tenant = t
	}
	res, err := h.app.Commands.RecordBulk.Handle(ctx, command.Bulk{
		ID: msg.UUID, Tenant: t, Total: len(events) + len(rejected), Events: events, Rejected: rejected,
	})
	if err != nil {
		return err
	}
	h.cfg.Metrics.recorded(handlerBulk, audit.WriteResult{Inserted: res.Inserted, Duplicates: res.Duplicates})
	h.cfg.Metrics.ObserveBatch("bulk", len(events))
	h.cfg.Metrics.rejectedEvents(handlerBulk, len(rejected))
	// Each rejected event went to the poison stream as a message of its
	// own, "<bulk id>:<index>", the id it is stored under if it names none.
	for _, rej := range rejected {
		id := msg.UUID + ":" + strconv.Itoa(rej.Index)
		logPoisoned(h.cfg.Logger, handlerBulk, id, audit.EventID(rej.Raw, id), rej.Error,
			"bulk_id", msg.UUID, "bulk_index", rej.Index)
	}
	return nil
}

// logBatch handles a batch of audit.log messages, each by the rules of a
// single message: a message whose event is invalid, or that the database
// refuses, or whose handling panics (permanent failures) goes to the
// poison stream with its reason through the handler's own poison queue,
// and is acked; an event committed (or found already stored) is acked;
// the valid events are committed together (RecordEvents.HandleEach, each
// a write of its own in the group commit). A transient failure of any
// event is returned (never as a permanent error, so that the poison queue
// around the batch leaves it alone): the retry middleware runs the batch
// again, and a run handles only the messages not acked yet, so each event
// gets the attempts and backoff of a single message; after the last one
// the router nacks the batch, and the subscriber naks every message not
// acked, for redelivery.
func (h *handlers) logBatch(batch *message.Message, msgs []*message.Message) (err error) {
	open := make([]*message.Message, 0, len(msgs))
	for _, msg := range msgs {
		if !isAcked(msg) {
			// The poison queue names the topic and handler from the context.
			msg.SetContext(batch.Context())
			open = append(open, msg)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			h.cfg.Logger.Error("handler panicked", "id", batch.UUID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = h.poisonAll(open, fmt.Errorf("%w: handler panicked: %v", audit.ErrPermanent, p))
		}
	}()
	var failed error // the last transient failure
	events := make([]audit.Event, 0, len(open))
	owners := make([]*message.Message, 0, len(open))
	for _, msg := range open {
		ev, err := h.decodeOne(msg)
		if err != nil {
			h.cfg.Metrics.rejectedEvents(handlerLog, 1)
			if err := h.poisonOne(msg, err); err != nil {
				failed = err
			}
			continue
		}
		events, owners = append(events, ev), append(owners, msg)
	}
	ctx, cancel := context.WithTimeout(batch.Context(), h.cfg.HandlerTimeout)
	defer cancel()
	results, errs := h.app.Commands.RecordEvents.HandleEach(ctx, events)
	for i, msg := range owners {
		switch err := errs[i]; {
		case err == nil:
			h.cfg.Metrics.recorded(handlerLog, results[i])
			msg.Ack()
		case audit.IsPermanent(err):
			if err := h.poisonOne(msg, err); err != nil {
				failed = err
			}
		default:
			failed = err
		}
	}
	if failed != nil {
		// %v: a transient failure, whatever it wraps.
		return fmt.Errorf("%d of %d events not recorded yet, the last because: %v", countOpen(msgs), len(msgs), failed)
	}
	return nil
}

// decodeOne decodes one message of a batch, of the tenant of its own
// subject; a panic is its permanent failure.
func (h *handlers) decodeOne(msg *message.Message) (ev audit.Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			h.cfg.Logger.Error("handler panicked", "id", msg.UUID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: handler panicked: %v", audit.ErrPermanent, p)
		}
	}()
	t, err := tenant(msg)
	if err != nil {
		return audit.Event{}, err
	}
	ev, err = audit.DecodeEventShared(msg.Payload, h.receipt(msg))
	ev.Tenant = t
	return ev, err
}

// poisonOne sends one message of a batch to the poison stream with cause
// as its reason, through the audit.log poison queue (the headers a single
// message gets), and acks it; it returns why that failed.
func (h *handlers) poisonOne(msg *message.Message, cause error) error {
	_, err := h.poisonLog(func(*message.Message) ([]*message.Message, error) { return nil, cause })(msg)
	if err != nil {
		return fmt.Errorf("poison %s: %v", msg.UUID, err)
	}
	h.cfg.Metrics.poisonedMessage(handlerLog)
	logPoisoned(h.cfg.Logger, handlerLog, msg.UUID, audit.EventID(msg.Payload, msg.UUID), msg.Metadata.Get(middleware.ReasonForPoisonedKey))
	msg.Ack()
	return nil
}

// poisonAll poisons every message of msgs not acked yet; it returns the
// last failure to do so.
func (h *handlers) poisonAll(msgs []*message.Message, cause error) error {
	var failed error
	for _, msg := range msgs {
		if !isAcked(msg) {
			if err := h.poisonOne(msg, cause); err != nil {
				failed = err
			}
		}
	}
	return failed
}

func isAcked(msg *message.Message) bool {
	select {
	case <-msg.Acked():
		return true
	default:
		return false
	}
}

func countOpen(msgs []*message.Message) int {
	n := 0
	for _, msg := range msgs {
		if !isAcked(msg) {
			n++
		}
	}
	return n
}
