package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/auditq/auditq/domain/audit"
)

// What started a cleanup: the nightly JetStream schedule or a person (the
// CLI or any publisher).
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
)

// CleanupJob is one decoded audit.cleanup job.
type CleanupJob struct {
	ID      string    // stable job id (the message id), the same on every redelivery
	Trigger string    // TriggerSchedule or TriggerManual
	AsOf    time.Time // when the job was sent (the stream's time): retentionDays count back from it
	Request audit.CleanupRequest
	// StartedBy is who started the job as the trail records it (the
	// transport's requester details: verified account, user and client
	// name, or the service for a schedule); nil when nothing is known.
	StartedBy map[string]any
	// UserID is the verified identity as the userId of the run's event
	// ("nats:<account>/<user>"), or "".
	UserID string
}

// CleanupResult is what a cleanup did, as published to
// audit.results.cleanup. For a dry run DeletedCount is the number of rows
// that would have been deleted.
type CleanupResult struct {
	ID             string         `json:"id"`
	EventID        string         `json:"eventId"`
	Cutoff         time.Time      `json:"cutoff"`
	ExcludeActions []string       `json:"excludeActions"`
	DeletedCount   int64          `json:"deletedCount"`
	DryRun         bool           `json:"dryRun"`
	DurationMs     int64          `json:"durationMs"`
	Trigger        string         `json:"trigger"`
	StartedBy      map[string]any `json:"startedBy,omitempty"`
	// TenantCutoffs are the cutoffs of the tenants with a retention of
	// their own (AUDITQ_TENANT_RETENTION_DAYS), by tenant; absent without.
	TenantCutoffs map[string]time.Time `json:"tenantCutoffs,omitempty"`
}

// cleanupDetails is the details object of the cleanup's own audit event.
type cleanupDetails struct {
	Cutoff         time.Time      `json:"cutoff"`
	ExcludeActions []string       `json:"excludeActions"`
	DeletedCount   int64          `json:"deletedCount"`
	DryRun         bool           `json:"dryRun"`
	DurationMs     int64          `json:"durationMs"`
	Trigger        string         `json:"trigger"`
	StartedBy      map[string]any `json:"startedBy,omitempty"`
	// TenantCutoffs are the cutoffs of the tenants with a retention of
	// their own (AUDITQ_TENANT_RETENTION_DAYS), by tenant; absent without.
	TenantCutoffs map[string]time.Time `json:"tenantCutoffs,omitempty"`
}

// CleanupReporter publishes a cleanup's result.
type CleanupReporter interface {
	CleanupResult(ctx context.Context, r CleanupResult) error
}

// EventLookup finds a stored event by tenant and id; it returns
// audit.ErrNotFound when there is none. A cleanup's own event is of the
// default tenant.
type EventLookup interface {
	Get(ctx context.Context, tenant, id string) (audit.Event, error)
}

// RunCleanupHandler runs retention cleanups: it checks the job against the
// retention policy, deletes (or, for a dry run, counts) the expired rows,
// records the run as an audit event and publishes its result.
type RunCleanupHandler struct {
	store    audit.RetentionStore
	writer   audit.Writer
	lookup   EventLookup
	reporter CleanupReporter
	policy   audit.RetentionPolicy
	now      func() time.Time
}

// NewRunCleanupHandler returns a RunCleanupHandler. w records the run's own
// event (the same writer as RecordEvents); lookup finds that event when a
// job is delivered again.
func NewRunCleanupHandler(store audit.RetentionStore, w audit.Writer, lookup EventLookup, r CleanupReporter, policy audit.RetentionPolicy) RunCleanupHandler {
	return RunCleanupHandler{store: store, writer: w, lookup: lookup, reporter: r, policy: policy, now: time.Now}
}

// CleanupEventID is the id of the audit event recording job jobID: derived
// from the job id, so a redelivered job finds its run already recorded.
func CleanupEventID(jobID string) string {
	id := "cleanup:" + jobID
	if utf8.RuneCountInString(id) > audit.MaxIDLen {
		sum := sha256.Sum256([]byte(jobID))
		id = "cleanup:sha256:" + hex.EncodeToString(sum[:])
	}
	return id
}

// Handle runs the job. A job that breaks a guard rail returns a
// *audit.ValidationError and deletes nothing. A job whose run is already
// recorded (a redelivery after success) deletes nothing more and reports
// the recorded result again. Any other error is transient: rows deleted
// before it stay deleted, and running the job again finishes the work.
func (h RunCleanupHandler) Handle(ctx context.Context, job CleanupJob) (CleanupResult, error) {
	plan, err := h.policy.Plan(job.Request, job.AsOf)
	if err != nil {
		return CleanupResult{}, err
	}
	eventID := CleanupEventID(job.ID)
	if prev, err := h.lookup.Get(ctx, audit.DefaultTenant, eventID); err == nil {
		res, err := resultFromEvent(job.ID, prev)
		if err != nil {
			return CleanupResult{}, fmt.Errorf("cleanup %s: %w: recorded event %s: %v", job.ID, audit.ErrPermanent, eventID, err)
		}
		if err := h.reporter.CleanupResult(ctx, res); err != nil {
			return CleanupResult{}, fmt.Errorf("cleanup %s: publish result: %w", job.ID, err)
		}
		return res, nil
	} else if !errors.Is(err, audit.ErrNotFound) {
		return CleanupResult{}, fmt.Errorf("cleanup %s: look up event %s: %w", job.ID, eventID, err)
	}

	start := h.now()
	var n int64
	if plan.DryRun {
		n, err = h.store.CountExpired(ctx, plan)
	} else {
		n, err = h.store.DeleteExpired(ctx, plan)
	}
	if err != nil {
		return CleanupResult{}, fmt.Errorf("cleanup %s: deleted %d rows, then: %w (running the job again is safe)", job.ID, n, err)
	}
	end := h.now()
	res := CleanupResult{
		ID: job.ID, EventID: eventID, Cutoff: plan.Cutoff, ExcludeActions: plan.ExcludeActions,
		DeletedCount: n, DryRun: plan.DryRun, DurationMs: end.Sub(start).Milliseconds(), Trigger: job.Trigger,
		StartedBy: job.StartedBy,
	}
	for _, t := range plan.TenantCutoffs {
		if res.TenantCutoffs == nil {
			res.TenantCutoffs = map[string]time.Time{}
		}
		res.TenantCutoffs[t.Tenant] = t.Cutoff
	}
	details, err := json.Marshal(cleanupDetails{
		Cutoff: res.Cutoff, ExcludeActions: res.ExcludeActions, DeletedCount: res.DeletedCount,
		DryRun: res.DryRun, DurationMs: res.DurationMs, Trigger: res.Trigger, StartedBy: res.StartedBy,
		TenantCutoffs: res.TenantCutoffs,
	})
	if err != nil {
		return CleanupResult{}, fmt.Errorf("cleanup %s: %w: encode details: %v", job.ID, audit.ErrPermanent, err)
	}
	at := audit.Normalize(end)
	ev := audit.Event{
		ID: eventID, UserID: job.UserID, Action: audit.CleanupAction, ResourceType: audit.CleanupResourceType,
		ResourceID: audit.CleanupResourceID, Details: details, RequestID: truncateID(job.ID),
		Success: true, OccurredAt: at, ReceivedAt: at,
	}
	if _, err := h.writer.Write(ctx, []audit.Event{ev}); err != nil {
		return CleanupResult{}, fmt.Errorf("cleanup %s: record event (after deleting %d rows): %w", job.ID, n, err)
	}
	if err := h.reporter.CleanupResult(ctx, res); err != nil {
		return CleanupResult{}, fmt.Errorf("cleanup %s: publish result: %w", job.ID, err)
	}
	return res, nil
}

// resultFromEvent rebuilds the result of a run from its recorded event.
func resultFromEvent(jobID string, ev audit.Event) (CleanupResult, error) {
	var d cleanupDetails
	if err := json.Unmarshal(ev.Details, &d); err != nil {
		return CleanupResult{}, err
	}
	if d.ExcludeActions == nil {
		d.ExcludeActions = []string{}
	}
	return CleanupResult{
		ID: jobID, EventID: ev.ID, Cutoff: d.Cutoff.UTC(), ExcludeActions: d.ExcludeActions,
		DeletedCount: d.DeletedCount, DryRun: d.DryRun, DurationMs: d.DurationMs, Trigger: d.Trigger,
		StartedBy:     d.StartedBy,
		TenantCutoffs: d.TenantCutoffs,
	}, nil
}

// truncateID keeps a job id within the event's id limits for request_id.
func truncateID(s string) string {
	if utf8.RuneCountInString(s) <= audit.MaxIDLen {
		return s
	}
	return string([]rune(s)[:audit.MaxIDLen])
}
