package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
)

// validPrefix keeps database names plain identifiers: they go into SQL
// unquoted.
var validPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ScratchDatabase creates an empty database, named prefix and 12 random
// hex digits, on the PostgreSQL server of adminURL (a role that may
// create databases), the way adapters/postgres/pgtest.NewDatabase does
// for tests (which cannot use this package: adapters may not depend on
// e2e). It returns the database's URL (adminURL with its path replaced)
// and drop, which removes it with its connections (WITH (FORCE)) and
// returns the error of that, if any. On failure it returns "", nil and the
// error; the create and each drop take at most 30 seconds.
func ScratchDatabase(ctx context.Context, adminURL, prefix string) (dbURL string, drop func() error, err error) {
	if !validPrefix.MatchString(prefix) {
		return "", nil, fmt.Errorf("harness: database name prefix %q: want lower-case letters, digits and _", prefix)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("harness: admin URL: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if err := adminExec(ctx, adminURL, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop = func() error {
		return adminExec(context.Background(), adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// adminExec runs one statement on a connection of its own to adminURL.
func adminExec(ctx context.Context, adminURL, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("harness: connect to %s: %w", redacted(adminURL), err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("harness: %s: %w", sql, err)
	}
	return nil
}

// redacted returns u with its password, if any, replaced by "xxxxx".
func redacted(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(an unparsable URL)"
	}
	return pu.Redacted()
}
