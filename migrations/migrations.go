// Package migrations holds the database schema as embedded SQL files and
// applies them at start-up.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var files embed.FS

// lockKey is the pg_advisory_lock key that serialises migrations between
// auditq instances starting at the same time ("auditq" in ASCII).
const lockKey = 0x617564697471

// Up applies every migration not yet applied, holding a Postgres advisory
// lock so that concurrent starts migrate once. A crash releases the lock
// with its session, unlike a lock row. It returns the first failure.
func Up(ctx context.Context, db *bun.DB) error {
	ms := migrate.NewMigrations()
	if err := ms.Discover(files); err != nil {
		return fmt.Errorf("discover migrations: %w", err)
	}
	// A least-privilege role (docs/writer-role.sql) may not create tables,
	// not even "IF NOT EXISTS" ones that exist: when every migration is
	// applied already, Up only reads, so that the service can start as
	// such a role.
	if upToDate(ctx, db, ms) {
		return nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", lockKey); err != nil {
		return fmt.Errorf("migrations: take advisory lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", lockKey) //nolint:errcheck // released with the session anyway

	m := migrate.NewMigrator(db, ms,
		migrate.WithTableName("auditq_migrations"),
		migrate.WithLocksTableName("auditq_migration_locks"),
		migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("migrations: init: %w", err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}

// upToDate reports whether every migration in ms is recorded as applied; it
// only reads, and says false on any doubt (the migrator then decides).
func upToDate(ctx context.Context, db *bun.DB, ms *migrate.Migrations) bool {
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass('auditq_migrations') IS NOT NULL").Scan(&exists); err != nil || !exists {
		return false
	}
	var names []string
	if err := db.NewSelect().Table("auditq_migrations").Column("name").Scan(ctx, &names); err != nil {
		return false
	}
	applied := make(map[string]bool, len(names))
	for _, n := range names {
		applied[n] = true
	}
	for _, m := range ms.Sorted() {
		if !applied[m.Name] {
			return false
		}
	}
	return true
}
