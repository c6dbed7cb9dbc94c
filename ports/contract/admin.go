package contract

import (
	"encoding/base64"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// Operator request subjects, answered by the micro service (see
// RequestSubjects): the poison stream, the schedules, the cleanup runs, a
// dry-run cleanup and the status (docs/contract.md, "Operations"). All
// lie under AdminSubjects, so that one NATS permission covers them.
const (
	AdminSubjects = "audit.admin.>"

	SubjectAdminPoisonList    = "audit.admin.poison.list"
	SubjectAdminPoisonGet     = "audit.admin.poison.get"
	SubjectAdminPoisonReplay  = "audit.admin.poison.replay"
	SubjectAdminPoisonDiscard = "audit.admin.poison.discard"
	SubjectAdminSchedules     = "audit.admin.schedules"
	SubjectAdminCleanups      = "audit.admin.cleanups"
	SubjectAdminCleanupDryRun = "audit.admin.cleanup.dryrun"
	SubjectAdminStatus        = "audit.admin.status"

	// SubjectAdminCleanup starts a cleanup job (the body of an
	// audit.cleanup job) and SubjectAdminReportGenerate a report job (the
	// body of an audit.report request), for an operator: the service
	// stores the job in stream AUDIT with the identity the NATS server
	// authenticated, which JetStream would not keep on a job published
	// directly. The reply is a JobStarted.
	SubjectAdminCleanup        = "audit.admin.cleanup"
	SubjectAdminReportGenerate = "audit.admin.report.generate"
)

// JobStarted is the answer of audit.admin.cleanup and
// audit.admin.report.generate: the job as stored in stream AUDIT. Its
// result carries job id ID (header job_id on audit.results.cleanup and
// audit.results.report).
type JobStarted struct {
	ID        string `json:"id"`
	Subject   string `json:"subject"` // the job subject: audit.cleanup or audit.report.generate
	Seq       uint64 `json:"seq"`     // its sequence in stream AUDIT
	Duplicate bool   `json:"duplicate"`
}

// AdminRequestSubjects are the operator's request subjects.
func AdminRequestSubjects() []string {
	return []string{SubjectAdminPoisonList, SubjectAdminPoisonGet, SubjectAdminPoisonReplay, SubjectAdminPoisonDiscard,
		SubjectAdminSchedules, SubjectAdminCleanups, SubjectAdminCleanupDryRun, SubjectAdminStatus,
		SubjectAdminCleanup, SubjectAdminReportGenerate}
}

// PoisonPreviewBytes is the most bytes of a payload a poison list shows.
const PoisonPreviewBytes = 256

// PoisonMessageView is what every answer about a poison message says of it.
type PoisonMessageView struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"` // when the poison stream stored it
	Job       string    `json:"job"`
	Subject   string    `json:"subject"`
	ID        string    `json:"id,omitempty"`      // the original message id
	EventID   string    `json:"eventId,omitempty"` // the id its event would be stored under
	Reason    string    `json:"reason"`
	Handler   string    `json:"handler,omitempty"`
	Target    string    `json:"target,omitempty"` // where a replay publishes it
	Truncated bool      `json:"truncated"`        // the stored payload was cut to fit the broker
	Size      int       `json:"size"`             // bytes of the stored payload
}

// PoisonSummary is a poison message in a list, its payload's beginning as
// text (invalid UTF-8 replaced by U+FFFD).
type PoisonSummary struct {
	PoisonMessageView
	PayloadPreview string `json:"payloadPreview"`
}

// PoisonDetail is the answer of audit.admin.poison.get: the message with
// its headers and its whole payload, as text when it is valid UTF-8
// (payload), else in base64 (payloadBase64).
type PoisonDetail struct {
	PoisonMessageView
	Headers       map[string][]string `json:"headers"`
	Payload       *string             `json:"payload,omitempty"`
	PayloadBase64 *string             `json:"payloadBase64,omitempty"`
}

// PoisonList is the answer of audit.admin.poison.list: newest first, and
// the cursor of the next page (null on the last).
type PoisonList struct {
	Messages   []PoisonSummary `json:"messages"`
	NextCursor *string         `json:"nextCursor"`
}

// PoisonReplayed is the answer of audit.admin.poison.replay: the replay as
// stored in the job stream.
type PoisonReplayed struct {
	PoisonSeq uint64 `json:"poisonSeq"` // the poison message, now removed
	Subject   string `json:"subject"`   // the job subject
	Seq       uint64 `json:"seq"`       // its sequence in stream AUDIT
	ID        string `json:"id"`        // the message id it kept
	Duplicate bool   `json:"duplicate"` // stream AUDIT had this replay already
}

// PoisonDiscarded is the answer of audit.admin.poison.discard.
type PoisonDiscarded struct {
	Discarded PoisonSummary `json:"discarded"`
}

func poisonView(m audit.PoisonMessage) PoisonMessageView {
	return PoisonMessageView{
		Seq: m.Seq, Time: m.Time.UTC(), Job: m.Job, Subject: m.Subject, ID: m.ID, EventID: m.EventID,
		Reason: m.Reason, Handler: m.Handler, Target: m.Target, Truncated: m.Truncated, Size: len(m.Payload),
	}
}

// PoisonSummaryOf returns m as a poison list shows it.
func PoisonSummaryOf(m audit.PoisonMessage) PoisonSummary {
	p := m.Payload
	if len(p) > PoisonPreviewBytes {
		n := PoisonPreviewBytes
		for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(p[n]); i++ {
			n-- // do not cut a character in two
		}
		p = p[:n]
	}
	return PoisonSummary{PoisonMessageView: poisonView(m), PayloadPreview: strings.ToValidUTF8(string(p), "\uFFFD")}
}

// PoisonDetailOf returns m as audit.admin.poison.get shows it.
func PoisonDetailOf(m audit.PoisonMessage) PoisonDetail {
	d := PoisonDetail{PoisonMessageView: poisonView(m), Headers: m.Header}
	if d.Headers == nil {
		d.Headers = map[string][]string{}
	}
	if utf8.Valid(m.Payload) {
		s := string(m.Payload)
		d.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(m.Payload)
		d.PayloadBase64 = &s
	}
	return d
}

// ScheduleView is one installed schedule (audit.admin.schedules).
type ScheduleView struct {
	Name      string     `json:"name"`
	Subject   string     `json:"subject"` // audit.schedule.<name>
	Pattern   string     `json:"pattern"`
	TimeZone  string     `json:"timeZone"`
	Target    string     `json:"target"`  // the job subject it fires to
	Payload   string     `json:"payload"` // the job it fires
	Installed time.Time  `json:"installed"`
	Next      *time.Time `json:"next"` // the next firing; null when it cannot be computed
}

// ScheduleList is the answer of audit.admin.schedules, by name.
type ScheduleList struct {
	Schedules []ScheduleView `json:"schedules"`
}

// CleanupRunView is one cleanup run, as its own audit event records it.
type CleanupRunView struct {
	EventID        string    `json:"eventId"`
	JobID          string    `json:"jobId"`
	RanAt          time.Time `json:"ranAt"`
	Cutoff         time.Time `json:"cutoff"`
	ExcludeActions []string  `json:"excludeActions"`
	DeletedCount   int64     `json:"deletedCount"`
	DryRun         bool      `json:"dryRun"`
	DurationMs     int64     `json:"durationMs"`
	Trigger        string    `json:"trigger"`
}

// CleanupRunList is the answer of audit.admin.cleanups: newest first, and
// the cursor of the next page (null on the last).
type CleanupRunList struct {
	Cleanups   []CleanupRunView `json:"cleanups"`
	NextCursor *string          `json:"nextCursor"`
}

// CleanupDryRun is the answer of audit.admin.cleanup.dryrun.
type CleanupDryRun struct {
	Scheduled      bool       `json:"scheduled"` // the request was {}: the scheduled cleanup's settings
	RetentionDays  *int       `json:"retentionDays,omitempty"`
	BeforeDate     *time.Time `json:"beforeDate,omitempty"`
	ExcludeActions []string   `json:"excludeActions"`
	Cutoff         time.Time  `json:"cutoff"`
	WouldDelete    int64      `json:"wouldDelete"`
	DurationMs     int64      `json:"durationMs"`
}

// PoisonBacklog is one job's share of the poison stream.
type PoisonBacklog struct {
	Messages uint64     `json:"messages"`
	Oldest   *time.Time `json:"oldest"` // when its oldest message was stored; null when it has none
}

// VerifyRunView is a recorded verification of the whole trail ("auditq
// verify"), as audit.admin.status reports the newest.
type VerifyRunView struct {
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
	DurationMs    int64     `json:"durationMs"`
	OK            bool      `json:"ok"`
	Events        int64     `json:"events"`        // rows checked
	Batches       int64     `json:"batches"`       // batches checked
	BatchSeq      int64     `json:"batchSeq"`      // the newest batch of the chain checked
	Checkpoints   int64     `json:"checkpoints"`   // checkpoints checked
	CheckpointSeq int64     `json:"checkpointSeq"` // the newest checkpoint checked; 0 when none
	Uncovered     int64     `json:"uncovered"`     // batches after the newest checkpoint
	FailureCount  int64     `json:"failureCount"`
	FirstFailure  string    `json:"firstFailure,omitempty"` // the first problem in trail order
	Trigger       string    `json:"trigger"`                // who ran it: "auditq verify"
}

// Status is the answer of audit.admin.status.
type Status struct {
	Time           time.Time `json:"time"`
	TamperEvidence bool      `json:"tamperEvidence"`
	// Checkpoint is the newest signed checkpoint, null before the first or
	// with tamper evidence off; CheckpointAgeSeconds its age at Time.
	Checkpoint           *evidence.Checkpoint     `json:"checkpoint"`
	CheckpointAgeSeconds *float64                 `json:"checkpointAgeSeconds"`
	NextCheckpointDue    *time.Time               `json:"nextCheckpointDue"`
	Poison               map[string]PoisonBacklog `json:"poison"`  // every job of PoisonJobs
	Pending              map[string]uint64        `json:"pending"` // messages waiting per job subject
	// LastVerify is the newest verification "auditq verify" recorded in
	// the database, null when none was.
	LastVerify *VerifyRunView `json:"lastVerify"`
}
