package ports

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// reportGenerate handles audit.report.generate: the body of an audit.report
// request. It stores the report and publishes it to audit.results.report.
// The job id is the message UUID (a publisher's Nats-Msg-Id; for a fired
// schedule the stream sequence, unique per firing), so a redelivery finds
// its stored report. An invalid body is poisoned to audit.poison.report.
func (h *handlers) reportGenerate(msg *message.Message) error {
	var req audit.ReportRequest
	if err := DecodeRequest(msg.Payload, &req); err != nil {
		return err
	}
	ctx, cancel := h.ctx(msg)
	defer cancel()
	rep, err := h.app.Commands.GenerateReport.Handle(ctx, command.ReportJob{
		ID: msg.UUID, Request: req, Scheduled: msg.Metadata.Get(metaScheduler) != "",
		Enqueued: h.receipt(msg).ReceivedAt,
	})
	if err != nil {
		return err
	}
	h.cfg.Logger.Info("report generated", "id", rep.ID, "job", msg.UUID, "trigger", rep.Trigger,
		"reportType", rep.ReportType, "period", rep.Period.String(), "total", rep.Summary.Total)
	return nil
}
