package service

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// Schedule names: the subjects audit.schedule.cleanup and
// audit.schedule.report-daily. A public contract (docs/contract.md).
const (
	scheduleCleanup = "cleanup"
	scheduleReport  = "report-daily"
)

// checkScheduleServer fails start-up when a schedule is configured but the
// connected NATS server cannot run cron schedules.
func checkScheduleServer(cfg config.Config, version string) error {
	if !cfg.SchedulesEnabled() {
		return nil
	}
	if err := natsjs.CheckScheduleSupport(version); err != nil {
		return fmt.Errorf("%w; upgrade NATS, or run without the nightly cleanup and daily report by setting AUDITQ_CLEANUP_CRON=off and AUDITQ_REPORT_CRON=off", err)
	}
	return nil
}

// desiredSchedules returns the schedules cfg asks for, by name; nil means
// "off" (remove it).
func desiredSchedules(cfg config.Config) (map[string]*natsjs.Schedule, error) {
	out := map[string]*natsjs.Schedule{scheduleCleanup: nil, scheduleReport: nil}
	if cfg.CleanupCron != config.Off {
		body, err := json.Marshal(scheduledCleanup(cfg))
		if err != nil {
			return nil, err
		}
		out[scheduleCleanup] = &natsjs.Schedule{
			Name: scheduleCleanup, Pattern: cfg.CleanupCron, TimeZone: cfg.CleanupTimeZone,
			Target: contract.SubjectCleanup, Payload: body,
		}
	}
	if cfg.ReportCron != config.Off {
		body, err := json.Marshal(audit.ReportRequest{ReportType: audit.ReportDaily})
		if err != nil {
			return nil, err
		}
		out[scheduleReport] = &natsjs.Schedule{
			Name: scheduleReport, Pattern: cfg.ReportCron,
			Target: contract.SubjectReportGenerate, Payload: body,
		}
	}
	return out, nil
}

// installSchedules makes the schedules in stream AUDIT match cfg: each
// enabled one installed (replaced when its settings changed), each "off"
// one removed. Every instance does this at start; it is idempotent.
func installSchedules(ctx context.Context, js jetstream.JetStream, cfg config.Config, log *slog.Logger) error {
	want, err := desiredSchedules(cfg)
	if err != nil {
		return err
	}
	sc := natsjs.NewScheduler(js, natsjs.StreamAudit, contract.SchedulePrefix)
	for _, name := range []string{scheduleCleanup, scheduleReport} {
		s := want[name]
		if s == nil {
			if removed, err := sc.Remove(ctx, name); err != nil {
				return err
			} else if removed {
				log.Info("schedule removed", "schedule", sc.Subject(name))
			}
			continue
		}
		changed, err := sc.Install(ctx, *s)
		if err != nil {
			return err
		}
		next, _ := natsjs.NextFiring(s.Pattern, s.TimeZone, time.Now(), time.Now())
		if changed {
			log.Info("schedule installed", "schedule", sc.Subject(name), "pattern", s.Pattern, "timeZone", zoneName(s.TimeZone),
				"target", s.Target, "next", next)
		} else {
			log.Debug("schedule unchanged", "schedule", sc.Subject(name), "next", next)
		}
	}
	return nil
}

func zoneName(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

// retentionPolicy builds the domain policy from cfg (already validated).
func retentionPolicy(cfg config.Config) (audit.RetentionPolicy, error) {
	p := audit.RetentionPolicy{MinDays: cfg.RetentionMinDays, HoldUsers: cfg.HoldUsers}
	if days := cfg.TenantRetention(); len(days) > 0 {
		p.TenantDays = days
	}
	for _, r := range cfg.HoldResources {
		ref, err := audit.ParseResourceRef(r)
		if err != nil {
			return audit.RetentionPolicy{}, fmt.Errorf("AUDITQ_RETENTION_HOLD_RESOURCES: %w", err)
		}
		p.HoldResources = append(p.HoldResources, ref)
	}
	for _, e := range cfg.TenantHoldUsers {
		h, err := audit.ParseTenantUser("AUDITQ_TENANT_HOLD_USERS", e)
		if err != nil {
			return audit.RetentionPolicy{}, err
		}
		p.TenantHoldUsers = append(p.TenantHoldUsers, h)
	}
	for _, e := range cfg.TenantHoldResources {
		h, err := audit.ParseTenantResource("AUDITQ_TENANT_HOLD_RESOURCES", e)
		if err != nil {
			return audit.RetentionPolicy{}, err
		}
		p.TenantHoldResources = append(p.TenantHoldResources, h)
	}
	return p, nil
}

// scheduleSource is natsjs.Scheduler as the application's
// query.ScheduleSource (audit.admin.schedules), read as "auditq schedule
// show" reads it.
type scheduleSource struct{ sc *natsjs.Scheduler }

func (s scheduleSource) Schedules(ctx context.Context, now time.Time) ([]query.Schedule, error) {
	list, err := s.sc.List(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]query.Schedule, len(list))
	for i, is := range list {
		out[i] = query.Schedule{
			Name: is.Name, Subject: is.Subject, Pattern: is.Pattern, TimeZone: zoneName(is.TimeZone), Target: is.Target,
			Payload: is.Payload, Installed: is.Installed, Next: is.Next,
		}
	}
	return out, nil
}

// scheduledCleanup is the request of the scheduled cleanup, whether or not
// AUDITQ_CLEANUP_CRON installs it: what audit.admin.cleanup.dryrun counts
// for {}.
func scheduledCleanup(cfg config.Config) audit.CleanupRequest {
	exclude := cfg.CleanupExclude
	if exclude == nil {
		exclude = []string{}
	}
	return audit.CleanupRequest{RetentionDays: cfg.RetentionDays, HasRetentionDays: true, ExcludeActions: exclude}
}
