package command

import (
	"context"
	"fmt"
	"time"

	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
)

// ReportJob is one decoded audit.report.generate job.
type ReportJob struct {
	ID        string // stable job id (the message id)
	Request   audit.ReportRequest
	Scheduled bool      // fired by a JetStream schedule
	Enqueued  time.Time // when the job entered the stream; a period without a date is relative to it
}

// ReportPublisher publishes a generated report (audit.results.report).
type ReportPublisher interface {
	ReportGenerated(ctx context.Context, jobID string, r audit.StoredReport) error
}

// GenerateReportHandler runs a report job: generate and store the report,
// then publish it.
type GenerateReportHandler struct {
	report    query.ReportHandler
	publisher ReportPublisher
}

// NewGenerateReportHandler returns a GenerateReportHandler.
func NewGenerateReportHandler(report query.ReportHandler, p ReportPublisher) GenerateReportHandler {
	return GenerateReportHandler{report: report, publisher: p}
}

// Handle runs the job. It is idempotent per job id: a redelivered job finds
// its stored report and publishes it again under the same message id, which
// the results stream deduplicates. A bad request is a *audit.ValidationError
// (permanent); anything else is transient.
func (h GenerateReportHandler) Handle(ctx context.Context, job ReportJob) (audit.StoredReport, error) {
	trigger := audit.TriggerJob
	if job.Scheduled {
		trigger = audit.TriggerSchedule
	}
	rep, err := h.report.Handle(ctx, query.ReportInput{
		Request: job.Request, Trigger: trigger, JobID: job.ID, Now: job.Enqueued,
	})
	if err != nil {
		return audit.StoredReport{}, fmt.Errorf("report job %s: %w", job.ID, err)
	}
	if err := h.publisher.ReportGenerated(ctx, job.ID, rep); err != nil {
		return audit.StoredReport{}, fmt.Errorf("report job %s: publish report %d: %w", job.ID, rep.ID, err)
	}
	return rep, nil
}
