package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/auditq/auditq/domain/audit"
)

// Protect is Personal.protect, for the benchmarks of package postgres_test.
func (p *Personal) Protect(ctx context.Context, tx pgx.Tx, events []audit.Event) ([]audit.Event, error) {
	return p.protect(ctx, tx, events)
}

// BenchEvent is benchEvent, for the benchmarks of package postgres_test.
func BenchEvent(t testing.TB, i int) audit.Event { return benchEvent(t, i) }

// Remembers reports whether a write of p remembers the subject of userID
// and the session pseudonym of sessionID in tenant.
func (p *Personal) Remembers(tenant, userID, sessionID string) (user, session bool) {
	p.knownMu.Lock()
	defer p.knownMu.Unlock()
	_, user = p.known[named{tenant, userID}]
	_, session = p.sessions[named{tenant, sessionID}]
	return user, session
}

// WriteFirstForm makes encrypting writes store what they stored before
// the binary sealed fields and the 128-bit session pseudonym, version 1
// (JSON) and the session pseudonym of the whole HMAC, until restore is
// called. The tests of rows of both forms use it; they must not run in
// parallel.
func WriteFirstForm() (restore func()) {
	saved := sealedWrite
	sealedWrite.version, sealedWrite.encode, sealedWrite.session = sealedJSON, sealedFields.appendJSON, longSessionPseudonymOf
	return func() { sealedWrite = saved }
}
