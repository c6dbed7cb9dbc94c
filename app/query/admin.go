package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// This file holds the operator's reads (the audit.admin.* requests): the
// poison stream, the schedules, the cleanup runs, a dry-run cleanup and
// the service's status.

// ActionAdmin is the action of the events recording an operator's read of
// the poison stream, the cleanup runs or a dry-run cleanup.
const ActionAdmin = "audit.admin"

// Page sizes of the operator's lists.
const (
	DefaultAdminLimit = 20
	MaxAdminLimit     = 100
)

func adminLimit(limit *int) (int, error) {
	if limit == nil {
		return DefaultAdminLimit, nil
	}
	if *limit < 1 || *limit > MaxAdminLimit {
		return 0, audit.Invalid("limit", "must be between 1 and %d, got %d", MaxAdminLimit, *limit)
	}
	return *limit, nil
}

// PoisonListRequest is the body of audit.admin.poison.list.
type PoisonListRequest struct {
	Job    string `json:"job,omitempty"`    // only this job's messages (log, bulk, cleanup, report)
	Reason string `json:"reason,omitempty"` // only messages whose reason contains this, case-insensitively
	Limit  *int   `json:"limit,omitempty"`  // 1 to 100, default 20
	Cursor string `json:"cursor,omitempty"` // the nextCursor of the previous page
}

// PoisonPage is one page of the poison stream, newest first; NextCursor is
// empty on the last page.
type PoisonPage struct {
	Messages   []audit.PoisonMessage
	NextCursor string
}

// PoisonListHandler lists the poison stream, page by page.
type PoisonListHandler struct {
	stream audit.PoisonStream
	reads  ReadAuditor
}

// NewPoisonListHandler returns a PoisonListHandler over s.
func NewPoisonListHandler(s audit.PoisonStream, reads ReadAuditor) PoisonListHandler {
	return PoisonListHandler{stream: s, reads: reads}
}

// Handle returns one page and records the read. A bad request is a
// *audit.ValidationError naming the field; anything else is transient.
func (h PoisonListHandler) Handle(ctx context.Context, req PoisonListRequest, who Requester) (PoisonPage, error) {
	limit, err := adminLimit(req.Limit)
	if err != nil {
		return PoisonPage{}, err
	}
	var before uint64
	if req.Cursor != "" {
		if before, err = strconv.ParseUint(req.Cursor, 10, 64); err != nil || before == 0 {
			return PoisonPage{}, audit.Invalid("cursor", "is not a cursor returned by audit.admin.poison.list")
		}
	}
	msgs, err := h.stream.List(ctx, audit.PoisonFilter{Job: req.Job, Reason: req.Reason, Before: before, Limit: limit + 1})
	var v *audit.ValidationError
	if errors.As(err, &v) {
		return PoisonPage{}, err
	}
	if err != nil {
		err = fmt.Errorf("list poison stream: %w", err)
	}
	out := PoisonPage{Messages: msgs}
	if len(msgs) > limit {
		out.Messages = msgs[:limit]
		out.NextCursor = strconv.FormatUint(msgs[limit-1].Seq, 10)
	}
	rec := read{action: ActionAdmin, endpoint: "audit.admin.poison.list", request: req, who: who,
		extra: map[string]any{"returned": len(out.Messages)}}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return PoisonPage{}, err
	}
	if out.Messages == nil {
		out.Messages = []audit.PoisonMessage{}
	}
	return out, nil
}

// PoisonSeqRequest names one poison message: the body of
// audit.admin.poison.get and audit.admin.poison.discard.
type PoisonSeqRequest struct {
	Seq uint64 `json:"seq"`
}

// Check returns a *audit.ValidationError when Seq is missing.
func (r PoisonSeqRequest) Check() error {
	if r.Seq == 0 {
		return audit.Invalid("seq", "is required: the sequence number of a message of the poison stream (see audit.admin.poison.list)")
	}
	return nil
}

// PoisonGetHandler reads one poison message, its payload whole.
type PoisonGetHandler struct {
	stream audit.PoisonStream
	reads  ReadAuditor
}

// NewPoisonGetHandler returns a PoisonGetHandler over s.
func NewPoisonGetHandler(s audit.PoisonStream, reads ReadAuditor) PoisonGetHandler {
	return PoisonGetHandler{stream: s, reads: reads}
}

// Handle returns message req.Seq and records the read: an error wrapping
// audit.ErrNotFound when the stream does not hold it.
func (h PoisonGetHandler) Handle(ctx context.Context, req PoisonSeqRequest, who Requester) (audit.PoisonMessage, error) {
	if err := req.Check(); err != nil {
		return audit.PoisonMessage{}, err
	}
	m, err := h.stream.Get(ctx, req.Seq)
	rec := read{action: ActionAdmin, endpoint: "audit.admin.poison.get", request: req, who: who}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return audit.PoisonMessage{}, err
	}
	return m, nil
}

// Schedule is one installed JetStream message schedule.
type Schedule struct {
	Name, Subject, Pattern, TimeZone, Target string
	Payload                                  []byte
	Installed                                time.Time
	Next                                     time.Time // zero when it cannot be computed
}

// ScheduleSource lists the installed schedules with their next firing
// after now.
type ScheduleSource interface {
	Schedules(ctx context.Context, now time.Time) ([]Schedule, error)
}

// SchedulesHandler lists the schedules (audit.admin.schedules). It reads
// no event and is not recorded as a read.
type SchedulesHandler struct {
	src ScheduleSource
	now func() time.Time
}

// NewSchedulesHandler returns a SchedulesHandler over src.
func NewSchedulesHandler(src ScheduleSource) SchedulesHandler {
	return SchedulesHandler{src: src, now: time.Now}
}

// Handle returns the installed schedules, by name; the error is transient.
func (h SchedulesHandler) Handle(ctx context.Context) ([]Schedule, error) {
	list, err := h.src.Schedules(ctx, h.now())
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	if list == nil {
		list = []Schedule{}
	}
	return list, nil
}

// CleanupsRequest is the body of audit.admin.cleanups.
type CleanupsRequest struct {
	Limit  *int   `json:"limit,omitempty"`  // 1 to 100, default 20
	Cursor string `json:"cursor,omitempty"` // the nextCursor of the previous page
}

// CleanupRun is one cleanup run as its own audit event records it.
type CleanupRun struct {
	EventID        string
	JobID          string // the job's id as recorded (requestId)
	RanAt          time.Time
	Cutoff         time.Time
	ExcludeActions []string
	DeletedCount   int64
	DryRun         bool
	DurationMs     int64
	Trigger        string
}

// CleanupRuns is one page of cleanup runs, newest first.
type CleanupRuns struct {
	Runs       []CleanupRun
	NextCursor string
}

// CleanupsHandler lists the cleanup runs from the events each run records
// (action audit.cleanup on resource audit_log/audit_logs): the durable
// record, in the trail and under its tamper evidence, unlike the last
// results kept in a stream.
type CleanupsHandler struct {
	searcher audit.Searcher
	reads    ReadAuditor
}

// NewCleanupsHandler returns a CleanupsHandler over s.
func NewCleanupsHandler(s audit.Searcher, reads ReadAuditor) CleanupsHandler {
	return CleanupsHandler{searcher: s, reads: reads}
}

// Handle returns one page of runs and records the read. A bad request is a
// *audit.ValidationError naming the field; anything else is transient.
func (h CleanupsHandler) Handle(ctx context.Context, req CleanupsRequest, who Requester) (CleanupRuns, error) {
	limit, err := adminLimit(req.Limit)
	if err != nil {
		return CleanupRuns{}, err
	}
	search := SearchRequest{Action: audit.CleanupAction, ResourceType: audit.CleanupResourceType,
		ResourceID: audit.CleanupResourceID, Limit: &limit, Cursor: req.Cursor}
	f, err := search.filter()
	if err != nil {
		var v *audit.ValidationError
		if errors.As(err, &v) && v.Field == "cursor" {
			return CleanupRuns{}, audit.Invalid("cursor", "is not a cursor returned by audit.admin.cleanups")
		}
		return CleanupRuns{}, err
	}
	f.Limit++
	events, err := h.searcher.Search(ctx, f)
	if err != nil {
		err = fmt.Errorf("search cleanup runs: %w", err)
	}
	var out CleanupRuns
	if len(events) > limit {
		events = events[:limit]
		last := events[limit-1]
		out.NextCursor = cursorAfter(last, nil)
	}
	out.Runs = make([]CleanupRun, 0, len(events))
	for _, e := range events {
		out.Runs = append(out.Runs, cleanupRun(e))
	}
	rec := read{action: ActionAdmin, endpoint: "audit.admin.cleanups", request: req, who: who,
		extra: map[string]any{"returned": len(out.Runs)}}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return CleanupRuns{}, err
	}
	return out, nil
}

// cleanupRun reads a run from its event; details it cannot read stay zero.
func cleanupRun(e audit.Event) CleanupRun {
	var d struct {
		Cutoff         time.Time `json:"cutoff"`
		ExcludeActions []string  `json:"excludeActions"`
		DeletedCount   int64     `json:"deletedCount"`
		DryRun         bool      `json:"dryRun"`
		DurationMs     int64     `json:"durationMs"`
		Trigger        string    `json:"trigger"`
	}
	_ = json.Unmarshal(e.Details, &d)
	if d.ExcludeActions == nil {
		d.ExcludeActions = []string{}
	}
	return CleanupRun{
		EventID: e.ID, JobID: e.RequestID, RanAt: e.OccurredAt, Cutoff: d.Cutoff.UTC(), ExcludeActions: d.ExcludeActions,
		DeletedCount: d.DeletedCount, DryRun: d.DryRun, DurationMs: d.DurationMs, Trigger: d.Trigger,
	}
}

// ExpiredCounter counts what a cleanup would delete now.
type ExpiredCounter interface {
	CountExpired(ctx context.Context, c audit.Cleanup) (int64, error)
}

// DryRun is what a cleanup would delete now.
type DryRun struct {
	Request     audit.CleanupRequest // as asked, or the scheduled cleanup's
	Scheduled   bool                 // the request was {}: the scheduled cleanup's settings
	Cutoff      time.Time
	WouldDelete int64
	DurationMs  int64
}

// CleanupDryRunHandler counts what a cleanup would delete, through the
// same retention policy and the same rows as the cleanup job, deleting
// nothing (audit.admin.cleanup.dryrun).
type CleanupDryRunHandler struct {
	counter   ExpiredCounter
	policy    audit.RetentionPolicy
	scheduled audit.CleanupRequest
	reads     ReadAuditor
	now       func() time.Time
}

// NewCleanupDryRunHandler returns a CleanupDryRunHandler; scheduled is the
// request of the scheduled cleanup, counted for an empty request.
func NewCleanupDryRunHandler(c ExpiredCounter, policy audit.RetentionPolicy, scheduled audit.CleanupRequest, reads ReadAuditor) CleanupDryRunHandler {
	return CleanupDryRunHandler{counter: c, policy: policy, scheduled: scheduled, reads: reads, now: time.Now}
}

// Handle decodes body as an audit.cleanup job without dryRun ({} for the
// scheduled cleanup), plans it as the job would be now and counts the rows
// it would delete; the read is recorded. A bad request or a cutoff the
// policy refuses is a *audit.ValidationError naming the field.
func (h CleanupDryRunHandler) Handle(ctx context.Context, body json.RawMessage, who Requester) (DryRun, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil || members == nil {
		return DryRun{}, audit.Invalid("(request)", "must be a JSON object")
	}
	if _, ok := members["dryRun"]; ok {
		return DryRun{}, audit.Invalid("dryRun", "unknown field (audit.admin.cleanup.dryrun never deletes)")
	}
	out := DryRun{Request: h.scheduled, Scheduled: len(members) == 0}
	if !out.Scheduled {
		req, err := audit.DecodeCleanupRequest(body)
		if err != nil {
			return DryRun{}, err
		}
		out.Request = req
	}
	start := h.now()
	plan, err := h.policy.Plan(out.Request, start)
	if err != nil {
		return DryRun{}, err
	}
	plan.DryRun = true
	out.Cutoff = plan.Cutoff
	out.WouldDelete, err = h.counter.CountExpired(ctx, plan)
	if err != nil {
		err = fmt.Errorf("count expired rows: %w", err)
	}
	out.DurationMs = h.now().Sub(start).Milliseconds()
	rec := read{action: ActionAdmin, endpoint: "audit.admin.cleanup.dryrun", request: out.Request, who: who,
		extra: map[string]any{"cutoff": out.Cutoff, "wouldDelete": out.WouldDelete, "scheduled": out.Scheduled}}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return DryRun{}, err
	}
	return out, nil
}

// LastCheckpointReader reads the newest signed checkpoint, nil when none
// is written yet.
type LastCheckpointReader interface {
	LastCheckpoint(ctx context.Context) (*evidence.Checkpoint, error)
}

// BacklogReader reads the messages waiting in each job consumer.
type BacklogReader interface {
	Pending(ctx context.Context) (map[string]uint64, error)
}

// Status is the state an operator checks first (audit.admin.status).
type Status struct {
	Time           time.Time
	TamperEvidence bool
	// Checkpoint is the newest signed checkpoint, nil when none is written
	// yet or tamper evidence is off; NextCheckpointDue is when the next
	// periodic one is due (zero without a checkpoint).
	Checkpoint        *evidence.Checkpoint
	NextCheckpointDue time.Time
	Poison            map[string]audit.PoisonStat
	Pending           map[string]uint64
	// LastVerify is the newest recorded verification of the whole trail,
	// nil when none was recorded.
	LastVerify *VerifyRun
}

// LastVerifyReader reads the newest recorded verification, nil when none.
type LastVerifyReader interface {
	LastVerify(ctx context.Context) (*VerifyRun, error)
}

// StatusHandler reads the status. It reads no event and is not recorded
// as a read.
type StatusHandler struct {
	checkpoints LastCheckpointReader // nil: tamper evidence off
	interval    time.Duration
	poison      audit.PoisonStream
	backlog     BacklogReader
	verifies    LastVerifyReader
	now         func() time.Time
}

// NewStatusHandler returns a StatusHandler; cp is nil when tamper
// evidence is off, interval is AUDITQ_CHECKPOINT_INTERVAL, verifies reads
// the verifications "auditq verify" recorded.
func NewStatusHandler(cp LastCheckpointReader, interval time.Duration, poison audit.PoisonStream, backlog BacklogReader, verifies LastVerifyReader) StatusHandler {
	return StatusHandler{checkpoints: cp, interval: interval, poison: poison, backlog: backlog, verifies: verifies, now: time.Now}
}

// Handle returns the status; the error is transient.
func (h StatusHandler) Handle(ctx context.Context) (Status, error) {
	out := Status{Time: audit.Normalize(h.now()), TamperEvidence: h.checkpoints != nil}
	if h.checkpoints != nil {
		cp, err := h.checkpoints.LastCheckpoint(ctx)
		if err != nil {
			return Status{}, fmt.Errorf("last checkpoint: %w", err)
		}
		out.Checkpoint = cp
		if cp != nil {
			out.NextCheckpointDue = cp.Time.Add(h.interval)
		}
	}
	var err error
	if out.Poison, err = h.poison.Stats(ctx); err != nil {
		return Status{}, fmt.Errorf("poison stream: %w", err)
	}
	if out.Pending, err = h.backlog.Pending(ctx); err != nil {
		return Status{}, fmt.Errorf("job backlog: %w", err)
	}
	if out.LastVerify, err = h.verifies.LastVerify(ctx); err != nil {
		return Status{}, fmt.Errorf("last verify: %w", err)
	}
	return out, nil
}
