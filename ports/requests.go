package ports

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/auditq/auditq/app"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/ports/contract"
)

// ServiceName is the micro service name (nats micro ls); its version is
// the binary's (ReadBuild().Semver()).
const ServiceName = "auditq"

// Error codes of the request service, in the Nats-Service-Error-Code
// header; Nats-Service-Error holds the message.
const (
	CodeBadRequest = "400" // the message names the field and the rule
	CodeNotFound   = "404"
	CodeInternal   = "500" // details only in the service log
	CodeStopping   = "503" // the instance is shutting down; retry
	CodeTimeout    = "504" // the deadline (AUDITQ_REQUEST_TIMEOUT) passed
	CodeDisabled   = "501" // the feature is switched off (e.g. AUDITQ_TAMPER_EVIDENCE)
	CodeConflict   = "409" // the stored state forbids it (a checkpoint onto a trail signed by an untrusted key)
	CodeForbidden  = "403" // a reader bound to a tenant asked beyond it (docs/tenants.md); the message names the field
	CodeBusy       = "429" // every slot of the request's pool stayed taken for QueueWait, or too many wait already; retry later
)

// Request headers auditq reads to record who asked.
const (
	// HeaderRequestInfo is set by the NATS server on requests that cross
	// an account boundary (service imports).
	HeaderRequestInfo = "Nats-Request-Info"
	// HeaderRequester is an identity the client states itself; it is
	// recorded but labelled unverified.
	HeaderRequester = "Auditq-Requester"
)

// RequestsConfig configures the request service.
type RequestsConfig struct {
	// Timeout is the deadline of every request.
	Timeout time.Duration
	// StopTimeout bounds how long Stop waits for requests in progress.
	StopTimeout time.Duration
	Logger      *slog.Logger
	// Identity says whether a request's Nats-Request-Info names who asked.
	Identity Identity
	// Tenants binds each reader to the tenant of its account
	// (docs/tenants.md); the zero value binds none.
	Tenants TenantPolicy
	// Metrics gets every answer (auditq_requests_total,
	// auditq_request_duration_seconds), the requests in flight and waiting
	// per pool, and every checkpoint written on request; nil records
	// nothing.
	Metrics *Metrics

	// Concurrency bounds the requests handled at once by this instance,
	// every endpoint but those of the report pool together; zero means
	// DefaultRequestConcurrency.
	Concurrency int
	// ReportConcurrency bounds, apart from Concurrency, the long requests
	// (audit.report, audit.admin.cleanup.dryrun), so that they never hold
	// up searches; zero means DefaultReportConcurrency.
	ReportConcurrency int
	// QueueWait is how long a request waits for a free slot of its pool
	// before it is answered CodeBusy; zero means DefaultQueueWait. At most
	// MaxWaitingPerSlot times the pool's slots wait at once; a request
	// beyond that is answered CodeBusy at once.
	QueueWait time.Duration
	// Export configures the streaming of audit.export.
	Export ExportConfig
	// Streams answers audit.streams; nil answers an empty list.
	Streams StreamLister
}

// StreamLister lists the log streams with their state (streams.Runner).
type StreamLister interface {
	List(ctx context.Context) ([]contract.StreamView, error)
}

// Defaults of RequestsConfig; the service derives its own from
// AUDITQ_DATABASE_MAX_CONNS (config.Config.RequestPools).
const (
	DefaultRequestConcurrency = 4
	DefaultReportConcurrency  = 2
	DefaultQueueWait          = 2 * time.Second
	// MaxWaitingPerSlot bounds the requests waiting for a pool: this many
	// per slot (the memory of a flood stays bounded).
	MaxWaitingPerSlot = 16
)

func (c *RequestsConfig) setDefaults() {
	if c.StopTimeout <= 0 {
		c.StopTimeout = c.Timeout + time.Second
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultRequestConcurrency
	}
	if c.ReportConcurrency == 0 {
		c.ReportConcurrency = DefaultReportConcurrency
	}
	if c.QueueWait == 0 {
		c.QueueWait = DefaultQueueWait
	}
}

// Validate reports missing or out-of-range settings.
func (c RequestsConfig) Validate() error {
	if c.Timeout <= 0 || c.Logger == nil {
		return errors.New("requests: Timeout must be positive and Logger set")
	}
	if c.Concurrency < 1 || c.ReportConcurrency < 1 || c.QueueWait < 0 {
		return fmt.Errorf("requests: Concurrency (%d) and ReportConcurrency (%d) must be at least 1, QueueWait (%s) not negative",
			c.Concurrency, c.ReportConcurrency, c.QueueWait)
	}
	return c.Export.Validate()
}

// Pools of the request service: the label of auditq_requests_in_flight
// and auditq_requests_waiting.
const (
	PoolRequests = "requests" // every endpoint but those of the other pools
	PoolReports  = "reports"  // audit.report, audit.admin.cleanup.dryrun
	PoolExports  = "exports"  // audit.export, each holding its slot until the export ends
)

// Pools lists the pools of the request service.
var Pools = []string{PoolRequests, PoolReports, PoolExports}

// Requests is the NATS micro service answering reports and searches. A
// request is handled in a goroutine of its own once it holds a slot of its
// pool (PoolRequests or PoolReports), so that many viewers are served at
// once while the database sees at most Concurrency plus ReportConcurrency
// requests of this instance; more instances share the load through the
// micro queue group.
type Requests struct {
	svc micro.Service
	nc  *nats.Conn // answers go out on it, not through micro.Request (see reply)
	cfg RequestsConfig
	app app.Application

	pools map[string]*pool
	stop  chan struct{} // closed by Stop: waiting requests are answered 503

	mu       sync.Mutex
	stopping bool
	inFlight sync.WaitGroup

	// Exports stream from goroutines of their own (ports/export.go).
	exportCtx      context.Context
	exportCancel   context.CancelFunc // at Stop: running exports end
	exportsRunning sync.WaitGroup
}

// pool bounds the requests of one kind handled at once.
type pool struct {
	name       string
	slots      chan struct{}
	waiting    atomic.Int64
	maxWaiting int64
}

func newPool(name string, n int) *pool {
	return &pool{name: name, slots: make(chan struct{}, n), maxWaiting: int64(n) * MaxWaitingPerSlot}
}

// errBusy: no slot became free within QueueWait, or too many requests
// wait already.
var errBusy = errors.New("busy")

// errStopping: the service stopped while the request waited.
var errStopping = errors.New("stopping")

// acquire takes a slot of p, waiting up to wait (and not past ctx's
// deadline). It returns errBusy when none came free or too many wait
// already, errStopping when stop closed meanwhile. The gauges of m follow
// the waiting requests.
func (p *pool) acquire(ctx context.Context, wait time.Duration, stop <-chan struct{}, m *Metrics) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	if p.waiting.Add(1) > p.maxWaiting {
		p.waiting.Add(-1)
		return errBusy
	}
	m.requestWaiting(p.name, 1)
	defer func() { p.waiting.Add(-1); m.requestWaiting(p.name, -1) }()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return errBusy
	case <-ctx.Done():
		return errBusy
	case <-stop:
		return errStopping
	}
}

func (p *pool) release() { <-p.slots }

// take takes a slot of p for a request answered on req, as acquire does,
// and counts it in the in-flight gauge; it returns the function that
// gives the slot back. When no slot came, it answers req (CodeStopping or
// CodeBusy) and returns that code and a nil function.
func (r *Requests) take(ctx context.Context, p *pool, req responder) (func(), string) {
	switch err := p.acquire(ctx, r.cfg.QueueWait, r.stop, r.cfg.Metrics); {
	case errors.Is(err, errStopping):
		respondError(req, CodeStopping, "auditq is shutting down; retry the request", "")
		return nil, CodeStopping
	case err != nil:
		respondError(req, CodeBusy, busyMessage(p), "")
		return nil, CodeBusy
	}
	r.cfg.Metrics.requestInFlight(p.name, 1)
	return func() { p.release(); r.cfg.Metrics.requestInFlight(p.name, -1) }, CodeOK
}

// busyMessage is the CodeBusy answer of a request that found no slot of p.
func busyMessage(p *pool) string {
	return fmt.Sprintf("auditq is busy: all %d %s slots of this instance stayed taken; retry shortly", cap(p.slots), p.name)
}

// NewRequests registers service "auditq" with its endpoints on nc. It
// returns an error when the service cannot subscribe.
func NewRequests(nc *nats.Conn, cfg RequestsConfig, application app.Application) (*Requests, error) {
	cfg.setDefaults()
	cfg.Export.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Requests{nc: nc, cfg: cfg, app: application, stop: make(chan struct{}), pools: map[string]*pool{
		PoolRequests: newPool(PoolRequests, cfg.Concurrency),
		PoolReports:  newPool(PoolReports, cfg.ReportConcurrency),
		PoolExports:  newPool(PoolExports, cfg.Export.MaxRunning),
	}}
	r.exportCtx, r.exportCancel = context.WithCancel(context.Background())
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     ReadBuild().Semver(),
		Description: "auditq audit trail: compliance reports, search, events, proofs and checkpoints",
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			cfg.Logger.Error("request service error", "subject", e.Subject, "err", e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start micro service %s: %w", ServiceName, err)
	}
	q := application.Queries
	endpoints := []endpointSpec{
		{"report", contract.SubjectReport, endpointIn(r, PoolReports, contract.SubjectReport, func(ctx context.Context, in audit.ReportRequest, who query.Requester) (any, error) {
			return q.Report.Handle(ctx, query.ReportInput{Request: in, Trigger: audit.TriggerRequest, Requester: who})
		})},
		{"report-get", contract.SubjectReportGet, endpoint(r, contract.SubjectReportGet, func(ctx context.Context, in query.GetReportRequest, who query.Requester) (any, error) {
			return q.GetReport.Handle(ctx, in, who)
		})},
		{"report-list", contract.SubjectReportList, endpoint(r, contract.SubjectReportList, func(ctx context.Context, in query.ListReportsRequest, who query.Requester) (any, error) {
			res, err := q.ListReports.Handle(ctx, in, who)
			return contract.ReportList{Reports: res.Reports, NextCursor: contract.Nullable(res.NextCursor)}, err
		})},
		{"query", contract.SubjectQuery, endpoint(r, contract.SubjectQuery, func(ctx context.Context, in query.SearchRequest, who query.Requester) (any, error) {
			res, err := q.Search.Handle(ctx, in, who)
			out := contract.SearchPage{Events: make([]contract.EventView, len(res.Events)), NextCursor: contract.Nullable(res.NextCursor)}
			for i, e := range res.Events {
				out.Events[i] = contract.ViewOf(e)
			}
			return out, err
		})},
		{"event-get", contract.SubjectEventGet, endpoint(r, contract.SubjectEventGet, func(ctx context.Context, in query.GetEventRequest, who query.Requester) (any, error) {
			ev, err := q.GetEvent.Handle(ctx, in, who)
			return contract.ViewOf(ev), err
		})},
		{"event-proof", contract.SubjectEventProof, endpoint(r, contract.SubjectEventProof, func(ctx context.Context, in query.EventProofRequest, who query.Requester) (any, error) {
			return q.EventProof.Handle(ctx, in, who)
		})},
		{"pubkey", contract.SubjectPubKey, endpoint(r, contract.SubjectPubKey, func(ctx context.Context, in query.PublicKeyRequest, who query.Requester) (any, error) {
			return q.PublicKey.Handle(ctx, in, who)
		})},
		{"checkpoint-write", contract.SubjectCheckpointWrite, endpoint(r, contract.SubjectCheckpointWrite, func(ctx context.Context, _ checkpointWriteRequest, _ query.Requester) (any, error) {
			return r.writeCheckpoint(ctx, application.Commands.WriteCheckpoint)
		})},
		{"admin-erase", contract.SubjectAdminErase, endpoint(r, contract.SubjectAdminErase, func(ctx context.Context, in command.EraseRequest, who query.Requester) (any, error) {
			if in.UserIDs != nil {
				return application.Commands.Erase.HandleList(ctx, in, who.Details())
			}
			return application.Commands.Erase.Handle(ctx, in, who.Details())
		})},
	}
	endpoints = append(endpoints, adminEndpoints(r, application)...)
	endpoints = append(endpoints, jobEndpoints(r, application)...)
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, e.handler, micro.WithEndpointSubject(e.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("add endpoint %s: %w", e.subject, err)
		}
	}
	if err := svc.AddEndpoint("export", r.exportEndpoint(), micro.WithEndpointSubject(contract.SubjectExport)); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("add endpoint %s: %w", contract.SubjectExport, err)
	}
	if err := addSchemaEndpoint(svc); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("add endpoint %s: %w", contract.SubjectSchema, err)
	}
	streams := endpoint(r, contract.SubjectStreams, func(ctx context.Context, _ streamsRequest, _ query.Requester) (any, error) {
		out := contract.StreamList{Streams: []contract.StreamView{}}
		if cfg.Streams == nil {
			return out, nil
		}
		list, err := cfg.Streams.List(ctx)
		if list != nil {
			out.Streams = list
		}
		return out, err
	})
	if err := svc.AddEndpoint("streams", streams, micro.WithEndpointSubject(contract.SubjectStreams)); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("add endpoint %s: %w", contract.SubjectStreams, err)
	}
	// The subscriptions reach the server asynchronously: a request sent
	// right after start (by a client on another connection) could find no
	// responder yet. A round trip makes sure the server has them.
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("start micro service %s: register the endpoints: %w", ServiceName, err)
	}
	r.svc = svc
	return r, nil
}

// Stop unsubscribes the endpoints (requests still queued are answered 503),
// ends the running exports (each client gets a 503 with its resume
// cursor), then waits up to StopTimeout for requests in progress. It is
// idempotent.
func (r *Requests) Stop() error {
	r.mu.Lock()
	if !r.stopping {
		r.stopping = true
		close(r.stop)
	}
	r.mu.Unlock()
	err := r.svc.Stop()
	r.exportCancel()
	done := make(chan struct{})
	go func() { r.inFlight.Wait(); r.exportsRunning.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.StopTimeout):
		r.cfg.Logger.Warn("requests still in progress at shutdown")
	}
	if err != nil {
		return fmt.Errorf("stop micro service: %w", err)
	}
	return nil
}

// enter registers a request in progress, or reports that the service is
// stopping.
func (r *Requests) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.inFlight.Add(1)
	return true
}

// endpointSpec is one endpoint of the micro service.
type endpointSpec struct {
	name, subject string
	handler       micro.Handler
}

// endpoint adapts one application call to a micro handler of the request
// pool: see endpointIn.
func endpoint[Req any](r *Requests, subject string, call func(context.Context, Req, query.Requester) (any, error)) micro.Handler {
	return endpointIn(r, PoolRequests, subject, call)
}

// endpointIn adapts one application call to a micro handler: it takes a
// slot of pool poolName (or answers CodeBusy), then in a goroutine of its
// own decodes strictly, calls once under the deadline (counted from
// receipt, the wait included) and replies with JSON or an error from the
// table in fail.
func endpointIn[Req any](r *Requests, poolName, subject string, call func(context.Context, Req, query.Requester) (any, error)) micro.Handler {
	p := r.pools[poolName]
	return micro.HandlerFunc(func(m micro.Request) {
		start := time.Now()
		if !r.enter() {
			respondError(m, CodeStopping, "auditq is shutting down; retry the request", "")
			r.cfg.Metrics.request(subject, CodeStopping, time.Since(start))
			return
		}
		// The goroutine answers on the connection, never through m: micro
		// reads m's error state once this handler returns.
		req := reply{nc: r.nc, subject: m.Reply()}
		data, headers := m.Data(), m.Headers()
		go func() {
			defer r.inFlight.Done()
			code := CodeOK
			defer func() { r.cfg.Metrics.request(subject, code, time.Since(start)) }()
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
			defer cancel()
			release, c := r.take(ctx, p, req)
			if release == nil {
				code = c
				return
			}
			defer release()
			code = r.handle(ctx, req, subject, func(ctx context.Context) (any, error) {
				var in Req
				if err := DecodeRequest(data, &in); err != nil {
					return nil, err
				}
				return asBound(r, requester(headers, r.cfg.Identity), subject, in, func(who query.Requester) (any, error) {
					return call(ctx, in, who)
				})
			})
		}()
	})
}

// handle runs call and answers req with its result, or its error's code;
// it returns the code answered. A panic is answered 500 and logged.
func (r *Requests) handle(ctx context.Context, req responder, subject string, call func(context.Context) (any, error)) (code string) {
	defer func() {
		if p := recover(); p != nil {
			r.cfg.Logger.Error("request handler panicked", "subject", subject, "panic", fmt.Sprint(p))
			code = CodeInternal
			respondError(req, code, "internal error", "")
		}
	}()
	out, err := call(ctx)
	if err != nil {
		return r.fail(req, subject, err)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return r.fail(req, subject, fmt.Errorf("encode response: %w", err))
	}
	if err := req.Respond(body); err != nil {
		r.cfg.Logger.Warn("reply failed", "subject", subject, "err", err)
	}
	return CodeOK
}

// streamsRequest is an audit.streams request (no fields).
type streamsRequest struct{}

// checkpointWriteRequest is an audit.checkpoint.write request (no fields).
type checkpointWriteRequest struct{}

// CheckpointWritten is the answer of audit.checkpoint.write.
type CheckpointWritten struct {
	Checkpoint evidence.Checkpoint `json:"checkpoint"`
	// Published is false when the checkpoint is stored but not yet in the
	// stream AUDIT_CHECKPOINTS (the next checkpoint publishes it).
	Published bool `json:"published"`
}

// writeCheckpoint writes a checkpoint for audit.checkpoint.write.
func (r *Requests) writeCheckpoint(ctx context.Context, w *command.WriteCheckpointHandler) (any, error) {
	if w == nil {
		return nil, query.ErrTamperEvidenceOff
	}
	res, err := w.Handle(ctx, command.CheckpointRequest)
	cp := res.Checkpoint
	if res.Tampered != "" {
		r.cfg.Logger.Error("tamper evidence: the stored trail contradicts what was committed; the checkpoint signs what this instance knows",
			"checkpoint", cp.Seq, "problems", res.Tampered)
	}
	if err != nil && cp.Seq == 0 {
		return nil, err
	}
	if err != nil {
		r.cfg.Logger.Warn("checkpoint stored, not yet published", "seq", cp.Seq, "err", err)
	}
	r.cfg.Metrics.CheckpointWritten(cp.Time)
	r.cfg.Logger.Info("checkpoint written", "seq", cp.Seq, "reason", cp.Reason, "batches", cp.BatchSeq, "deletions", cp.DeletionSeq)
	return CheckpointWritten{Checkpoint: cp, Published: err == nil}, nil
}

// fail answers with the code of err, and returns that code: the one table
// mapping application errors to this transport.
func (r *Requests) fail(req responder, subject string, err error) string {
	var v *audit.ValidationError
	var f *audit.ForbiddenError
	switch {
	case errors.As(err, &v):
		respondError(req, CodeBadRequest, v.Error(), v.Field)
		return CodeBadRequest
	case errors.As(err, &f):
		respondError(req, CodeForbidden, f.Error(), f.Field)
		return CodeForbidden
	case errors.Is(err, audit.ErrNotFound):
		respondError(req, CodeNotFound, err.Error(), "")
		return CodeNotFound
	case errors.Is(err, query.ErrTamperEvidenceOff):
		respondError(req, CodeDisabled, err.Error(), "")
		return CodeDisabled
	case errors.Is(err, audit.ErrErasureOff):
		respondError(req, CodeDisabled, err.Error(), "")
		return CodeDisabled
	case errors.Is(err, audit.ErrLegalHold):
		respondError(req, CodeConflict, err.Error(), "userId")
		return CodeConflict
	case errors.Is(err, command.ErrForeignKey):
		r.cfg.Logger.Error("request refused", "subject", subject, "err", err)
		respondError(req, CodeConflict, err.Error(), "")
		return CodeConflict
	case errors.Is(err, context.DeadlineExceeded):
		r.cfg.Logger.Warn("request timed out", "subject", subject, "timeout", r.cfg.Timeout, "err", err)
		respondError(req, CodeTimeout, fmt.Sprintf("the request did not finish within %s", r.cfg.Timeout), "")
		return CodeTimeout
	default:
		r.cfg.Logger.Error("request failed", "subject", subject, "err", err)
		respondError(req, CodeInternal, "internal error", "")
		return CodeInternal
	}
}

// responder answers one request: a micro.Request in the handler micro
// calls, a reply once the request has gone on to a goroutine of its own.
type responder interface {
	Respond(data []byte, opts ...micro.RespondOpt) error
	Error(code, description string, data []byte, opts ...micro.RespondOpt) error
}

// reply answers a request on the connection, as micro.Request would: the
// answer to subject, an error with its code and message in the
// Nats-Service-Error(-Code) headers. The endpoint statistics of micro
// ($SRV.STATS) therefore count the requests but not their errors or
// their time; auditq_requests_total and auditq_request_duration_seconds
// do.
type reply struct {
	nc      *nats.Conn
	subject string
}

func (r reply) Respond(data []byte, _ ...micro.RespondOpt) error {
	if r.subject == "" {
		return micro.ErrRespond
	}
	return r.nc.Publish(r.subject, data)
}

func (r reply) Error(code, description string, data []byte, _ ...micro.RespondOpt) error {
	if r.subject == "" {
		return micro.ErrRespond
	}
	m := nats.NewMsg(r.subject)
	m.Header.Set(micro.ErrorCodeHeader, code)
	m.Header.Set(micro.ErrorHeader, description)
	m.Data = data
	return r.nc.PublishMsg(m)
}

// respondError sends a micro error: code and message in the
// Nats-Service-Error(-Code) headers, and as a JSON body
// {"code","error","field"?} for clients that only read the payload.
func respondError(req responder, code, msg, field string) {
	msg = strings.NewReplacer("\r", " ", "\n", " ").Replace(msg) // a header value is one line
	body, _ := json.Marshal(struct {
		Code  string `json:"code"`
		Error string `json:"error"`
		Field string `json:"field,omitempty"`
	}{code, msg, field})
	_ = req.Error(code, msg, body)
}

// Identity says whether the NATS server vouches for the Nats-Request-Info
// of a request: true when the service has an account of its own that no
// other user is in (AUDITQ_NATS_CONFIG), so that every request reaches it
// through a service import, and the server replaces any such header a
// client sent with its own (nats-server client.go, processServiceImport).
type Identity struct {
	Trusted bool
	Account string // the service's account: a request without the header came from within it
}

// TenantPolicy says how readers are bound to tenants (docs/tenants.md).
type TenantPolicy struct {
	// Enabled binds every reader whose account is not Unbound (nor the
	// service's own) to the tenant named as its account.
	Enabled bool
	// Unbound are the accounts whose readers may read every tenant
	// (AUDITQ_TENANT_UNBOUND_ACCOUNTS).
	Unbound []string
}

// tenantScoped are the request subjects whose answers are confined to the
// asker's tenant: the only ones a reader bound to a tenant may ask
// (besides audit.schema, which reads nothing).
var tenantScoped = map[string]bool{
	contract.SubjectReport: true, contract.SubjectReportGet: true, contract.SubjectReportList: true,
	contract.SubjectQuery: true, contract.SubjectEventGet: true, contract.SubjectEventProof: true,
	contract.SubjectPubKey: true, contract.SubjectExport: true,
}

// bind sets who's tenant scope under the policy, for a request on
// subject. With tenants enabled it fails closed, with a
// *audit.ForbiddenError naming "tenant": when the server did not vouch for
// the caller's account, when an account that is not unbound is no tenant
// name, and when a bound reader asks a subject that is not scoped to a
// tenant (operations, erasure, checkpoints, log streams).
func (r *Requests) bind(who *query.Requester, subject string) error {
	p := r.cfg.Tenants
	if !p.Enabled {
		return nil
	}
	v := who.Verified
	if v == nil {
		return audit.Forbidden("tenant", "the NATS server did not vouch for the caller's account (Nats-Request-Info), so its tenant is unknown")
	}
	if v.Account == r.cfg.Identity.Account || slices.Contains(p.Unbound, v.Account) {
		return nil
	}
	if audit.CheckTenant("tenant", v.Account) != nil {
		return audit.Forbidden("tenant", "account %q is not in AUDITQ_TENANT_UNBOUND_ACCOUNTS and its name is no tenant name (1 to %d of A-Z a-z 0-9 _ -)", v.Account, audit.MaxTenantLen)
	}
	who.Scope = audit.TenantScope{Bound: true, Tenant: v.Account}
	if !tenantScoped[subject] {
		return audit.Forbidden("tenant", "this reader is bound to tenant %q, and %s reaches beyond a tenant: only accounts of AUDITQ_TENANT_UNBOUND_ACCOUNTS may ask it", v.Account, subject)
	}
	return nil
}

// asBound binds who for a request on subject with body in (bind), then
// runs call as it. A refusal, by bind or by call (a
// *audit.ForbiddenError), is counted as a denied read (query.DenialAuditor).
func asBound[T any](r *Requests, who query.Requester, subject string, in any, call func(query.Requester) (T, error)) (T, error) {
	var out T
	err := r.bind(&who, subject)
	if err == nil {
		out, err = call(who)
	}
	if err != nil {
		r.app.Queries.Denials.Denied(who, subject, in, err)
	}
	return out, err
}

// requester reads who asked from the request headers.
func requester(h micro.Headers, id Identity) query.Requester {
	who := query.Requester{
		RequestInfo: nats.Header(h).Get(HeaderRequestInfo),
		Claimed:     nats.Header(h).Get(HeaderRequester),
	}
	if id.Trusted {
		who.Verified = verifiedIdentity(nats.Header(h).Values(HeaderRequestInfo), id.Account)
	}
	return who
}

// verifiedIdentity is the caller a server-set Nats-Request-Info names
// (fields acc, user, name of the server's ClientInfo); without the
// header, the request came from within the service's own account. It
// returns nil when the header is repeated or not such JSON.
func verifiedIdentity(values []string, account string) *query.Identity {
	switch len(values) {
	case 0:
		return &query.Identity{Account: account}
	case 1:
	default:
		return nil
	}
	var ci struct {
		Account string `json:"acc"`
		User    string `json:"user"`
		Name    string `json:"name"`
	}
	if err := json.Unmarshal([]byte(values[0]), &ci); err != nil || ci.Account == "" {
		return nil
	}
	return &query.Identity{Account: ci.Account, User: ci.User, Name: ci.Name}
}

// DecodeRequest decodes a request body strictly into v: one JSON object,
// no unknown fields, no trailing data; an empty body is {}. It returns a
// *audit.ValidationError naming the field.
func DecodeRequest(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	if !utf8.Valid(data) {
		return audit.Invalid("(request)", "is not valid UTF-8")
	}
	if err := checkKeys(data, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return audit.Invalid("(request)", "has data after the JSON object")
	}
	return nil
}

// checkKeys walks the members of the top-level object: each key must be a
// field of v's struct spelt exactly (encoding/json alone would also take
// "timezone" for "timeZone") and appear once. Malformed JSON is left to the
// decoder, whose errors say more.
func checkKeys(data []byte, v any) error {
	fields := map[string]bool{}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	addFields(t, fields)
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		if !fields[key] {
			for f := range fields {
				if strings.EqualFold(f, key) {
					return audit.Invalid(key, "unknown field (field names are case-sensitive: %q)", f)
				}
			}
			if utf8.RuneCountInString(key) > 64 {
				key = "(request)"
			}
			return audit.Invalid(key, "unknown field")
		}
		if seen[key] {
			return audit.Invalid(key, "appears more than once")
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil
		}
	}
	return nil
}

// addFields adds the JSON names of struct t's fields to fields, those of
// an embedded struct without a name of its own too (encoding/json promotes
// them).
func addFields(t reflect.Type, fields map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			addFields(f.Type, fields)
			continue
		}
		if name != "" && name != "-" {
			fields[name] = true
		}
	}
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return audit.Invalid("(request)", "must be a JSON object, got %s", article(typeErr.Value))
		}
		return audit.Invalid(typeErr.Field, "must be %s, got %s", kindName(typeErr.Type), article(typeErr.Value))
	case errors.As(err, &syntaxErr):
		return audit.Invalid("(request)", "is not valid JSON: %s (at byte %d)", syntaxErr, syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return audit.Invalid("(request)", "is not valid JSON: unexpected end of input")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil || utf8.RuneCountInString(name) > 64 {
			name = "(request)"
		}
		return audit.Invalid(name, "unknown field")
	default:
		return audit.Invalid("(request)", "is not valid JSON: %v", err)
	}
}

// kindName names the JSON type a Go field expects.
func kindName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return t.String()
	}
}

// article turns encoding/json's value description ("number 1.5", "string")
// into prose.
func article(v string) string {
	switch v {
	case "array", "object":
		return "an " + v
	case "bool":
		return "a boolean"
	case "":
		return "something else"
	default:
		return "a " + v
	}
}
