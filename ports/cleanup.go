package ports

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// metaScheduler is the metadata key (copied from the NATS header) that a
// message fired by a JetStream schedule carries: the schedule's subject.
const metaScheduler = "Nats-Scheduler"

// cleanup handles audit.cleanup: a retention run, manual or scheduled. The
// job id is the message UUID (a manual job's Nats-Msg-Id; for a fired
// schedule, the stream sequence, unique per firing). Who started it
// (jobRequester) is recorded on the run's event and its result.
func (h *handlers) cleanup(msg *message.Message) error {
	req, err := audit.DecodeCleanupRequest(msg.Payload)
	if err != nil {
		return err
	}
	trigger := command.TriggerManual
	if msg.Metadata.Get(metaScheduler) != "" {
		trigger = command.TriggerSchedule
	}
	timeout := h.cfg.CleanupTimeout
	if timeout <= 0 {
		timeout = h.cfg.HandlerTimeout
	}
	ctx, cancel := context.WithTimeout(msg.Context(), timeout)
	defer cancel()
	start := time.Now()
	who := jobRequester(msg, h.cfg.Identity)
	res, err := h.app.Commands.RunCleanup.Handle(ctx, command.CleanupJob{
		ID: msg.UUID, Trigger: trigger, AsOf: h.receipt(msg).ReceivedAt, Request: req,
		StartedBy: who.Details(), UserID: who.Verified.UserID(),
	})
	if !req.DryRun { // a dry run changes nothing: it is not the last cleanup
		h.cfg.Metrics.cleanupFinished(time.Now(), time.Since(start), res.DeletedCount, err)
	}
	if err != nil {
		return err
	}
	h.cfg.Logger.Info("cleanup finished", "id", res.ID, "trigger", res.Trigger, "cutoff", res.Cutoff,
		"dryRun", res.DryRun, "deleted", res.DeletedCount, "durationMs", res.DurationMs)
	return nil
}
