package migrations_test

import (
	"context"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/migrations"
)

const perTenant = "20261204000100_event_id_per_tenant"

// migrateBefore applies, as Up would, every migration older than name.
func migrateBefore(t *testing.T, db *bun.DB, name string) {
	t.Helper()
	ctx := context.Background()
	older := fstest.MapFS{}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") && e.Name() < name {
			b, err := fs.ReadFile(os.DirFS("."), e.Name())
			if err != nil {
				t.Fatal(err)
			}
			older[e.Name()] = &fstest.MapFile{Data: b}
		}
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(older); err != nil {
		t.Fatal(err)
	}
	m := migrate.NewMigrator(db, ms, migrate.WithTableName("auditq_migrations"),
		migrate.WithLocksTableName("auditq_migration_locks"), migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
}

// pkeyColumns returns the columns of audit_logs' primary key, in order.
func pkeyColumns(t *testing.T, db *bun.DB) string {
	t.Helper()
	var cols string
	err := db.QueryRowContext(context.Background(), `SELECT string_agg(a.attname, ',' ORDER BY k.n)
		FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = 'audit_logs'::regclass AND i.indisprimary`).Scan(&cols)
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

// Rows stored under the old primary key (id alone) keep working after
// 20261204000100: each is found by its tenant and id down the new key,
// the same id can now be stored in another tenant, and a repeat within a
// tenant still conflicts. Going down fails, naming the id, while two
// tenants share one.
func TestEventIDPerTenantMigration(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.NewDatabase(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	migrateBefore(t, db, perTenant)
	insert := func(id, tenant string) error {
		_, err := db.ExecContext(ctx, `INSERT INTO audit_logs (id, action, resource_type, resource_id, occurred_at, tenant)
			VALUES (?, 'old.row', 'doc', 'd1', now(), ?)`, id, tenant)
		return err
	}
	for _, r := range [][2]string{{"evt-1", ""}, {"evt-2", "acme"}, {"evt-3", "globex"}} {
		if err := insert(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	if got := pkeyColumns(t, db); got != "id" {
		t.Fatalf("old primary key on %s", got)
	}
	if err := insert("evt-1", "acme"); err == nil {
		t.Fatal("the old schema took evt-1 in a second tenant")
	}

	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	if got := pkeyColumns(t, db); got != "id,tenant" {
		t.Fatalf("primary key on %s, want id,tenant", got)
	}
	for _, r := range [][2]string{{"evt-1", ""}, {"evt-2", "acme"}, {"evt-3", "globex"}} {
		var action string
		if err := db.QueryRowContext(ctx, `SELECT action FROM audit_logs WHERE id = ? AND tenant = ?`, r[0], r[1]).Scan(&action); err != nil || action != "old.row" {
			t.Errorf("old row %s of %q: %q, %v", r[0], r[1], action, err)
		}
	}
	if err := insert("evt-1", "acme"); err != nil {
		t.Fatalf("evt-1 in a second tenant: %v", err)
	}
	if err := insert("evt-2", "acme"); err == nil || !strings.Contains(err.Error(), "audit_logs_pkey") {
		t.Fatalf("evt-2 again in acme: %v, want a conflict on audit_logs_pkey", err)
	}
	// A lookup by id, with or without its tenant, goes down the key.
	for _, q := range []string{`SELECT * FROM audit_logs WHERE id = 'evt-1' AND tenant = 'acme'`, `SELECT * FROM audit_logs WHERE id = 'evt-1'`} {
		plan := explain(t, db, q)
		if !strings.Contains(plan, "audit_logs_pkey") {
			t.Errorf("%s:\n%s", q, plan)
		}
	}

	// Down: refused while evt-1 is in two tenants, then back to id alone.
	down, err := os.ReadFile(perTenant + ".tx.down.sql")
	if err != nil {
		t.Fatal(err)
	}
	runDown := func() error { return runInTx(ctx, db, string(down)) }
	if err := runDown(); err == nil || !strings.Contains(err.Error(), "audit_logs_pkey") {
		t.Fatalf("down with evt-1 in two tenants: %v", err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM audit_logs WHERE id = 'evt-1' AND tenant = 'acme'`); err != nil {
		t.Fatal(err)
	}
	if err := runDown(); err != nil {
		t.Fatalf("down: %v", err)
	}
	if got := pkeyColumns(t, db); got != "id" {
		t.Fatalf("after down, primary key on %s", got)
	}
}

// explain returns the plan of q with sequential scans off, so that a
// table of a few rows still shows which index can serve q.
func explain(t *testing.T, db *bun.DB, q string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, "EXPLAIN "+q)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "RESET enable_seqscan"); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// runInTx runs the statements of a migration file (split at
// "--bun:split") in one transaction, as bun's migrator runs a .tx file.
func runInTx(ctx context.Context, db *bun.DB, sql string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, stmt := range strings.Split(sql, "--bun:split") {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return tx.Commit()
}
