// Package ports holds the driving side of auditq: the Watermill router and
// its handlers (one per job subject), and the HTTP endpoints for health and
// metrics. Ports decode, call one application handler and map the result.
package ports

// Subjects: a public contract (README, "Subjects and streams"). Never
// rename one silently.
const (
	SubjectLog  = "audit.log"  // one event
	SubjectBulk = "audit.bulk" // {"events": [...]}

	PoisonPrefix   = "audit.poison." // + job name, e.g. audit.poison.log
	PoisonSubjects = "audit.poison.>"

	ResultSubjects     = "audit.results.>"
	SubjectBulkResults = "audit.results.bulk"
)

// JobSubjects are the subjects of stream AUDIT.
func JobSubjects() []string {
	return []string{SubjectLog, SubjectBulk}
}

// handler names: the Watermill handler names, also a public contract (they
// appear in poison headers and metrics).
const (
	handlerLog  = "audit.log"
	handlerBulk = "audit.bulk"
)
