package command

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// Kinds of job an operator starts through a request
// (audit.admin.cleanup, audit.admin.report.generate).
const (
	JobCleanup = "cleanup"
	JobReport  = "report"
)

// QueuedJob is a job to store in the job stream: its kind, id (the
// message id its result names), body, and who started it as the trail
// records it (the transport's encoding of the requester).
type QueuedJob struct {
	Kind      string
	ID        string
	Body      []byte
	StartedBy json.RawMessage
}

// EnqueuedJob is a job as the job stream stored it.
type EnqueuedJob struct {
	ID        string
	Subject   string
	Seq       uint64
	Duplicate bool
}

// JobQueue stores jobs in the job stream.
type JobQueue interface {
	// Enqueue stores j and returns where; it returns an error when the
	// stream did not acknowledge it.
	Enqueue(ctx context.Context, j QueuedJob) (EnqueuedJob, error)
}

// StartJobHandler starts cleanup and report jobs for an operator: it
// checks the body as the job will (a cleanup against the retention
// policy's guard rails, a report's period), so that a bad job is refused
// on the request, then stores it with a fresh id.
type StartJobHandler struct {
	queue         JobQueue
	policy        audit.RetentionPolicy
	reportMaxDays int
	now           func() time.Time
}

// NewStartJobHandler returns a StartJobHandler storing jobs in q, checking
// cleanups against policy and report periods against reportMaxDays (zero:
// audit.DefaultReportMaxDays).
func NewStartJobHandler(q JobQueue, policy audit.RetentionPolicy, reportMaxDays int) StartJobHandler {
	return StartJobHandler{queue: q, policy: policy, reportMaxDays: reportMaxDays, now: time.Now}
}

// StartCleanup stores the cleanup job body (an audit.cleanup body) with
// startedBy. It returns a *audit.ValidationError naming the field for a
// body the job would reject, else the queue's error.
func (h StartJobHandler) StartCleanup(ctx context.Context, body []byte, startedBy json.RawMessage) (EnqueuedJob, error) {
	req, err := audit.DecodeCleanupRequest(body)
	if err != nil {
		return EnqueuedJob{}, err
	}
	if _, err := h.policy.Plan(req, h.now()); err != nil {
		return EnqueuedJob{}, err
	}
	return h.enqueue(ctx, QueuedJob{Kind: JobCleanup, ID: "cleanup-" + jobID(), Body: body, StartedBy: startedBy})
}

// StartReport stores a report job for req with startedBy. It returns a
// *audit.ValidationError for a period the job would reject, else the
// queue's error.
func (h StartJobHandler) StartReport(ctx context.Context, req audit.ReportRequest, startedBy json.RawMessage) (EnqueuedJob, error) {
	if _, err := audit.ResolvePeriod(req, h.now(), h.reportMaxDays); err != nil {
		return EnqueuedJob{}, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return EnqueuedJob{}, fmt.Errorf("report job: encode request: %w", err)
	}
	return h.enqueue(ctx, QueuedJob{Kind: JobReport, ID: "report-" + jobID(), Body: body, StartedBy: startedBy})
}

func (h StartJobHandler) enqueue(ctx context.Context, j QueuedJob) (EnqueuedJob, error) {
	if h.queue == nil {
		return EnqueuedJob{}, fmt.Errorf("%s job: no job queue", j.Kind)
	}
	got, err := h.queue.Enqueue(ctx, j)
	if err != nil {
		return EnqueuedJob{}, fmt.Errorf("%s job %s: %w", j.Kind, j.ID, err)
	}
	return got, nil
}

func jobID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
