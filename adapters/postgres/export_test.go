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
