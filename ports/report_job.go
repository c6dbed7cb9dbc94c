package ports

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
)

// ReportPublisher publishes the report a job generated.
type ReportPublisher interface {
	ReportGenerated(ctx context.Context, jobID string, r audit.StoredReport) error
}

// reportGenerate handles audit.report.generate: the body of an audit.report
// request. It generates and stores the report through the same query as
// the request, then publishes it to audit.results.report. The job id is
// the message UUID (a publisher's Nats-Msg-Id; for a fired schedule the
// stream sequence, unique per firing), so a redelivery finds its stored
// report and publishes it again under the same message id, which the
// results stream deduplicates. An invalid body is poisoned to
// audit.poison.report. The recorded read names who started the job
// (jobRequester).
func (h *handlers) reportGenerate(msg *message.Message) error {
	var req audit.ReportRequest
	if err := DecodeRequest(msg.Payload, &req); err != nil {
		return err
	}
	ctx, cancel := h.ctx(msg)
	defer cancel()
	trigger := audit.TriggerJob
	if msg.Metadata.Get(metaScheduler) != "" {
		trigger = audit.TriggerSchedule
	}
	rep, err := h.app.Queries.Report.Handle(ctx, query.ReportInput{
		Request: req, Trigger: trigger, JobID: msg.UUID, Now: h.receipt(msg).ReceivedAt,
		Requester: jobRequester(msg, h.cfg.Identity),
	})
	if err != nil {
		return fmt.Errorf("report job %s: %w", msg.UUID, err)
	}
	if err := h.cfg.Reports.ReportGenerated(ctx, msg.UUID, rep); err != nil {
		return fmt.Errorf("report job %s: publish report %d: %w", msg.UUID, rep.ID, err)
	}
	h.cfg.Logger.Info("report generated", "id", rep.ID, "job", msg.UUID, "trigger", rep.Trigger,
		"reportType", rep.ReportType, "period", rep.Period.String(), "total", rep.Summary.Total)
	return nil
}
