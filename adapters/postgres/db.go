// Package postgres is the driven adapter for PostgreSQL: Bun with pgdialect
// over the pgx v5 stdlib driver.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Open connects to the database named in url, creating the database first
// when it does not exist and the server lets this role create it. It
// returns an error naming the database (never the password) when it cannot.
func Open(ctx context.Context, url string, maxConns int) (*bun.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %s", redactErr(err))
	}
	if err := ensureDatabase(ctx, cfg); err != nil {
		return nil, err
	}
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := bun.NewDB(sqldb, pgdialect.New())
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to database %q on %s:%d: %w", cfg.Database, cfg.Host, cfg.Port, err)
	}
	return db, nil
}

// ensureDatabase creates cfg.Database through the maintenance database
// "postgres" if it is missing. Lacking the right to do so is not an error
// here: the connection attempt that follows reports the real problem.
func ensureDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	if cfg.Database == "" || cfg.Database == "postgres" {
		return nil
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, admin)
	if err != nil {
		return nil
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var exists bool
	if err := conn.QueryRow(cctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", cfg.Database).Scan(&exists); err != nil || exists {
		return nil
	}
	_, err = conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{cfg.Database}.Sanitize())
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
	case errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "42501"):
		// duplicate_database (created meanwhile) or insufficient_privilege
	default:
		return fmt.Errorf("create database %q: %w", cfg.Database, err)
	}
	return nil
}

// redactErr keeps parse errors from echoing a URL that may hold a password.
func redactErr(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return "invalid connection string (check its syntax)"
	}
	return "invalid connection string"
}

// Ping reports whether the database answers within ctx.
func Ping(ctx context.Context, db *bun.DB) error {
	return db.PingContext(ctx)
}

var sqlErrNoRows = sql.ErrNoRows
