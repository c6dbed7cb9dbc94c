// Package pgtest gives tests a fresh PostgreSQL database of their own, so
// they never share rows and can run in parallel, and the least-privilege
// writer role on it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// AdminURL is the server tests create their databases on:
// AUDITQ_TEST_DATABASE_URL, default the local PostgreSQL as user postgres.
func AdminURL() string {
	if u := os.Getenv("AUDITQ_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database and returns its URL. The database is
// dropped when the test ends. It fails the test when PostgreSQL is down.
func NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "auditq_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v (is PostgreSQL running?)", AdminURL(), err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// WriterRole runs the role script at scriptPath (docs/writer-role.sql) on
// the migrated database at ownerURL, with the role renamed to one of that
// database's own (roles are shared by every database of the server, and
// other test runs may use theirs at the same time), and returns the
// database's URL as that role. The role is dropped when the test ends.
func WriterRole(t testing.TB, ownerURL, scriptPath string) string {
	t.Helper()
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u, err := url.Parse(ownerURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	role := "auditq_writer_" + strings.TrimPrefix(u.Path, "/auditq_test_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owner, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer func() { _ = owner.Close(ctx) }()
	// The simple protocol: the script is several statements.
	if _, err := owner.PgConn().Exec(ctx, strings.ReplaceAll(string(script), "auditq_writer", role)).ReadAll(); err != nil {
		t.Fatalf("pgtest: %s: %v", scriptPath, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, step := range []struct{ url, sql string }{
			{ownerURL, "DROP OWNED BY " + role}, // its grants in this database
			{AdminURL(), "DROP ROLE IF EXISTS " + role},
		} {
			c, err := pgx.Connect(ctx, step.url)
			if err != nil {
				t.Logf("pgtest: %s: %v", step.sql, err)
				return
			}
			_, err = c.Exec(ctx, step.sql)
			_ = c.Close(ctx)
			if err != nil {
				t.Logf("pgtest: %s: %v", step.sql, err)
				return
			}
		}
	})
	u.User = url.User(role)
	return u.String()
}
