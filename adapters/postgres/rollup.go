package postgres

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

// Report rollups keep reports fast without ever letting them disagree
// with the rows (see Roller):
//
//   - Every transaction that inserts rows (Write) or deletes them
//     (Retention) appends one row per UTC hour it changed to
//     audit_hour_changes. An insert locks no existing row, so two flushes
//     of one hour never wait on each other.
//   - audit_hours has a version per UTC hour and the version its rollup
//     rows were computed at (rolled_version). An hour is fresh in a
//     snapshot when version = rolled_version and the snapshot sees no
//     change row of the hour.
//   - The Roller first folds the change rows into audit_hours: in one
//     statement it deletes those it sees and bumps the version of their
//     hours (creating missing hours, stale), so the hours stay stale by
//     version. It then recomputes each stale hour's rollup rows after
//     locking its audit_hours row (the fold and a roll of one hour
//     serialize there) and stores the version it saw as rolled_version, in
//     the same transaction. A writer that commits after the fold's delete
//     left its change row, so its hour is stale until the next fold and
//     roll, whether or not the roll counted its rows.
//   - From fresh hours the Roller also rolls up whole UTC days and months
//     (spans, audit_spans), recording the sum of their hours' versions.
//     Versions only grow, and only folds (and bumps from around auditq)
//     change them, so a span is fresh while that sum is unchanged and no
//     change row lies in it.
//   - ReportCounts reads, in one snapshot, fresh spans and fresh hours
//     from the rollups and every other instant of the period (stale and
//     recent hours, edges of zones with other offsets) from audit_logs.
//   - Rollup rows count one tenant each; versions are per hour, for every
//     tenant together. TenantReportCounts reads the same fresh spans and
//     hours, and raw instants, confined to the tenant's rows, and the
//     report over every tenant sums all of them.

// markHoursSQL records hours as changed. It takes no lock another writer
// waits for.
const markHoursSQL = `INSERT INTO audit_hour_changes (hour) SELECT unnest($1::timestamptz[])`

// foldChangesSQL deletes the change rows the statement sees and bumps the
// version of their hours in the same statement, in hour order, noting
// when (changed_at).
const foldChangesSQL = `WITH changed AS (DELETE FROM audit_hour_changes RETURNING hour)
INSERT INTO audit_hours (hour) SELECT DISTINCT hour FROM changed ORDER BY 1
ON CONFLICT (hour) DO UPDATE SET version = audit_hours.version + 1, changed_at = now()`

// hourOf returns the UTC hour holding t.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// markHours records, within tx, every distinct UTC hour of events[i] for i
// in inserted as changed (markHoursSQL); it does nothing when inserted is
// empty.
func markHours(ctx context.Context, tx pgx.Tx, events []audit.Event, inserted []int) error {
	if len(inserted) == 0 {
		return nil
	}
	hours := make([]time.Time, 0, 2)
	for _, i := range inserted {
		h := hourOf(events[i].OccurredAt)
		if n := len(hours); n == 0 || !hours[n-1].Equal(h) { // batches are mostly one hour
			hours = append(hours, h)
		}
	}
	slices.SortFunc(hours, func(a, b time.Time) int { return a.Compare(b) })
	hours = slices.CompactFunc(hours, time.Time.Equal)
	if _, err := tx.Exec(ctx, markHoursSQL, hours); err != nil {
		return fmt.Errorf("mark %d hours changed: %w", len(hours), err)
	}
	return nil
}

// DefaultRollupLag is how far before the current hour the Roller stops by
// default for hours that keep changing: the current and the previous hour
// are still being written to and are read raw.
const DefaultRollupLag = time.Hour

// DefaultRollupQuiet is how long an hour within the lag must go unchanged
// before the Roller rolls it by default.
const DefaultRollupQuiet = 30 * time.Second

// DefaultRollupBatch is how many stale hours (and as many days, and
// months) one Roll brings up to date by default.
const DefaultRollupBatch = 100

// rollupLockKey is the pg_try_advisory_lock key that keeps two instances
// from rolling at the same time ("rollup" in ASCII).
const rollupLockKey = 0x726f6c6c7570

// Roller brings the report rollups up to date: it folds the change rows
// of writes and cleanups into the hours' versions, rolls the hours whose
// version differs from the version their rollup rows were computed at,
// then the UTC days and months whose hours are all fresh but changed
// since the span was rolled. Reports read
// whatever is not fresh raw, so rolling is never needed for a report to
// be exact, only for it to be fast.
type Roller struct {
	db    *bun.DB
	lag   time.Duration
	quiet time.Duration
	batch int
}

// RollerConfig configures a Roller.
type RollerConfig struct {
	// Lag: hours (and spans) ending after the current UTC hour minus Lag
	// are left to be read raw while they change. Zero rolls everything
	// before the current hour; the service uses DefaultRollupLag.
	Lag time.Duration
	// Quiet: an hour within the lag (the current hour included) is
	// rolled once no fold has changed it for this long, so that reports
	// after a burst of writes read its rollup; zero means
	// DefaultRollupQuiet.
	Quiet time.Duration
	// Batch is how many hours, days and months one Roll brings up to date
	// at most; zero means DefaultRollupBatch.
	Batch int
}

func (c *RollerConfig) setDefaults() {
	if c.Batch == 0 {
		c.Batch = DefaultRollupBatch
	}
	if c.Quiet == 0 {
		c.Quiet = DefaultRollupQuiet
	}
}

// Validate returns an error naming a negative setting.
func (c RollerConfig) Validate() error {
	if c.Lag < 0 || c.Quiet < 0 || c.Batch < 0 {
		return fmt.Errorf("postgres: RollerConfig: Lag (%s), Quiet (%s) and Batch (%d) must not be negative", c.Lag, c.Quiet, c.Batch)
	}
	return nil
}

// NewRoller returns a Roller over db, or cfg's validation error.
func NewRoller(db *bun.DB, cfg RollerConfig) (*Roller, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Roller{db: db, lag: cfg.Lag, quiet: cfg.Quiet, batch: cfg.Batch}, nil
}

// Rolled counts what one Roll brought up to date.
type Rolled struct {
	Hours, Days, Months int
	// More is set when a batch limit was reached: more may be stale.
	More bool
}

func (r Rolled) add(o Rolled) Rolled {
	return Rolled{Hours: r.Hours + o.Hours, Days: r.Days + o.Days, Months: r.Months + o.Months, More: o.More}
}

// staleHoursSQL picks the stale hours to roll, newest first (the hours
// recent reports read): those older than the lag ($1, in microseconds),
// and younger ones, the current hour included, that no fold has changed
// for the quiet time ($3, in microseconds). An hour that keeps changing
// would be stale again at once, its roll wasted.
const staleHoursSQL = `SELECT hour FROM audit_hours
WHERE version <> rolled_version AND (hour < date_trunc('hour', now(), 'UTC') - $1::bigint * interval '1 microsecond'
	OR changed_at < now() - $3::bigint * interval '1 microsecond')
ORDER BY hour DESC LIMIT $2`

// rollHourSQL recomputes one hour's rollup rows from audit_logs in one
// statement, so from one snapshot: one scan, three aggregates, each per
// tenant.
const rollHourSQL = `WITH hour_rows AS MATERIALIZED (
	SELECT tenant, action, user_id, resource_type, success FROM audit_logs
	WHERE occurred_at >= $1::timestamptz AND occurred_at < $1::timestamptz + interval '1 hour'
), a AS (
	INSERT INTO audit_rollup_actions (hour, tenant, action, n, failed)
	SELECT $1, tenant, action, count(*), count(*) FILTER (WHERE NOT success) FROM hour_rows GROUP BY tenant, action
), u AS (
	INSERT INTO audit_rollup_users (hour, tenant, user_id, n)
	SELECT $1, tenant, user_id, count(*) FROM hour_rows WHERE user_id IS NOT NULL GROUP BY tenant, user_id
)
INSERT INTO audit_rollup_resources (hour, tenant, resource_type, n)
SELECT $1, tenant, resource_type, count(*) FROM hour_rows GROUP BY tenant, resource_type`

// spanLevel is a span size: UTC days or UTC months.
type spanLevel struct {
	unit     string // date_trunc unit
	interval string // its length, added in UTC
}

var spanLevels = []spanLevel{{"day", "1 day"}, {"month", "1 month"}}

// staleSpansSQL picks, for a level (%[1]s unit, %[2]s interval), the spans
// ending before the cutoff whose hours are all fresh and whose versions
// changed since the span was rolled (or that were never rolled), newest
// first. Month and day arithmetic is done in UTC, whatever the session's
// time zone. $1 is the lag in microseconds.
const staleSpansSQL = `WITH b AS (
	SELECT date_trunc('%[1]s', hour, 'UTC') AS starts_at, sum(version) AS sig,
		bool_and(version = rolled_version) AS fresh
	FROM audit_hours GROUP BY 1
), e AS (
	SELECT starts_at, ((starts_at AT TIME ZONE 'UTC') + interval '%[2]s') AT TIME ZONE 'UTC' AS ends_at, sig, fresh FROM b
)
SELECT e.starts_at, e.ends_at FROM e
LEFT JOIN audit_spans s ON s.starts_at = e.starts_at AND s.ends_at = e.ends_at
WHERE e.fresh AND e.ends_at <= date_trunc('hour', now(), 'UTC') - $1::bigint * interval '1 microsecond'
	AND s.hours_version IS DISTINCT FROM e.sig
ORDER BY e.starts_at DESC LIMIT $2`

// rollSpanSQL recomputes a span's rollup rows ($1 its id) from the hourly
// rollups of [$2, $3), per tenant.
var rollSpanSQL = []string{
	`DELETE FROM audit_span_actions WHERE span_id = $1`,
	`DELETE FROM audit_span_users WHERE span_id = $1`,
	`DELETE FROM audit_span_resources WHERE span_id = $1`,
	`INSERT INTO audit_span_actions (span_id, tenant, action, n, failed)
	SELECT $1::bigint, tenant, action, sum(n), sum(failed) FROM audit_rollup_actions WHERE hour >= $2 AND hour < $3 GROUP BY tenant, action`,
	`INSERT INTO audit_span_users (span_id, tenant, user_id, n)
	SELECT $1::bigint, tenant, user_id, sum(n) FROM audit_rollup_users WHERE hour >= $2 AND hour < $3 GROUP BY tenant, user_id`,
	`INSERT INTO audit_span_resources (span_id, tenant, resource_type, n)
	SELECT $1::bigint, tenant, resource_type, sum(n) FROM audit_rollup_resources WHERE hour >= $2 AND hour < $3 GROUP BY tenant, resource_type`,
}

// Roll brings up to the Roller's batch of stale hours up to date, each in
// its own transaction, then as many stale days and months. It returns at
// once, with nothing rolled, when another session (another instance) is
// rolling. What it rolled before an error stays rolled.
func (r *Roller) Roll(ctx context.Context) (Rolled, error) {
	var done Rolled
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return done, fmt.Errorf("roll up reports: %w", err)
	}
	defer func() { _ = conn.Close() }()
	err = conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		var locked bool
		if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(rollupLockKey)).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			return nil
		}
		defer c.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(rollupLockKey)) //nolint:errcheck // released with the session anyway
		if _, err := c.Exec(ctx, foldChangesSQL); err != nil {
			return fmt.Errorf("fold hour changes: %w", err)
		}
		rows, err := c.Query(ctx, staleHoursSQL, r.lag.Microseconds(), r.batch, r.quiet.Microseconds())
		if err != nil {
			return err
		}
		hours, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return err
		}
		done.More = len(hours) == r.batch
		for _, h := range hours {
			if err := rollHour(ctx, c, h); err != nil {
				return fmt.Errorf("hour %s: %w", h.UTC().Format(time.RFC3339), err)
			}
			done.Hours++
		}
		for i, l := range spanLevels {
			rows, err := c.Query(ctx, fmt.Sprintf(staleSpansSQL, l.unit, l.interval), r.lag.Microseconds(), r.batch)
			if err != nil {
				return err
			}
			spans, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (span, error) {
				var s span
				err := row.Scan(&s.from, &s.to)
				return s, err
			})
			if err != nil {
				return err
			}
			done.More = done.More || len(spans) == r.batch
			for _, s := range spans {
				rolled, err := rollSpan(ctx, c, s)
				if err != nil {
					return fmt.Errorf("%s %s: %w", l.unit, s.from.UTC().Format(time.RFC3339), err)
				}
				if rolled && i == 0 {
					done.Days++
				} else if rolled {
					done.Months++
				}
			}
		}
		return nil
	})
	if err != nil {
		return done, fmt.Errorf("roll up reports: %w", err)
	}
	return done, nil
}

// rollHour recomputes hour's rollup rows in one READ COMMITTED
// transaction. The FOR UPDATE waits for a fold (or a bump from around
// auditq) of the hour in flight; a later fold waits for this transaction
// and bumps the version past the one recorded here. Writers take no lock
// here: one that commits after the last fold left a change row, which
// keeps the hour stale whatever this transaction counted.
func rollHour(ctx context.Context, c *pgx.Conn, hour time.Time) error {
	return pgx.BeginTxFunc(ctx, c, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		var version int64
		if err := tx.QueryRow(ctx, `SELECT version FROM audit_hours WHERE hour = $1 FOR UPDATE`, hour).Scan(&version); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM audit_rollup_actions WHERE hour = $1`, hour)
		b.Queue(`DELETE FROM audit_rollup_users WHERE hour = $1`, hour)
		b.Queue(`DELETE FROM audit_rollup_resources WHERE hour = $1`, hour)
		b.Queue(rollHourSQL, hour)
		b.Queue(`UPDATE audit_hours SET rolled_version = $2 WHERE hour = $1`, hour, version)
		return tx.SendBatch(ctx, b).Close()
	})
}

// rollSpan recomputes a span's rollup rows from the hourly ones in one
// REPEATABLE READ transaction, so from one snapshot: the hours' versions
// it records are those of the hourly rows it sums. It rolls nothing, and
// returns false, when an hour of the span is not fresh (any more): not
// rolled at its version, or with a change row.
func rollSpan(ctx context.Context, c *pgx.Conn, s span) (bool, error) {
	rolled := false
	err := pgx.BeginTxFunc(ctx, c, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var sig int64
		var fresh bool
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(version), 0), coalesce(bool_and(version = rolled_version), true)
			AND NOT EXISTS (SELECT 1 FROM audit_hour_changes c WHERE c.hour >= $1 AND c.hour < $2)
			FROM audit_hours WHERE hour >= $1 AND hour < $2`, s.from, s.to).Scan(&sig, &fresh); err != nil {
			return err
		}
		if !fresh {
			return nil
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO audit_spans (starts_at, ends_at, hours_version) VALUES ($1, $2, $3)
			ON CONFLICT (starts_at, ends_at) DO UPDATE SET hours_version = EXCLUDED.hours_version RETURNING id`,
			s.from, s.to, sig).Scan(&id); err != nil {
			return err
		}
		b := &pgx.Batch{}
		for i, q := range rollSpanSQL {
			if i < 3 {
				b.Queue(q, id)
			} else {
				b.Queue(q, id, s.from, s.to)
			}
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		rolled = true
		return nil
	})
	return rolled, err
}

// RollAll calls Roll until nothing old enough is stale, ctx ends or a
// Roll fails, and returns what it rolled.
func (r *Roller) RollAll(ctx context.Context) (Rolled, error) {
	var total Rolled
	for {
		n, err := r.Roll(ctx)
		total = total.add(n)
		if err != nil || !n.More {
			total.More = false
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// Start rolls every interval (and once at once) until the returned stop
// function is called, which waits for a Roll in progress to end (it
// cancels it; what was rolled stays rolled). Failures are logged and
// retried at the next turn.
func (r *Roller) Start(interval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			start := time.Now()
			n, err := r.RollAll(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				log.Warn("rolling up reports failed; retried at the next turn", "err", err,
					"hours", n.Hours, "days", n.Days, "months", n.Months)
			case n != Rolled{}:
				log.Debug("rolled up reports", "hours", n.Hours, "days", n.Days, "months", n.Months,
					"took", time.Since(start).Round(time.Millisecond))
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// reportCountsSQL reads every figure of a report in one statement: the
// rollup rows of the fresh spans (%[3]s: a condition on span_id) and fresh
// hours (%[1]s: on hour), plus one scan of the rest of the period in
// audit_logs (%[2]s: on occurred_at, served by the (occurred_at, id)
// index), grouped three ways. A fresh hour may stick out of the period at
// its start or end; the scan then also reads the rows of the hour outside
// the period and counts them negatively (%[5]s and %[6]s, the count and
// the failed count; see reportCountsQuery), and figures that come to zero
// are left out. Every action is kept (the breakdown); users
// (without NULL, the system) and resource types are cut to the top %[4]d,
// count descending, then name in byte order (COLLATE "C", the order Go
// sorts in) so ties are deterministic.
const reportCountsSQL = `
WITH raw AS MATERIALIZED (
	SELECT GROUPING(action, user_id, resource_type) AS g, action, user_id, resource_type,
		%[5]s AS n, %[6]s AS failed
	FROM audit_logs
	WHERE %[2]s
	GROUP BY GROUPING SETS ((action), (user_id), (resource_type))
), actions AS (
	SELECT action, sum(n)::bigint AS n, sum(failed)::bigint AS failed FROM (
		SELECT action, n, failed FROM raw WHERE g = 3
		UNION ALL
		SELECT action, n, failed FROM audit_rollup_actions WHERE %[1]s
		UNION ALL
		SELECT action, n, failed FROM audit_span_actions WHERE %[3]s
	) a GROUP BY action HAVING sum(n) > 0
), users AS (
	SELECT user_id, sum(n)::bigint AS n FROM (
		SELECT user_id, n FROM raw WHERE g = 5 AND user_id IS NOT NULL
		UNION ALL
		SELECT user_id, n FROM audit_rollup_users WHERE %[1]s
		UNION ALL
		SELECT user_id, n FROM audit_span_users WHERE %[3]s
	) u GROUP BY user_id HAVING sum(n) > 0
	ORDER BY n DESC, user_id COLLATE "C" LIMIT %[4]d
), resources AS (
	SELECT resource_type, sum(n)::bigint AS n FROM (
		SELECT resource_type, n FROM raw WHERE g = 6
		UNION ALL
		SELECT resource_type, n FROM audit_rollup_resources WHERE %[1]s
		UNION ALL
		SELECT resource_type, n FROM audit_span_resources WHERE %[3]s
	) r GROUP BY resource_type HAVING sum(n) > 0
	ORDER BY n DESC, resource_type COLLATE "C" LIMIT %[4]d
)
SELECT 3 AS g, action, NULL AS user_id, NULL AS resource_type, n, failed FROM actions
UNION ALL SELECT 5, NULL, user_id, NULL, n, 0 FROM users
UNION ALL SELECT 6, NULL, NULL, resource_type, n, 0 FROM resources`

// freshSpan is true for a fresh span s of audit_spans: its hours' versions
// still add up to what they were when it was rolled, and none of its hours
// has a change row.
const freshSpan = `s.hours_version = (SELECT coalesce(sum(h.version), 0) FROM audit_hours h
	WHERE h.hour >= s.starts_at AND h.hour < s.ends_at)
	AND NOT EXISTS (SELECT 1 FROM audit_hour_changes c WHERE c.hour >= s.starts_at AND c.hour < s.ends_at)`

// freshSpansSQL lists the fresh spans lying wholly inside [?, ?].
const freshSpansSQL = `SELECT s.id, s.starts_at, s.ends_at FROM audit_spans s
WHERE s.starts_at >= ? AND s.ends_at <= ? AND ` + freshSpan + `
ORDER BY s.ends_at - s.starts_at DESC, s.starts_at`

// freshHoursSQL lists the fresh hours (rollups up to date, no change row)
// that overlap (?, ?), the first bound being the period's start minus an
// hour, the second its end.
const freshHoursSQL = `SELECT hour FROM audit_hours h
WHERE hour > ? AND hour < ? AND ` + freshHour + ` ORDER BY hour`

// freshHour is true for a fresh hour h of audit_hours.
const freshHour = `h.version = h.rolled_version AND NOT EXISTS (SELECT 1 FROM audit_hour_changes c WHERE c.hour = h.hour)`

// spanRow is a fresh span as read by a report.
type spanRow struct {
	ID       int64     `bun:"id"`
	StartsAt time.Time `bun:"starts_at"`
	EndsAt   time.Time `bun:"ends_at"`
}

// reportCountsQuery returns the statement reading the figures of [start,
// end) (reportCountsSQL) within tx, whose snapshot must also be the one
// the statement runs in: the fresh spans and hours it reads from the
// rollups are those of that snapshot. With a tenant, every part (rollup
// rows and raw rows) is confined to that tenant's.
func reportCountsQuery(ctx context.Context, tx bun.Tx, start, end time.Time, tenant *string) (string, error) {
	var spans []spanRow
	if err := tx.NewRaw(freshSpansSQL, start, end).Scan(ctx, &spans); err != nil {
		return "", fmt.Errorf("fresh spans: %w", err)
	}
	var hours []time.Time
	if err := tx.NewRaw(freshHoursSQL, start.Add(-time.Hour), end).Scan(ctx, &hours); err != nil {
		return "", fmt.Errorf("fresh hours: %w", err)
	}
	hours, from, to, outside := edgeHours(start, end, time.Now(), hours)
	ids, covered := pickSpans(spans)
	_, rolled, raw := splitPeriod(from, to, covered, hours)
	spanPred := "false"
	if len(ids) > 0 {
		var b strings.Builder
		b.WriteString("span_id IN (")
		for i, id := range ids {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.FormatInt(id, 10))
		}
		b.WriteString(")")
		spanPred = b.String()
	}
	hourPred, rawPred, outPred := rangePredicate("hour", rolled), rangePredicate("occurred_at", raw), rangePredicate("occurred_at", outside)
	if tenant != nil {
		hourPred, rawPred, spanPred, outPred = ofTenant(*tenant, hourPred), ofTenant(*tenant, rawPred), ofTenant(*tenant, spanPred), ofTenant(*tenant, outPred)
	}
	n, failed := "count(*)", "count(*) FILTER (WHERE NOT success)"
	if outPred != "false" {
		out := "(" + outPred + ")"
		rawPred = "(" + rawPred + ") OR " + out
		n = "count(*) FILTER (WHERE NOT " + out + ") - count(*) FILTER (WHERE " + out + ")"
		failed = "count(*) FILTER (WHERE NOT success AND NOT " + out + ") - count(*) FILTER (WHERE NOT success AND " + out + ")"
	}
	return fmt.Sprintf(reportCountsSQL, hourPred, rawPred, spanPred, audit.TopN, n, failed), nil
}

// edgeHours sorts the fresh hours overlapping [start, end) (sorted) into
// those the period's figures take from the rollups: every hour wholly
// inside, and an hour holding start or end (not on an hour) whose rows
// outside the period are likely fewer than those inside: outside, before
// start or after end up to now (rows dated later than now are rare), is
// the shorter part. It returns those hours, the period widened to them
// (from, to), and the parts of the edge hours outside [start, end), whose
// rows are counted negatively.
func edgeHours(start, end, now time.Time, fresh []time.Time) (hours []time.Time, from, to time.Time, outside []span) {
	from, to = start, end
	for _, h := range fresh {
		hEnd := h.Add(time.Hour)
		switch {
		case !h.Before(start) && !hEnd.After(end):
			hours = append(hours, h)
		case h.Before(start) && !hEnd.After(end):
			// start lies inside h: [h, start) is outside.
			if start.Sub(h) < hEnd.Sub(start) {
				hours, from = append(hours, h), h
				outside = append(outside, span{h, start})
			}
		case !h.Before(start) && hEnd.After(end):
			// end lies inside h: [end, hEnd) is outside, and of it
			// only what lies before now likely holds rows.
			likely := hEnd
			if now.Before(likely) {
				likely = now
			}
			if likely.Sub(end) < end.Sub(h) {
				hours, to = append(hours, h), hEnd
				outside = append(outside, span{end, hEnd})
			}
		}
	}
	return hours, from, to, outside
}

// ofTenant confines the condition pred to the rows of tenant ("false"
// stays "false").
func ofTenant(tenant, pred string) string {
	if pred == "false" {
		return pred
	}
	return "tenant = " + quoteText(tenant) + " AND (" + pred + ")"
}

// span is the half-open time range [from, to).
type span struct{ from, to time.Time }

// pickSpans chooses non-overlapping spans among fresh ones, longest first
// (a month rather than its days), and returns their ids and ranges sorted
// by start.
func pickSpans(fresh []spanRow) (ids []int64, picked []span) {
	sorted := slices.Clone(fresh)
	slices.SortStableFunc(sorted, func(a, b spanRow) int {
		return cmp.Compare(b.EndsAt.Sub(b.StartsAt), a.EndsAt.Sub(a.StartsAt))
	})
	for _, s := range sorted {
		overlaps := slices.ContainsFunc(picked, func(p span) bool { return s.StartsAt.Before(p.to) && p.from.Before(s.EndsAt) })
		if !overlaps {
			picked = append(picked, span{s.StartsAt, s.EndsAt})
			ids = append(ids, s.ID)
		}
	}
	slices.SortFunc(picked, func(a, b span) int { return a.from.Compare(b.from) })
	slices.Sort(ids)
	return ids, picked
}

// splitPeriod splits [start, end) into the parts the spans cover (spans:
// sorted, disjoint, inside), the hours outside them cover (fresh: sorted,
// distinct, each wholly inside), and the rest, each merged into as few
// ranges as possible.
func splitPeriod(start, end time.Time, spans []span, fresh []time.Time) (spanned, rolled, raw []span) {
	// Every covered piece in time order: spans and the hours outside them.
	type piece struct {
		span
		hour bool
	}
	var pieces []piece
	si := 0
	for _, h := range fresh {
		for si < len(spans) && !spans[si].to.After(h) {
			pieces = append(pieces, piece{spans[si], false})
			si++
		}
		if si < len(spans) && !h.Before(spans[si].from) {
			continue // inside spans[si]
		}
		pieces = append(pieces, piece{span{h, h.Add(time.Hour)}, true})
	}
	for ; si < len(spans); si++ {
		pieces = append(pieces, piece{spans[si], false})
	}
	merge := func(out []span, s span) []span {
		if n := len(out); n > 0 && out[n-1].to.Equal(s.from) {
			out[n-1].to = s.to
			return out
		}
		return append(out, s)
	}
	at := start
	for _, p := range pieces {
		if p.from.After(at) {
			raw = merge(raw, span{at, p.from})
		}
		if p.hour {
			rolled = merge(rolled, p.span)
		} else {
			spanned = merge(spanned, p.span)
		}
		at = p.to
	}
	if at.Before(end) {
		raw = merge(raw, span{at, end})
	}
	return spanned, rolled, raw
}

// rangePredicate returns the SQL condition "col lies in one of spans"
// ("false" for none), with the bounds as timestamptz literals.
func rangePredicate(col string, spans []span) string {
	if len(spans) == 0 {
		return "false"
	}
	var b strings.Builder
	for i, s := range spans {
		if i > 0 {
			b.WriteString(" OR ")
		}
		fmt.Fprintf(&b, "(%[1]s >= %[2]s AND %[1]s < %[3]s)", col, literal(s.from), literal(s.to))
	}
	return b.String()
}

// literal renders t as a timestamptz SQL literal, to the microsecond.
func literal(t time.Time) string {
	return "'" + t.UTC().Format("2006-01-02 15:04:05.999999") + "+00'::timestamptz"
}
