package command

import (
	"context"
	"fmt"

	"github.com/auditq/auditq/domain/audit"
)

// Bulk is one decoded audit.bulk job.
type Bulk struct {
	ID       string // stable job id (the message id)
	Tenant   string // the tenant of its subject (every event's Tenant)
	Total    int    // events in the message
	Events   []audit.Event
	Rejected []audit.Rejection
}

// BulkResult is what a bulk job did. Total = Inserted + Duplicates +
// len(Rejected), always; all are 0 for a job rejected as a whole.
type BulkResult struct {
	ID         string            `json:"id"`
	Total      int               `json:"total"`
	Inserted   int               `json:"inserted"`
	Duplicates int               `json:"duplicates"`
	Rejected   []audit.Rejection `json:"rejected"`
	// Error is why the job was rejected as a whole (it counts nothing
	// then, and the job is in the poison stream); empty otherwise.
	Error string `json:"error,omitempty"`
	// Tenant decides where the result goes (audit.results.t.<tenant>.bulk
	// for a tenant); it is not part of the result's JSON.
	Tenant string `json:"-"`
}

// BulkReporter publishes what a bulk job did: each rejected event to the
// poison stream, and the job's result.
type BulkReporter interface {
	BulkRejected(ctx context.Context, bulkID string, r audit.Rejection) error
	BulkResult(ctx context.Context, r BulkResult) error
}

// RecordBulkHandler writes the valid events of a bulk job in one
// transaction, then reports rejections and the result.
type RecordBulkHandler struct {
	writer   audit.Writer
	reporter BulkReporter
}

// NewRecordBulkHandler returns a RecordBulkHandler. w should write directly
// (one statement per job), not through a batcher.
func NewRecordBulkHandler(w audit.Writer, r BulkReporter) RecordBulkHandler {
	return RecordBulkHandler{writer: w, reporter: r}
}

// Handle records the bulk job. Any error is transient (the job is retried;
// events already committed then count as duplicates).
func (h RecordBulkHandler) Handle(ctx context.Context, b Bulk) (BulkResult, error) {
	res, err := h.writer.Write(ctx, b.Events)
	if err != nil {
		return BulkResult{}, fmt.Errorf("bulk %s: %w", b.ID, err)
	}
	out := BulkResult{
		ID: b.ID, Total: b.Total, Inserted: res.Inserted, Duplicates: res.Duplicates,
		Rejected: b.Rejected, Tenant: b.Tenant,
	}
	if out.Rejected == nil {
		out.Rejected = []audit.Rejection{}
	}
	if out.Inserted+out.Duplicates+len(out.Rejected) != out.Total {
		return BulkResult{}, fmt.Errorf("bulk %s: %w: counts do not add up (%d+%d+%d != %d)",
			b.ID, audit.ErrPermanent, out.Inserted, out.Duplicates, len(out.Rejected), out.Total)
	}
	for _, r := range b.Rejected {
		if err := h.reporter.BulkRejected(ctx, b.ID, r); err != nil {
			return BulkResult{}, fmt.Errorf("bulk %s: report rejected event %d: %w", b.ID, r.Index, err)
		}
	}
	if err := h.reporter.BulkResult(ctx, out); err != nil {
		return BulkResult{}, fmt.Errorf("bulk %s: publish result: %w", b.ID, err)
	}
	return out, nil
}

// Refuse publishes the result of bulk job b rejected as a whole (cause,
// a permanent error: the message is no bulk job), on the results subject
// its publisher reads: nothing counted, Error the cause. The job itself
// goes to the poison stream as any rejected message; its publisher may
// not read that stream. The error is transient: the result could not be
// published.
func (h RecordBulkHandler) Refuse(ctx context.Context, b Bulk, cause error) error {
	out := BulkResult{ID: b.ID, Rejected: []audit.Rejection{}, Error: cause.Error(), Tenant: b.Tenant}
	if err := h.reporter.BulkResult(ctx, out); err != nil {
		return fmt.Errorf("bulk %s: publish its rejection as a whole: %w", b.ID, err)
	}
	return nil
}
