package ports

import (
	"context"
	"encoding/json"
	"time"

	"github.com/auditq/auditq/app"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/ports/contract"
)

// adminEndpoints are the operator's endpoints (audit.admin.*): thin
// adapters of the application's poison, schedule, cleanup and status use
// cases to the views of ports/contract.
func adminEndpoints(r *Requests, application app.Application) []endpointSpec {
	q, c := application.Queries, application.Commands
	return []endpointSpec{
		{"admin-poison-list", contract.SubjectAdminPoisonList, endpoint(r, contract.SubjectAdminPoisonList, func(ctx context.Context, in query.PoisonListRequest, who query.Requester) (any, error) {
			page, err := q.PoisonList.Handle(ctx, in, who)
			out := contract.PoisonList{Messages: make([]contract.PoisonSummary, len(page.Messages)), NextCursor: contract.Nullable(page.NextCursor)}
			for i, m := range page.Messages {
				out.Messages[i] = contract.PoisonSummaryOf(m)
			}
			return out, err
		})},
		{"admin-poison-get", contract.SubjectAdminPoisonGet, endpoint(r, contract.SubjectAdminPoisonGet, func(ctx context.Context, in query.PoisonSeqRequest, who query.Requester) (any, error) {
			m, err := q.PoisonGet.Handle(ctx, in, who)
			return contract.PoisonDetailOf(m), err
		})},
		{"admin-poison-replay", contract.SubjectAdminPoisonReplay, endpoint(r, contract.SubjectAdminPoisonReplay, func(ctx context.Context, in command.PoisonReplayRequest, who query.Requester) (any, error) {
			res, err := c.PoisonActions.Replay(ctx, in, who.Details())
			if err == nil {
				r.cfg.Logger.Info("poison message replayed", "seq", res.PoisonSeq, "subject", res.Subject, "stream_seq", res.Seq, "id", res.ID)
			}
			return contract.PoisonReplayed{PoisonSeq: res.PoisonSeq, Subject: res.Subject, Seq: res.Seq, ID: res.ID, Duplicate: res.Duplicate}, err
		})},
		{"admin-poison-discard", contract.SubjectAdminPoisonDiscard, endpoint(r, contract.SubjectAdminPoisonDiscard, func(ctx context.Context, in command.PoisonDiscardRequest, who query.Requester) (any, error) {
			m, err := c.PoisonActions.Discard(ctx, in, who.Details())
			if err == nil {
				r.cfg.Logger.Info("poison message discarded", "seq", m.Seq, "job", m.Job, "id", m.ID)
			}
			return contract.PoisonDiscarded{Discarded: contract.PoisonSummaryOf(m)}, err
		})},
		{"admin-schedules", contract.SubjectAdminSchedules, endpoint(r, contract.SubjectAdminSchedules, func(ctx context.Context, _ emptyRequest, _ query.Requester) (any, error) {
			list, err := q.Schedules.Handle(ctx)
			out := contract.ScheduleList{Schedules: make([]contract.ScheduleView, len(list))}
			for i, s := range list {
				out.Schedules[i] = contract.ScheduleView{
					Name: s.Name, Subject: s.Subject, Pattern: s.Pattern, TimeZone: s.TimeZone, Target: s.Target,
					Payload: string(s.Payload), Installed: s.Installed.UTC(), Next: nullTime(s.Next),
				}
			}
			return out, err
		})},
		{"admin-cleanups", contract.SubjectAdminCleanups, endpoint(r, contract.SubjectAdminCleanups, func(ctx context.Context, in query.CleanupsRequest, who query.Requester) (any, error) {
			runs, err := q.Cleanups.Handle(ctx, in, who)
			out := contract.CleanupRunList{Cleanups: make([]contract.CleanupRunView, len(runs.Runs)), NextCursor: contract.Nullable(runs.NextCursor)}
			for i, c := range runs.Runs {
				out.Cleanups[i] = contract.CleanupRunView{
					EventID: c.EventID, JobID: c.JobID, RanAt: c.RanAt.UTC(), Cutoff: c.Cutoff, ExcludeActions: c.ExcludeActions,
					DeletedCount: c.DeletedCount, DryRun: c.DryRun, DurationMs: c.DurationMs, Trigger: c.Trigger,
				}
			}
			return out, err
		})},
		{"admin-cleanup-dryrun", contract.SubjectAdminCleanupDryRun, endpointIn(r, PoolReports, contract.SubjectAdminCleanupDryRun, func(ctx context.Context, in json.RawMessage, who query.Requester) (any, error) {
			d, err := q.CleanupDryRun.Handle(ctx, in, who)
			return dryRunView(d), err
		})},
		{"admin-status", contract.SubjectAdminStatus, endpoint(r, contract.SubjectAdminStatus, func(ctx context.Context, _ emptyRequest, _ query.Requester) (any, error) {
			st, err := q.Status.Handle(ctx)
			return statusView(st), err
		})},
	}
}

// emptyRequest is a request without fields (audit.admin.schedules,
// audit.admin.status).
type emptyRequest struct{}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func dryRunView(d query.DryRun) contract.CleanupDryRun {
	out := contract.CleanupDryRun{
		Scheduled: d.Scheduled, ExcludeActions: d.Request.ExcludeActions, Cutoff: d.Cutoff,
		WouldDelete: d.WouldDelete, DurationMs: d.DurationMs,
	}
	if out.ExcludeActions == nil {
		out.ExcludeActions = []string{}
	}
	if d.Request.HasRetentionDays {
		days := d.Request.RetentionDays
		out.RetentionDays = &days
	} else {
		out.BeforeDate = nullTime(d.Request.BeforeDate)
	}
	return out
}

func statusView(st query.Status) contract.Status {
	out := contract.Status{
		Time: st.Time, TamperEvidence: st.TamperEvidence, Checkpoint: st.Checkpoint,
		NextCheckpointDue: nullTime(st.NextCheckpointDue), Poison: map[string]contract.PoisonBacklog{}, Pending: st.Pending,
	}
	if st.Checkpoint != nil {
		age := max(st.Time.Sub(st.Checkpoint.Time).Seconds(), 0)
		out.CheckpointAgeSeconds = &age
	}
	for job := range contract.PoisonJobs() {
		out.Poison[job] = contract.PoisonBacklog{}
	}
	for job, p := range st.Poison {
		out.Poison[job] = contract.PoisonBacklog{Messages: p.Messages, Oldest: nullTime(p.Oldest)}
	}
	if out.Pending == nil {
		out.Pending = map[string]uint64{}
	}
	if v := st.LastVerify; v != nil {
		out.LastVerify = &contract.VerifyRunView{
			StartedAt: v.StartedAt.UTC(), FinishedAt: v.FinishedAt.UTC(), DurationMs: v.FinishedAt.Sub(v.StartedAt).Milliseconds(),
			OK: v.OK, Events: v.Events, Batches: v.Batches, BatchSeq: v.BatchSeq, Checkpoints: v.Checkpoints,
			CheckpointSeq: v.CheckpointSeq, Uncovered: v.Uncovered, FailureCount: v.FailureCount, FirstFailure: v.FirstFailure,
			Trigger: v.Trigger,
		}
	}
	return out
}
