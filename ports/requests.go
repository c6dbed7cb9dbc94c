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
	"strconv"
	"strings"
	"sync"
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
	// Metrics gets every answer (auditq_requests_total,
	// auditq_request_duration_seconds) and every checkpoint written on
	// request; nil records nothing.
	Metrics *Metrics
}

// Validate reports missing or out-of-range settings.
func (c RequestsConfig) Validate() error {
	if c.Timeout <= 0 || c.Logger == nil {
		return errors.New("requests: Timeout must be positive and Logger set")
	}
	return nil
}

// Requests is the NATS micro service answering reports and searches. Each
// endpoint handles one request at a time per instance (a report is one
// heavy scan; more instances share the load through the micro queue
// group).
type Requests struct {
	svc micro.Service
	cfg RequestsConfig
	app app.Application

	mu       sync.Mutex
	stopping bool
	inFlight sync.WaitGroup
}

// NewRequests registers service "auditq" with its endpoints on nc. It
// returns an error when the service cannot subscribe.
func NewRequests(nc *nats.Conn, cfg RequestsConfig, application app.Application) (*Requests, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = cfg.Timeout + time.Second
	}
	r := &Requests{cfg: cfg, app: application}
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
	endpoints := []struct {
		name, subject string
		handler       micro.Handler
	}{
		{"report", contract.SubjectReport, endpoint(r, contract.SubjectReport, func(ctx context.Context, in audit.ReportRequest, who query.Requester) (any, error) {
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
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, e.handler, micro.WithEndpointSubject(e.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("add endpoint %s: %w", e.subject, err)
		}
	}
	if err := addSchemaEndpoint(svc); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("add endpoint %s: %w", contract.SubjectSchema, err)
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
// then waits up to StopTimeout for requests in progress. It is idempotent.
func (r *Requests) Stop() error {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	err := r.svc.Stop()
	done := make(chan struct{})
	go func() { r.inFlight.Wait(); close(done) }()
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

// endpoint adapts one application call to a micro handler: strict decode,
// deadline, one call, JSON reply or an error from the table in fail.
func endpoint[Req any](r *Requests, subject string, call func(context.Context, Req, query.Requester) (any, error)) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		start, code := time.Now(), CodeOK
		defer func() { r.cfg.Metrics.request(subject, code, time.Since(start)) }()
		if !r.enter() {
			code = CodeStopping
			respondError(req, code, "auditq is shutting down; retry the request", "")
			return
		}
		defer r.inFlight.Done()
		defer func() {
			if p := recover(); p != nil {
				r.cfg.Logger.Error("request handler panicked", "subject", subject, "panic", fmt.Sprint(p))
				code = CodeInternal
				respondError(req, code, "internal error", "")
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
		defer cancel()
		var in Req
		if err := DecodeRequest(req.Data(), &in); err != nil {
			code = r.fail(req, subject, err)
			return
		}
		out, err := call(ctx, in, requester(req.Headers(), r.cfg.Identity))
		if err != nil {
			code = r.fail(req, subject, err)
			return
		}
		body, err := json.Marshal(out)
		if err != nil {
			code = r.fail(req, subject, fmt.Errorf("encode response: %w", err))
			return
		}
		if err := req.Respond(body); err != nil {
			r.cfg.Logger.Warn("reply failed", "subject", subject, "err", err)
		}
	})
}

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
func (r *Requests) fail(req micro.Request, subject string, err error) string {
	var v *audit.ValidationError
	switch {
	case errors.As(err, &v):
		respondError(req, CodeBadRequest, v.Error(), v.Field)
		return CodeBadRequest
	case errors.Is(err, audit.ErrNotFound):
		respondError(req, CodeNotFound, err.Error(), "")
		return CodeNotFound
	case errors.Is(err, query.ErrTamperEvidenceOff):
		respondError(req, CodeDisabled, err.Error(), "")
		return CodeDisabled
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

// respondError sends a micro error: code and message in the
// Nats-Service-Error(-Code) headers, and as a JSON body
// {"code","error","field"?} for clients that only read the payload.
func respondError(req micro.Request, code, msg, field string) {
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
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			fields[name] = true
		}
	}
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
