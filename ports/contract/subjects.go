// Package contract is auditq's public contract on NATS as Go values: every
// subject, and the shapes of the answers that are not domain types (the
// event view, a page of events, a page of stored reports). It imports
// nothing heavier than the domain, so the service's ports, the CLI and
// the Go client share one definition. See docs/contract.md.
package contract

import "strings"

// Subjects: a public contract (docs/contract.md, "Subjects and streams"). Never
// rename one silently.
const (
	SubjectLog  = "audit.log"  // one event
	SubjectBulk = "audit.bulk" // {"events": [...]}

	PoisonPrefix   = "audit.poison." // + job name, e.g. audit.poison.log
	PoisonSubjects = "audit.poison.>"

	ResultSubjects     = "audit.results.>"
	SubjectBulkResults = "audit.results.bulk"

	// SubjectCleanup is the retention job: {"retentionDays"|"beforeDate",
	// "excludeActions"?, "dryRun"?}, run by hand or fired by a schedule.
	SubjectCleanup        = "audit.cleanup"
	SubjectCleanupResults = "audit.results.cleanup"

	// Schedules: JetStream message schedules stored in stream AUDIT, one
	// per subject audit.schedule.<name> (e.g. audit.schedule.cleanup). No
	// consumer matches them, so work-queue retention never removes them.
	SchedulePrefix   = "audit.schedule."
	ScheduleSubjects = "audit.schedule.>"

	// SubjectReportGenerate is the report job: the body of an audit.report
	// request (a schedule sends {"reportType":"daily"}). The stored report
	// is published to SubjectReportResults.
	SubjectReportGenerate = "audit.report.generate"
	SubjectReportResults  = "audit.results.report"

	// SubjectCheckpointWrite is a request answered by the micro service
	// (see RequestSubjects): write a signed tamper-evidence checkpoint now,
	// e.g. so that "auditq verify --event" can prove an event without
	// waiting for AUDITQ_CHECKPOINT_INTERVAL. The body is {}; the reply is
	// {"checkpoint": {...}, "published": bool}. Not to be confused with
	// SubjectCheckpoints, the stream subject every checkpoint is kept on.
	SubjectCheckpointWrite = "audit.checkpoint.write"
)

// Tenant subjects (docs/tenants.md): the events of tenant T arrive on
// audit.t.T.log and audit.t.T.bulk. A tenant's account publishes to
// audit.log and audit.bulk as any publisher does; its import of auditq's
// export maps them there, and the export lets each account import only
// the subjects whose tenant token is its own name. With AUDITQ_TENANTS
// off no stream captures them.
const (
	TenantPrefix       = "audit.t."
	TenantLogSubjects  = "audit.t.*.log"
	TenantBulkSubjects = "audit.t.*.bulk"
	// TenantToken is the position (from 1) of the tenant in a tenant
	// subject: the account_token_position of auditq's exports.
	TenantToken = 3
	// TenantBulkResults is where a tenant's bulk results go
	// (audit.t.T.results.bulk, in stream AUDIT_RESULTS), its tenant at
	// TenantToken too. It lies outside audit.results.>: nats-server
	// authorises an import by the first export in its (unordered) map
	// that matches, so exports must not overlap.
	TenantBulkResults = "audit.t.*.results.bulk"
)

// TenantSubject returns the subject of job ("log" or "bulk") for tenant:
// audit.t.<tenant>.<job>.
func TenantSubject(tenant, job string) string { return TenantPrefix + tenant + "." + job }

// TenantOf splits a job subject into its job subject (audit.log or
// audit.bulk) and tenant: "" for audit.log and audit.bulk themselves; ok
// is false for any other subject.
func TenantOf(subject string) (job, tenant string, ok bool) {
	switch subject {
	case SubjectLog, SubjectBulk:
		return subject, "", true
	}
	rest, found := strings.CutPrefix(subject, TenantPrefix)
	if !found {
		return "", "", false
	}
	tenant, kind, found := strings.Cut(rest, ".")
	if !found || tenant == "" {
		return "", "", false
	}
	switch kind {
	case "log":
		return SubjectLog, tenant, true
	case "bulk":
		return SubjectBulk, tenant, true
	}
	return "", "", false
}

// TenantBulkResultSubject is the subject of a bulk result of tenant:
// audit.results.bulk for the default tenant, else
// audit.t.<tenant>.results.bulk.
func TenantBulkResultSubject(tenant string) string {
	if tenant == "" {
		return SubjectBulkResults
	}
	return TenantPrefix + tenant + ".results.bulk"
}

// PoisonJobs maps the job name of each poison subject (PoisonPrefix +
// job) to the job subject whose rejections it holds. Rejected events of a
// bulk job are under "bulk" too; each is one event, replayed to SubjectLog.
func PoisonJobs() map[string]string {
	return map[string]string{
		"log": SubjectLog, "bulk": SubjectBulk, "cleanup": SubjectCleanup, "report": SubjectReportGenerate,
	}
}

// JobSubjects are the subjects of stream AUDIT.
func JobSubjects() []string {
	return []string{SubjectLog, SubjectBulk, SubjectCleanup, ScheduleSubjects, SubjectReportGenerate}
}

// Request subjects, answered by the micro service "auditq": a public
// contract (docs/contract.md). No stream may capture them, or
// JetStream would answer a request with its publish ack.
const (
	SubjectReport     = "audit.report"
	SubjectReportGet  = "audit.report.get"
	SubjectReportList = "audit.report.list"
	SubjectQuery      = "audit.query"
	SubjectEventGet   = "audit.event.get"

	// SubjectEventProof returns an event's tamper-evidence proof,
	// SubjectPubKey the key checkpoints are signed with.
	SubjectEventProof = "audit.event.proof"
	SubjectPubKey     = "audit.pubkey"

	// SubjectStreams lists the log streams with their state
	// (docs/streams.md): {} answers StreamList.
	SubjectStreams = "audit.streams"
)

// SubjectAdminErase erases a data subject's personal data (an operator's
// request, docs/personal-data.md): {"userId": "..."}; the reply is
// {"eventId", "userPseudonym", "requestedAt", "keysDestroyed"}.
const SubjectAdminErase = "audit.admin.erase"

// RequestSubjects are the subjects the request service answers.
func RequestSubjects() []string {
	subjects := []string{SubjectReport, SubjectReportGet, SubjectReportList, SubjectQuery, SubjectEventGet, SubjectEventProof, SubjectPubKey,
		SubjectCheckpointWrite, SubjectAdminErase, SubjectExport}
	return append(append(subjects, AdminRequestSubjects()...), SubjectStreams, SubjectSchema)
}

// SubjectCheckpoints is the subject of stream AUDIT_CHECKPOINTS: every
// signed checkpoint, as JSON. A public contract (docs/tamper-evidence.md).
const SubjectCheckpoints = "audit.checkpoints"
