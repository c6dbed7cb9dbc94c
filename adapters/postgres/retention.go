package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

// DefaultCleanupChunk is how many candidate rows one cleanup statement
// examines (and at most deletes): small enough that each chunk commits in
// well under a second and never holds locks that ingest would wait on.
const DefaultCleanupChunk = 5000

// Retention deletes expired rows of audit_logs in bounded chunks.
//
// Each chunk is one statement, committed on its own: it takes the next
// chunk of rows older than the cutoff in (occurred_at, id, tenant) order -
// a keyset walk of the audit_logs_occurred_at_idx index, the rows of
// several tenants that share a time and an id sorted by tenant as the walk
// reads them (so that a chunk boundary among them skips none), so excluded
// and held rows are stepped over once, not rescanned by every chunk - and
// deletes those that are neither excluded nor held. Inserts never wait on
// it (they touch other rows), and a run stopped half-way leaves only whole
// chunks deleted, so running the same cleanup again finishes the work.
type Retention struct {
	db    *bun.DB
	chunk int
	pause time.Duration
	// deletions, when set, records each chunk's deleted seal positions in
	// the chunk's own transaction (tamper evidence).
	deletions *DeletionRecorder
	// personal, when set, holds the users' pseudonymised rows as well.
	personal *Personal
}

var _ audit.RetentionStore = (*Retention)(nil)

// RetentionConfig configures a Retention.
type RetentionConfig struct {
	// Chunk is how many candidate rows one statement examines and at most
	// deletes; zero means DefaultCleanupChunk.
	Chunk int
	// Pause is the wait between chunks, leaving the database to ingest;
	// zero means none.
	Pause time.Duration
}

func (c *RetentionConfig) setDefaults() {
	if c.Chunk == 0 {
		c.Chunk = DefaultCleanupChunk
	}
}

// Validate returns an error naming a negative setting.
func (c RetentionConfig) Validate() error {
	if c.Chunk < 0 || c.Pause < 0 {
		return fmt.Errorf("postgres: RetentionConfig: Chunk (%d) and Pause (%s) must not be negative", c.Chunk, c.Pause)
	}
	return nil
}

// NewRetention returns a Retention over db, or cfg's validation error.
func NewRetention(db *bun.DB, cfg RetentionConfig) (*Retention, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Retention{db: db, chunk: cfg.Chunk, pause: cfg.Pause}, nil
}

// RecordingDeletions returns a Retention that also appends, within each
// chunk's transaction, a signed record of the sealed rows it deleted (see
// DeletionRecorder); nil records nothing.
func (r *Retention) RecordingDeletions(d *DeletionRecorder) *Retention {
	c := *r
	c.deletions = d
	return &c
}

// WithPersonal returns a Retention whose held users' rows are held also
// where user_id holds their pseudonym (see Personal); nil holds user ids
// only.
func (r *Retention) WithPersonal(p *Personal) *Retention {
	c := *r
	c.personal = p
	return &c
}

// keep is the condition, on alias a, of rows a cleanup must never delete:
// excluded actions ($2), held users ($3), held resources ($4 types, $5 ids
// pairwise).
const keep = `(a.action = ANY($2::text[])
	OR (a.user_id IS NOT NULL AND a.user_id = ANY($3::text[]))
	OR EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[]) AS h(t, i) WHERE h.t = a.resource_type AND h.i = a.resource_id))`

// chunkSQL deletes the deletable rows among the next $6 rows older than
// the cutoff ($1) after the keyset cursor ($7, $8, $10; $9 false = from the
// start) and returns how many it looked at and deleted, and the new cursor.
// A row is its (id, tenant): the same id in another tenant is another
// event, with its own cutoff. It marks the hours of the deleted rows changed in
// the same statement, so the report rollups of those hours are stale from
// the moment it commits.
// SKIP LOCKED: two cleanups running at once (two firings, two instances)
// share the work instead of waiting on, or deadlocking with, each other.
const chunkSQL = `WITH batch AS (
	SELECT id, tenant, occurred_at FROM audit_logs
	WHERE occurred_at < $1 AND ($9 = false OR (occurred_at, id, tenant) > ($7::timestamptz, $8::text, $10::text))
	ORDER BY occurred_at, id, tenant
	LIMIT $6
	FOR UPDATE SKIP LOCKED
), deleted AS (
	DELETE FROM audit_logs a USING batch b
	WHERE a.id = b.id AND a.tenant = b.tenant AND NOT ` + keep + `
	RETURNING a.seal_batch, a.seal_leaf, a.occurred_at
), hours AS (
	-- The deleted rows' hours change for the report rollups, in this
	-- transaction, without a lock a writer waits for: see markHours.
	INSERT INTO audit_hour_changes (hour)
	SELECT DISTINCT date_trunc('hour', occurred_at, 'UTC') FROM deleted
), last AS (
	SELECT occurred_at, id, tenant FROM batch ORDER BY occurred_at DESC, id DESC, tenant DESC LIMIT 1
)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM deleted),
	(SELECT occurred_at FROM last), (SELECT id FROM last), (SELECT tenant FROM last),
	(SELECT array_agg(seal_batch ORDER BY seal_batch, seal_leaf) FROM deleted WHERE seal_batch IS NOT NULL),
	(SELECT array_agg(seal_leaf ORDER BY seal_batch, seal_leaf) FROM deleted WHERE seal_batch IS NOT NULL)`

const countSQL = `SELECT count(*) FROM audit_logs a WHERE a.occurred_at < $1 AND NOT ` + keep

// tenantCutoff is the cutoff of the row (alias) of a cleanup with tenant
// cutoffs (docs/tenants.md): its tenant's in the arrays $tenants and
// $cutoffs, else $1; the index walk is bounded by $bound, the latest of
// them.
func tenantCutoff(alias string, bound, tenants, cutoffs int) string {
	return fmt.Sprintf(`%[1]soccurred_at < $%[2]d AND %[1]soccurred_at < coalesce((SELECT x.c FROM unnest($%[3]d::text[], $%[4]d::timestamptz[]) AS x(t, c) WHERE x.t = %[1]stenant), $1)`,
		alias, bound, tenants, cutoffs)
}

// tenantKeep is keep with the legal holds of one tenant's users ($n
// tenants, $n+1 user ids pairwise) and resources ($n+2 tenants, $n+3
// types, $n+4 ids) as well.
func tenantKeep(n int) string {
	return strings.TrimSuffix(keep, ")") + fmt.Sprintf(`
	OR EXISTS (SELECT 1 FROM unnest($%[1]d::text[], $%[2]d::text[]) AS h(t, u) WHERE h.t = a.tenant AND h.u = a.user_id)
	OR EXISTS (SELECT 1 FROM unnest($%[3]d::text[], $%[4]d::text[], $%[5]d::text[]) AS h(t, rt, ri)
		WHERE h.t = a.tenant AND h.rt = a.resource_type AND h.ri = a.resource_id))`, n, n+1, n+2, n+3, n+4)
}

// statement is chunkSQL or countSQL: its text, how many parameters it
// takes, and the alias of audit_logs in its cutoff condition.
type statement struct {
	sql    string
	params int
	alias  string
}

var (
	chunkStatement = statement{chunkSQL, 10, ""}
	countStatement = statement{countSQL, 5, "a."}
)

// forCleanup returns the text of s for c and the arguments it takes after
// s's own: a cleanup without tenant cutoffs or tenant holds runs s as it
// is; tenant cutoffs (docs/tenants.md) take the next three parameters,
// tenant holds the next five.
func (r *Retention) forCleanup(s statement, c audit.Cleanup) (string, []any) {
	q, n := s.sql, s.params
	var extra []any
	if len(c.TenantCutoffs) > 0 {
		tenants := make([]string, len(c.TenantCutoffs))
		cutoffs := make([]time.Time, len(c.TenantCutoffs))
		for i, t := range c.TenantCutoffs {
			tenants[i], cutoffs[i] = t.Tenant, t.Cutoff
		}
		q = strings.Replace(q, "WHERE "+s.alias+"occurred_at < $1 AND", "WHERE "+tenantCutoff(s.alias, n+1, n+2, n+3)+" AND", 1)
		extra = append(extra, c.Bound(), tenants, cutoffs)
		n += 3
	}
	if len(c.TenantHoldUsers) > 0 || len(c.TenantHoldResources) > 0 {
		var userTenants, users, resTenants, types, ids []string
		for _, h := range c.TenantHoldUsers {
			userTenants, users = append(userTenants, h.Tenant), append(users, h.UserID)
			if r.personal != nil {
				userTenants, users = append(userTenants, h.Tenant), append(users, r.personal.PseudonymIn(h.Tenant, h.UserID))
			}
		}
		for _, h := range c.TenantHoldResources {
			resTenants, types, ids = append(resTenants, h.Tenant), append(types, h.Resource.Type), append(ids, h.Resource.ID)
		}
		q = strings.Replace(q, keep, tenantKeep(n+1), 1)
		extra = append(extra, nonNil(userTenants), nonNil(users), nonNil(resTenants), nonNil(types), nonNil(ids))
	}
	return q, extra
}

// args are the cleanup's arguments; a held user is held in clear and
// under its pseudonym in every tenant that has events.
func (r *Retention) args(ctx context.Context, c audit.Cleanup) ([]any, error) {
	users := nonNil(c.HoldUsers)
	if r.personal != nil && len(users) > 0 {
		users = append([]string(nil), users...)
		for _, u := range c.HoldUsers {
			ps, err := r.personal.searchPseudonyms(ctx, nil, u, pseudonymOf)
			if err != nil {
				return nil, fmt.Errorf("legal hold: %w", err)
			}
			users = append(users, ps...)
		}
	}
	types := make([]string, len(c.HoldResources))
	ids := make([]string, len(c.HoldResources))
	for i, r := range c.HoldResources {
		types[i], ids[i] = r.Type, r.ID
	}
	return []any{c.Cutoff, nonNil(c.ExcludeActions), users, types, ids}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// DeleteExpired deletes, chunk by chunk, the rows c selects. It returns the
// rows deleted so far with any error (ctx ending included); chunks already
// committed stay deleted.
func (r *Retention) DeleteExpired(ctx context.Context, c audit.Cleanup) (int64, error) {
	var (
		total     int64
		lastAt    time.Time
		lastID    string
		lastTn    string
		hasCursor bool
	)
	held, err := r.args(ctx, c)
	if err != nil {
		return 0, err
	}
	q, extra := r.forCleanup(chunkStatement, c)
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var (
			scanned, deleted int64
			at               sql.NullTime
			id, tenant       sql.NullString
		)
		a := append(append(slices.Clip(held), r.chunk, lastAt, lastID, hasCursor, lastTn), extra...)
		if err := r.deleteChunk(ctx, c, q, a, &scanned, &deleted, &at, &id, &tenant); err != nil {
			return total, fmt.Errorf("delete events before %s: %w", c.Cutoff.Format(time.RFC3339), err)
		}
		total += deleted
		if scanned < int64(r.chunk) || !at.Valid {
			return total, nil
		}
		lastAt, lastID, lastTn, hasCursor = at.Time, id.String, tenant.String, true
		if r.pause > 0 {
			select {
			case <-time.After(r.pause):
			case <-ctx.Done():
				return total, ctx.Err()
			}
		}
	}
}

// deleteChunk runs q (chunkSQL for c) with a; with a DeletionRecorder, in
// a transaction that also records the deleted seal positions.
func (r *Retention) deleteChunk(ctx context.Context, c audit.Cleanup, q string, a []any, scanned, deleted *int64, at *sql.NullTime, id, tenant *sql.NullString) error {
	if r.deletions == nil {
		var ignore1, ignore2 any
		return r.db.DB.QueryRowContext(ctx, q, a...).Scan(scanned, deleted, at, id, tenant, &ignore1, &ignore2)
	}
	tx, err := r.db.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	var batchIDs []int64
	var leafIdx []int32
	m := pgtype.NewMap()
	if err := tx.QueryRowContext(ctx, q, a...).Scan(scanned, deleted, at, id, tenant, m.SQLScanner(&batchIDs), m.SQLScanner(&leafIdx)); err != nil {
		return err
	}
	if err := r.deletions.Record(ctx, tx, c, batchIDs, leafIdx); err != nil {
		return err
	}
	return tx.Commit()
}

// CountExpired returns how many rows DeleteExpired would delete now.
func (r *Retention) CountExpired(ctx context.Context, c audit.Cleanup) (int64, error) {
	var n int64
	held, err := r.args(ctx, c)
	if err != nil {
		return 0, err
	}
	q, extra := r.forCleanup(countStatement, c)
	a := append(held, extra...)
	if err := r.db.DB.QueryRowContext(ctx, q, a...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events before %s: %w", c.Cutoff.Format(time.RFC3339), err)
	}
	return n, nil
}
