package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/auditq/auditq/domain/audit"
)

// ExportPage returns up to f.Limit events matching f, newest first by
// (occurred_at, id) descending, strictly after f.After: the events Search
// returns, read for an export. It always walks an index in that order
// (sorting is switched off for its one short read-only transaction), so
// each page costs its own rows, whatever the planner's statistics say: a
// sort-based plan, which stale statistics over a freshly loaded range can
// choose, would re-read the whole rest of the range for every page. It
// scans with pgx directly, without Bun's reflection, and sends the whole
// transaction in one round trip.
func (r *Repository) ExportPage(ctx context.Context, f audit.SearchFilter) ([]audit.Event, error) {
	query, args := exportQuery(f)
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("export page: %w", err)
	}
	defer func() { _ = conn.Close() }()
	out := make([]audit.Event, 0, f.Limit)
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		var b pgx.Batch
		b.Queue("BEGIN READ ONLY")
		b.Queue("SET LOCAL enable_sort = off")
		q := b.Queue(query, args...)
		b.Queue("COMMIT")
		q.Query(func(rows pgx.Rows) error {
			var details string
			for rows.Next() {
				var e audit.Event
				if err := rows.Scan(&e.ID, &e.UserID, &e.Action, &e.ResourceType, &e.ResourceID, &details, &e.IPAddress,
					&e.UserAgent, &e.SessionID, &e.RequestID, &e.Success, &e.ErrorMessage, &e.OccurredAt, &e.ReceivedAt, &e.Tenant); err != nil {
					return err
				}
				if details != "" {
					e.Details = []byte(details)
				}
				e.OccurredAt, e.ReceivedAt = e.OccurredAt.UTC(), e.ReceivedAt.UTC()
				out = append(out, e)
			}
			return rows.Err()
		})
		br := pc.SendBatch(ctx, &b)
		if err := br.Close(); err != nil {
			// A failed statement leaves the transaction aborted; the
			// connection must not go back to the pool inside it.
			_, _ = pc.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("export page: %w", err)
	}
	return out, nil
}

// exportQuery is the SQL of ExportPage: Search's filter with positional
// arguments, NULLs as empty strings.
func exportQuery(f audit.SearchFilter) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	for _, eq := range []struct{ col, val string }{
		{"user_id", f.UserID}, {"resource_type", f.ResourceType}, {"resource_id", f.ResourceID},
		{"session_id", f.SessionID}, {"request_id", f.RequestID},
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
	if f.After != nil {
		where = append(where, "(occurred_at, id) < ("+arg(f.After.OccurredAt.UTC())+"::timestamptz, "+arg(f.After.ID)+"::text)")
	}
	q := `SELECT id, coalesce(user_id, ''), action, resource_type, resource_id, coalesce(details::text, ''),
		coalesce(host(ip_address), ''), coalesce(user_agent, ''), coalesce(session_id, ''), coalesce(request_id, ''),
		success, coalesce(error_message, ''), occurred_at, received_at, tenant FROM audit_logs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q + " ORDER BY occurred_at DESC, id DESC LIMIT " + strconv.Itoa(f.Limit), args
}
