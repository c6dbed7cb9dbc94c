package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/auditq/auditq/domain/audit"
)

// ExportPage returns up to f.Limit events matching f, newest first by
// (occurred_at, id, tenant) descending, strictly after f.After: the events
// Search returns, read for an export. It always walks an index in that
// order (sorting is switched off for its one short read-only transaction;
// the incremental sort of the read ordered by tenant that a page over
// every tenant ending among events of one (occurred_at, id) needs, see
// newestFirst, is not a full sort and stays on), so each page costs its
// own rows, whatever the planner's statistics say: a
// sort-based plan, which stale statistics over a freshly loaded range can
// choose, would re-read the whole rest of the range for every page. It
// scans with pgx directly, without Bun's reflection, and sends the whole
// transaction in one round trip (two when the page is read again ordered
// by tenant). With personal data pseudonymised or
// encrypted, userId and sessionId match as in Search, and the events come
// back through Personal.Reveal, as audit.event.get shows them.
func (r *Repository) ExportPage(ctx context.Context, f audit.SearchFilter) ([]audit.Event, error) {
	ms, err := r.personalMatch(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("export page: %w", err)
	}
	// With personal data handling, a user's events are those stored under
	// the user id (in clear) and those stored under its pseudonym in each
	// tenant: one query for each, down the user index, merged. (One query
	// for all pseudonyms could not walk the index in the export's order,
	// and sorting is off.)
	type part struct {
		query string
		args  []any
		out   []audit.Event
	}
	var parts []*part
	plan := func(byTenant bool) {
		parts = []*part{{}}
		if len(ms.users) > 0 {
			parts[0].query, parts[0].args = exportQuery(f, []string{f.UserID}, userClear, ms.sessions, byTenant)
			for _, ps := range ms.users {
				pt := &part{}
				pt.query, pt.args = exportQuery(f, []string{ps}, userPseudonymous, ms.sessions, byTenant)
				parts = append(parts, pt)
			}
		} else {
			var users []string
			if f.UserID != "" {
				users = []string{f.UserID}
			}
			parts[0].query, parts[0].args = exportQuery(f, users, userAny, ms.sessions, byTenant)
		}
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("export page: %w", err)
	}
	defer func() { _ = conn.Close() }()
	read := func(byTenant bool) error {
		plan(byTenant)
		return conn.Raw(func(dc any) error {
			pc := dc.(*stdlib.Conn).Conn()
			var b pgx.Batch
			b.Queue("BEGIN READ ONLY")
			b.Queue("SET LOCAL enable_sort = off")
			for _, pt := range parts {
				pt.out = make([]audit.Event, 0, pageLimit(f, byTenant))
				b.Queue(pt.query, pt.args...).Query(func(rows pgx.Rows) error { return scanExport(rows, &pt.out) })
			}
			b.Queue("COMMIT")
			br := pc.SendBatch(ctx, &b)
			if err := br.Close(); err != nil {
				// A failed statement leaves the transaction aborted; the
				// connection must not go back to the pool inside it.
				_, _ = pc.Exec(context.WithoutCancel(ctx), "ROLLBACK")
				return err
			}
			return nil
		})
	}
	// A search over every tenant reads its page by the index order and
	// orders it by tenant, unless a part's page ends inside a run of
	// equal (occurred_at, id): then it reads again ordered by tenant (see
	// newestFirst).
	err = read(false)
	if err == nil && f.Tenant == nil {
		for _, pt := range parts {
			page, ok := pageOf(pt.out, f.Limit, exportKey)
			if !ok {
				err = read(true)
				break
			}
			pt.out = page
		}
	}
	if err != nil {
		return nil, fmt.Errorf("export page: %w", err)
	}
	out := parts[0].out
	for _, pt := range parts[1:] {
		out = mergeNewest(out, pt.out, f.Limit, func(x, y audit.Event) bool {
			return newerThan(x.OccurredAt, x.ID, x.Tenant, y.OccurredAt, y.ID, y.Tenant)
		})
	}
	if err := r.personal.Reveal(ctx, out); err != nil {
		return nil, fmt.Errorf("export page: %w", err)
	}
	return out, nil
}

// exportKey is the search order's key of an exported event.
func exportKey(e *audit.Event) (time.Time, string, string) { return e.OccurredAt, e.ID, e.Tenant }

// scanExport appends the rows of an export query to out, in their stored
// form.
func scanExport(rows pgx.Rows, out *[]audit.Event) error {
	var details string
	var pseudonymous bool
	for rows.Next() {
		var e audit.Event
		var personal []byte
		if err := rows.Scan(&e.ID, &e.UserID, &e.Action, &e.ResourceType, &e.ResourceID, &details, &e.IPAddress,
			&e.UserAgent, &e.SessionID, &e.RequestID, &e.Success, &e.ErrorMessage, &e.OccurredAt, &e.ReceivedAt,
			&e.Tenant, &pseudonymous, &personal); err != nil {
			return err
		}
		if details != "" {
			e.Details = []byte(details)
		}
		e.OccurredAt, e.ReceivedAt = e.OccurredAt.UTC(), e.ReceivedAt.UTC()
		e = storedForm(e, pseudonymous)
		e.Personal = personal
		*out = append(*out, e)
	}
	return rows.Err()
}

// userMatch is which rows a user filter of exportQuery matches.
type userMatch int

const (
	userAny          userMatch = iota // user_id equal, whatever the row
	userClear                         // user_id equal on rows stored in clear
	userPseudonymous                  // user_id equal on pseudonymous rows
)

// exportQuery is the SQL of ExportPage: Search's filter, order and limit
// (see newestFirst) with positional arguments, NULLs as empty strings, with users (any of them, matched as
// um says) in place of f.UserID, and sessionPs, the keyed pseudonyms of
// f.SessionID (none without personal data handling), also matched.
func exportQuery(f audit.SearchFilter, users []string, um userMatch, sessionPs []string, byTenant bool) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	// IN with one value is an equality, which walks the user index in
	// the search's order.
	in := func(vals []string) string {
		ps := make([]string, len(vals))
		for i, v := range vals {
			ps[i] = arg(v)
		}
		return "IN (" + strings.Join(ps, ", ") + ")"
	}
	if len(users) > 0 {
		switch um {
		case userClear:
			where = append(where, "user_id "+in(users)+" AND pseudonymous IS NULL")
		case userPseudonymous:
			where = append(where, "user_id "+in(users)+" AND pseudonymous")
		default:
			where = append(where, "user_id "+in(users))
		}
	}
	if f.SessionID != "" {
		where = append(where, "session_id "+in(append([]string{f.SessionID}, sessionPs...)))
	}
	if f.UserPseudonym != "" {
		where = append(where, "user_id = "+arg(f.UserPseudonym)+" AND pseudonymous")
	}
	for _, eq := range []struct{ col, val string }{
		{"resource_type", f.ResourceType}, {"resource_id", f.ResourceID}, {"request_id", f.RequestID},
	} {
		if eq.val != "" {
			where = append(where, eq.col+" = "+arg(eq.val))
		}
	}
	switch {
	case f.ActionPrefix && f.Action != "":
		where = append(where, "action LIKE "+arg(escapeLike(f.Action)+"%"))
	case !f.ActionPrefix && f.Action != "":
		where = append(where, "action = "+arg(f.Action))
	}
	if f.Success != nil {
		where = append(where, "success = "+arg(*f.Success))
	}
	if f.Tenant != nil {
		where = append(where, "tenant = "+arg(*f.Tenant))
	}
	if !f.From.IsZero() {
		where = append(where, "occurred_at >= "+arg(f.From.UTC()))
	}
	if !f.To.IsZero() {
		where = append(where, "occurred_at < "+arg(f.To.UTC()))
	}
	switch {
	case afterTenant(f):
		where = append(where, "(occurred_at, id, tenant) < ("+arg(f.After.OccurredAt.UTC())+"::timestamptz, "+arg(f.After.ID)+"::text, "+arg(*f.After.Tenant)+"::text)")
	case f.After != nil:
		where = append(where, "(occurred_at, id) < ("+arg(f.After.OccurredAt.UTC())+"::timestamptz, "+arg(f.After.ID)+"::text)")
	}
	q := `SELECT id, coalesce(user_id, ''), action, resource_type, resource_id, coalesce(details::text, ''),
		coalesce(host(ip_address), ''), coalesce(user_agent, ''), coalesce(session_id, ''), coalesce(request_id, ''),
		success, coalesce(error_message, ''), occurred_at, received_at, tenant, coalesce(pseudonymous, false), personal FROM audit_logs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q + " ORDER BY " + newestFirst(f, byTenant) + " LIMIT " + strconv.Itoa(pageLimit(f, byTenant)), args
}
