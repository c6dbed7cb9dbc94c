package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Checking the report rollups ("auditq verify --reports"). The rows are
// sealed; the rollups are derived from them and are not, so a role that can
// write them could skew report figures without touching a row. What a
// report reads from the rollups is what this check recomputes, from the
// same snapshot as the rest of the verification:
//
//   - every current hour (version = rolled_version, no change row) against
//     its rows in audit_logs;
//   - every current span (hours_version = the sum of its hours' versions)
//     against the sum of its hours' rollups, and that each of its hours
//     is current, so spans agree with the rows through their hours.
//
// Stale hours and spans are read raw by reports and need no check.
//
// Comparing every figure directly would sort the whole table three ways
// (by hour and action, user, resource type), which is slow on a large
// table. Instead one pass compares a signature per hour and per span: the
// counts, and per dimension the sum of a 31-bit hash of the tenant and the
// key (so a figure moved to another tenant changes it too) over the
// events (over the rows; over n times the key's hash for the rollups; 31
// bits keep the products in bigint, which sums fast). The hash is seeded
// with a number drawn at random for each check, so figures changed
// beforehand cannot have been chosen to keep the sums: a changed figure
// goes unnoticed only if hashes collide. Only hours and spans whose
// signatures differ are then compared figure by figure, to name what
// differs.

// rollupSigsSQL lists the current hours, then the current spans, whose
// signatures differ: kind 'hour' with the hour, kind 'span' with the
// span's id. $1 is the hash seed, $2 the limit per kind.
const rollupSigsSQL = `WITH fresh AS MATERIALIZED (
	SELECT hour FROM audit_hours h WHERE ` + freshHour + `
), raw AS (
	SELECT date_trunc('hour', occurred_at, 'UTC') AS hour, count(*)::numeric AS n,
		count(*) FILTER (WHERE NOT success)::numeric AS failed,
		coalesce(sum(hashtextextended(tenant || '/' || action, $1) & 2147483647), 0) AS sa,
		coalesce(sum(hashtextextended(tenant || '/' || action, $1) & 2147483647) FILTER (WHERE NOT success), 0) AS sfa,
		count(user_id)::numeric AS nu, coalesce(sum(hashtextextended(tenant || '/' || user_id, $1) & 2147483647), 0) AS su,
		coalesce(sum(hashtextextended(tenant || '/' || resource_type, $1) & 2147483647), 0) AS sr
	FROM audit_logs GROUP BY 1
), acts AS (
	SELECT hour, sum(n) AS n, sum(failed) AS failed, sum((hashtextextended(tenant || '/' || action, $1) & 2147483647) * n) AS sa,
		sum((hashtextextended(tenant || '/' || action, $1) & 2147483647) * failed) AS sfa
	FROM audit_rollup_actions GROUP BY hour
), usrs AS (
	SELECT hour, sum(n) AS nu, sum((hashtextextended(tenant || '/' || user_id, $1) & 2147483647) * n) AS su FROM audit_rollup_users GROUP BY hour
), ress AS (
	SELECT hour, sum(n) AS nr, sum((hashtextextended(tenant || '/' || resource_type, $1) & 2147483647) * n) AS sr FROM audit_rollup_resources GROUP BY hour
), rolled AS MATERIALIZED (
	SELECT coalesce(a.hour, u.hour, r.hour) AS hour,
		coalesce(a.n, 0) AS n, coalesce(a.failed, 0) AS failed, coalesce(a.sa, 0) AS sa, coalesce(a.sfa, 0) AS sfa,
		coalesce(u.nu, 0) AS nu, coalesce(u.su, 0) AS su, coalesce(r.nr, 0) AS nr, coalesce(r.sr, 0) AS sr
	FROM acts a FULL JOIN usrs u ON u.hour = a.hour FULL JOIN ress r ON r.hour = coalesce(a.hour, u.hour)
), fspans AS MATERIALIZED (
	SELECT s.id, s.starts_at, s.ends_at FROM audit_spans s WHERE ` + freshSpan + `
), from_hours AS (
	SELECT f.id, sum(h.n) AS n, sum(h.failed) AS failed, sum(h.sa) AS sa, sum(h.sfa) AS sfa,
		sum(h.nu) AS nu, sum(h.su) AS su, sum(h.nr) AS nr, sum(h.sr) AS sr
	FROM fspans f JOIN rolled h ON h.hour >= f.starts_at AND h.hour < f.ends_at GROUP BY f.id
), sacts AS (
	SELECT span_id, sum(n) AS n, sum(failed) AS failed, sum((hashtextextended(tenant || '/' || action, $1) & 2147483647) * n) AS sa,
		sum((hashtextextended(tenant || '/' || action, $1) & 2147483647) * failed) AS sfa
	FROM audit_span_actions WHERE span_id IN (SELECT id FROM fspans) GROUP BY span_id
), susrs AS (
	SELECT span_id, sum(n) AS nu, sum((hashtextextended(tenant || '/' || user_id, $1) & 2147483647) * n) AS su
	FROM audit_span_users WHERE span_id IN (SELECT id FROM fspans) GROUP BY span_id
), sress AS (
	SELECT span_id, sum(n) AS nr, sum((hashtextextended(tenant || '/' || resource_type, $1) & 2147483647) * n) AS sr
	FROM audit_span_resources WHERE span_id IN (SELECT id FROM fspans) GROUP BY span_id
), bad_hours AS (
	SELECT 'hour' AS kind, coalesce(w.hour, r.hour) AS hour, 0::bigint AS id
	FROM raw w FULL JOIN rolled r ON r.hour = w.hour
	WHERE coalesce(w.hour, r.hour) IN (SELECT hour FROM fresh)
		AND (coalesce(w.n, 0), coalesce(w.failed, 0), coalesce(w.sa, 0), coalesce(w.sfa, 0),
			coalesce(w.nu, 0), coalesce(w.su, 0), coalesce(w.n, 0), coalesce(w.sr, 0))
		IS DISTINCT FROM (coalesce(r.n, 0), coalesce(r.failed, 0), coalesce(r.sa, 0), coalesce(r.sfa, 0),
			coalesce(r.nu, 0), coalesce(r.su, 0), coalesce(r.nr, 0), coalesce(r.sr, 0))
	ORDER BY 2 LIMIT $2
), bad_spans AS (
	SELECT 'span' AS kind, f.starts_at AS hour, f.id FROM fspans f
	LEFT JOIN from_hours h ON h.id = f.id LEFT JOIN sacts a ON a.span_id = f.id
	LEFT JOIN susrs u ON u.span_id = f.id LEFT JOIN sress r ON r.span_id = f.id
	WHERE (coalesce(h.n, 0), coalesce(h.failed, 0), coalesce(h.sa, 0), coalesce(h.sfa, 0),
			coalesce(h.nu, 0), coalesce(h.su, 0), coalesce(h.nr, 0), coalesce(h.sr, 0))
		IS DISTINCT FROM (coalesce(a.n, 0), coalesce(a.failed, 0), coalesce(a.sa, 0), coalesce(a.sfa, 0),
			coalesce(u.nu, 0), coalesce(u.su, 0), coalesce(r.nr, 0), coalesce(r.sr, 0))
	ORDER BY f.starts_at, f.ends_at LIMIT $2
)
SELECT kind, hour, id FROM bad_hours UNION ALL SELECT kind, hour, id FROM bad_spans`

// rollupHoursCheckSQL lists the figures of the hours $1 (current ones)
// that differ from their rows' (dimension 1 action, 2 user, 3 resource
// type, of a tenant; a missing figure counts as 0), at most $2 of them.
const rollupHoursCheckSQL = `WITH fresh AS MATERIALIZED (
	SELECT unnest($1::timestamptz[]) AS hour
), raw AS (
	SELECT CASE WHEN GROUPING(action) = 0 THEN 1 WHEN GROUPING(user_id) = 0 THEN 2 ELSE 3 END AS dim,
		h AS hour, tenant, coalesce(action, user_id, resource_type) AS key,
		count(*) AS n, count(*) FILTER (WHERE NOT success) AS failed
	FROM (SELECT f.hour AS h, tenant, action, user_id, resource_type, success FROM fresh f
		JOIN audit_logs l ON l.occurred_at >= f.hour AND l.occurred_at < f.hour + interval '1 hour') l
	GROUP BY GROUPING SETS ((h, tenant, action), (h, tenant, user_id), (h, tenant, resource_type))
	HAVING GROUPING(user_id) = 1 OR user_id IS NOT NULL
), rolled AS (
	SELECT 1 AS dim, hour, tenant, action AS key, n, failed FROM audit_rollup_actions WHERE hour IN (SELECT hour FROM fresh)
	UNION ALL SELECT 2, hour, tenant, user_id, n, 0 FROM audit_rollup_users WHERE hour IN (SELECT hour FROM fresh)
	UNION ALL SELECT 3, hour, tenant, resource_type, n, 0 FROM audit_rollup_resources WHERE hour IN (SELECT hour FROM fresh)
)
SELECT coalesce(r.dim, u.dim), coalesce(r.hour, u.hour), coalesce(r.tenant, u.tenant), coalesce(r.key, u.key),
	coalesce(u.n, 0), coalesce(u.failed, 0), coalesce(r.n, 0), coalesce(r.failed, 0)
FROM raw r FULL JOIN rolled u ON u.dim = r.dim AND u.hour = r.hour AND u.tenant = r.tenant AND u.key = r.key
WHERE r.n IS DISTINCT FROM u.n OR (coalesce(r.dim, u.dim) = 1 AND r.failed IS DISTINCT FROM u.failed)
ORDER BY 2, 1, 3, 4 LIMIT $2`

// rollupSpansCheckSQL lists the figures of the spans $1 (ids of current
// ones) that differ from the sum of their hours' rollups, at most $2.
const rollupSpansCheckSQL = `WITH fresh AS MATERIALIZED (
	SELECT id, starts_at, ends_at FROM audit_spans WHERE id = ANY($1::bigint[])
), sums AS (
	SELECT 1 AS dim, f.id, a.tenant, a.action AS key, sum(a.n)::bigint AS n, sum(a.failed)::bigint AS failed
	FROM fresh f JOIN audit_rollup_actions a ON a.hour >= f.starts_at AND a.hour < f.ends_at GROUP BY f.id, a.tenant, a.action
	UNION ALL SELECT 2, f.id, u.tenant, u.user_id, sum(u.n)::bigint, 0
	FROM fresh f JOIN audit_rollup_users u ON u.hour >= f.starts_at AND u.hour < f.ends_at GROUP BY f.id, u.tenant, u.user_id
	UNION ALL SELECT 3, f.id, r.tenant, r.resource_type, sum(r.n)::bigint, 0
	FROM fresh f JOIN audit_rollup_resources r ON r.hour >= f.starts_at AND r.hour < f.ends_at GROUP BY f.id, r.tenant, r.resource_type
), rolled AS (
	SELECT 1 AS dim, span_id AS id, tenant, action AS key, n, failed FROM audit_span_actions WHERE span_id IN (SELECT id FROM fresh)
	UNION ALL SELECT 2, span_id, tenant, user_id, n, 0 FROM audit_span_users WHERE span_id IN (SELECT id FROM fresh)
	UNION ALL SELECT 3, span_id, tenant, resource_type, n, 0 FROM audit_span_resources WHERE span_id IN (SELECT id FROM fresh)
), diff AS (
	SELECT coalesce(s.dim, u.dim) AS dim, coalesce(s.id, u.id) AS id, coalesce(s.tenant, u.tenant) AS tenant,
		coalesce(s.key, u.key) AS key, coalesce(u.n, 0) AS rolled_n, coalesce(u.failed, 0) AS rolled_failed,
		coalesce(s.n, 0) AS n, coalesce(s.failed, 0) AS failed
	FROM sums s FULL JOIN rolled u ON u.dim = s.dim AND u.id = s.id AND u.tenant = s.tenant AND u.key = s.key
	WHERE s.n IS DISTINCT FROM u.n OR (coalesce(s.dim, u.dim) = 1 AND s.failed IS DISTINCT FROM u.failed)
)
SELECT f.id, f.starts_at, f.ends_at, d.dim, d.tenant, d.key, d.rolled_n, d.rolled_failed, d.n, d.failed
FROM diff d JOIN fresh f ON f.id = d.id
ORDER BY f.starts_at, f.ends_at, d.dim, d.tenant, d.key LIMIT $2`

// freshSpansCTE is the current spans, as reports pick them (freshSpansSQL).
const freshSpansCTE = `WITH fresh AS MATERIALIZED (
	SELECT s.id, s.starts_at, s.ends_at FROM audit_spans s WHERE ` + freshSpan + `
)`

// staleHoursInFreshSpansSQL lists current spans holding an hour that is not
// current: the span's sum still matches, so reports would read the span,
// but its hours' rollups are not known to match their rows. $1 is the
// limit.
const staleHoursInFreshSpansSQL = freshSpansCTE + `
SELECT f.starts_at, f.ends_at, h.hour FROM fresh f
JOIN audit_hours h ON h.hour >= f.starts_at AND h.hour < f.ends_at
WHERE NOT (` + freshHour + `)
ORDER BY f.starts_at, f.ends_at, h.hour LIMIT $1`

// rollupCheckLimit bounds the disagreements one check lists per kind.
const rollupCheckLimit = 100

var rollupDims = [...]string{1: "action", 2: "user", 3: "resource type"}

// CheckRollups compares what reports read from the rollups with the rows
// (see above) and calls mismatch for each disagreement found, at most a
// hundred per kind, naming the hour or span and the figure. It returns how
// many current hours and spans it checked.
func (s *EvidenceStore) CheckRollups(ctx context.Context, mismatch func(subject, reason string)) (hours, spans int64, err error) {
	fail := func(err error) (int64, int64, error) { return 0, 0, fmt.Errorf("check report rollups: %w", err) }
	if err := s.q.QueryRowContext(ctx, `SELECT count(*) FROM audit_hours h WHERE `+freshHour).Scan(&hours); err != nil {
		return fail(err)
	}
	if err := s.q.QueryRowContext(ctx, freshSpansCTE+` SELECT count(*) FROM fresh`).Scan(&spans); err != nil {
		return fail(err)
	}
	var badHours []time.Time
	var badSpans []int64
	err = s.each(ctx, rollupSigsSQL, []any{rand.Int64(), rollupCheckLimit}, func(rows *sql.Rows) error {
		var kind string
		var hour time.Time
		var id int64
		if err := rows.Scan(&kind, &hour, &id); err != nil {
			return err
		}
		if kind == "hour" {
			badHours = append(badHours, hour)
		} else {
			badSpans = append(badSpans, id)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	named := map[string]bool{} // hours and spans a figure was named for
	if len(badHours) > 0 {
		err = s.each(ctx, rollupHoursCheckSQL, []any{badHours, rollupCheckLimit}, func(rows *sql.Rows) error {
			var dim int
			var hour time.Time
			var tenant, key string
			var rolledN, rolledFailed, n, failed int64
			if err := rows.Scan(&dim, &hour, &tenant, &key, &rolledN, &rolledFailed, &n, &failed); err != nil {
				return err
			}
			named[hourName(hour)] = true
			mismatch(fmt.Sprintf("report rollup of %s, %s%s %q", hourName(hour), tenantName(tenant), rollupDims[dim], key),
				figures(dim, rolledN, rolledFailed, n, failed, "its rows hold"))
			return nil
		})
		if err != nil {
			return fail(err)
		}
	}
	if len(badSpans) > 0 {
		err = s.each(ctx, rollupSpansCheckSQL, []any{badSpans, rollupCheckLimit}, func(rows *sql.Rows) error {
			var id int64
			var from, to time.Time
			var dim int
			var tenant, key string
			var rolledN, rolledFailed, n, failed int64
			if err := rows.Scan(&id, &from, &to, &dim, &tenant, &key, &rolledN, &rolledFailed, &n, &failed); err != nil {
				return err
			}
			named[strconv.FormatInt(id, 10)] = true
			mismatch(fmt.Sprintf("report rollup of %s, %s%s %q", spanName(from, to), tenantName(tenant), rollupDims[dim], key),
				figures(dim, rolledN, rolledFailed, n, failed, "its hours add up to"))
			return nil
		})
		if err != nil {
			return fail(err)
		}
	}
	// A signature that differs with no figure named (the figure list was
	// cut at its limit) is reported all the same.
	for _, h := range badHours {
		if !named[hourName(h)] {
			mismatch("report rollup of "+hourName(h), "its figures do not add up to its rows")
		}
	}
	for _, id := range badSpans {
		if !named[strconv.FormatInt(id, 10)] {
			mismatch(fmt.Sprintf("report rollup of span %d", id), "its figures do not add up to its hours")
		}
	}
	err = s.each(ctx, staleHoursInFreshSpansSQL, []any{rollupCheckLimit}, func(rows *sql.Rows) error {
		var from, to, hour time.Time
		if err := rows.Scan(&from, &to, &hour); err != nil {
			return err
		}
		mismatch("report rollup of "+spanName(from, to),
			fmt.Sprintf("marked current, but its %s is not rolled up", hourName(hour)))
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return hours, spans, nil
}

// each runs q with args and calls fn per row.
func (s *EvidenceStore) each(ctx context.Context, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// tenantName names a named tenant in a mismatch ("tenant \"acme\", "),
// and the default one not at all.
func tenantName(t string) string {
	if t == "" {
		return ""
	}
	return fmt.Sprintf("tenant %q, ", t)
}

// hourName names an hour: "hour 2026-11-24T10:00:00Z".
func hourName(h time.Time) string { return "hour " + h.UTC().Format(time.RFC3339) }

// figures describes a disagreement: "rolled up 5 events (1 failed), its
// rows hold 4 (1 failed)"; failures are counted per action only.
func figures(dim int, rolledN, rolledFailed, n, failed int64, source string) string {
	if dim == 1 {
		return fmt.Sprintf("rolled up as %d events (%d failed), %s %d (%d failed)", rolledN, rolledFailed, source, n, failed)
	}
	return fmt.Sprintf("rolled up as %d events, %s %d", rolledN, source, n)
}

// spanName names a span: "day 2026-11-24" or "month 2026-11".
func spanName(from, to time.Time) string {
	from = from.UTC()
	if to.Sub(from) <= 24*time.Hour {
		return "day " + from.Format(time.DateOnly)
	}
	return "month " + from.Format("2006-01")
}
