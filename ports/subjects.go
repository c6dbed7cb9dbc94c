// Package ports holds the driving side of auditq: the Watermill router and
// its handlers (one per job subject), and the HTTP endpoints for health and
// metrics. Ports decode, call one application handler and map the result.
package ports

// handler names: the Watermill handler names, also a public contract (they
// appear in poison headers and metrics).
const (
	handlerLog     = "audit.log"
	handlerBulk    = "audit.bulk"
	handlerCleanup = "audit.cleanup"

	handlerReportGenerate = "audit.report.generate"
)
