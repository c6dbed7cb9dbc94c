// Package app is the application layer: one handler per use case, grouped
// into commands (writes) and queries (reads). It depends only on domain.
package app

import "github.com/auditq/auditq/app/command"

// Application is everything the driving ports may call.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands are the use cases that change state.
type Commands struct {
	RecordEvents command.RecordEventsHandler
	RecordBulk   command.RecordBulkHandler
}

// Queries are the read-only use cases.
type Queries struct{}
