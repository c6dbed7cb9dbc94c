package migrations_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/migrations"
)

const pseudonymLength = "20261207002000_pseudonym_length"

// 20261207002000 records that the pseudonym key stored before it makes
// pseudonyms of all 32 bytes of the HMAC, and that a key stored after it
// makes them of 16. Going down is refused while a key of 16 exists.
func TestPseudonymLengthMigration(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.NewDatabase(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	migrateBefore(t, db, pseudonymLength)
	insert := func() {
		t.Helper()
		if _, err := db.ExecContext(ctx, `INSERT INTO audit_personal_keys (name, wrapped, kek_id) VALUES ('pseudonym', '\x01', 'k')`); err != nil {
			t.Fatal(err)
		}
	}
	length := func() (n int) {
		t.Helper()
		if err := db.QueryRowContext(ctx, `SELECT pseudonym_bytes FROM audit_personal_keys WHERE name = 'pseudonym'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert()
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	if n := length(); n != 32 {
		t.Fatalf("the key stored before: %d bytes, want 32", n)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM audit_personal_keys`); err != nil {
		t.Fatal(err)
	}
	insert()
	if n := length(); n != 16 {
		t.Fatalf("a key stored after: %d bytes, want 16", n)
	}
	down, err := os.ReadFile(pseudonymLength + ".tx.down.sql")
	if err != nil {
		t.Fatal(err)
	}
	runDown := func() error { return runInTx(ctx, db, string(down)) }
	if err := runDown(); err == nil || !strings.Contains(err.Error(), "cannot go down") {
		t.Fatalf("down with a key of 16 bytes: %v", err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_personal_keys SET pseudonym_bytes = 32`); err != nil {
		t.Fatal(err)
	}
	if err := runDown(); err != nil {
		t.Fatalf("down: %v", err)
	}
}
