// Package app is the application layer: one handler per use case, grouped
// into commands (writes) and queries (reads). It depends only on domain.
package app

import (
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
)

// Application is everything the driving ports may call.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands are the use cases that change state.
type Commands struct {
	RecordEvents command.RecordEventsHandler
	RecordBulk   command.RecordBulkHandler
	RunCleanup   command.RunCleanupHandler
	// StartJob stores the cleanup and report jobs an operator starts
	// through a request, with who started them.
	StartJob command.StartJobHandler

	// WriteCheckpoint writes a signed checkpoint when asked to
	// (audit.checkpoint.write); nil when tamper evidence is off.
	WriteCheckpoint *command.WriteCheckpointHandler

	// Erase erases a data subject's personal data (audit.admin.erase).
	Erase command.EraseHandler
	// PoisonActions replays and discards poison messages for an operator
	// (audit.admin.poison.replay, audit.admin.poison.discard).
	PoisonActions command.PoisonActionsHandler
}

// Queries are the read use cases. Each records the read itself as an
// audit event when read auditing is on; Report also stores the report it
// generated (for a request or an audit.report.generate job). They change
// nothing else.
type Queries struct {
	Report      query.ReportHandler
	GetReport   query.GetReportHandler
	ListReports query.ListReportsHandler
	Search      query.SearchHandler
	GetEvent    query.GetEventHandler

	// Export delivers every event of a filter in pages (audit.export).
	Export query.ExportHandler

	// EventProof and PublicKey serve tamper evidence (audit.event.proof,
	// audit.pubkey).
	EventProof query.EventProofHandler
	PublicKey  query.PublicKeyHandler

	// The operator's reads (audit.admin.*): the poison stream, the
	// schedules, the cleanup runs, a dry-run cleanup and the status.
	PoisonList    query.PoisonListHandler
	PoisonGet     query.PoisonGetHandler
	Schedules     query.SchedulesHandler
	Cleanups      query.CleanupsHandler
	CleanupDryRun query.CleanupDryRunHandler
	Status        query.StatusHandler

	// Denials records refused requests (403), aggregated; nil records
	// none.
	Denials *query.DenialAuditor
}
