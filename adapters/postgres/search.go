package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

// Search returns up to f.Limit events matching f, newest first by
// (occurred_at, id) descending, strictly after f.After when set (keyset
// pagination: stable while events are inserted). The order is that of the
// (occurred_at, id) index scanned backwards; a userId filter uses the
// (user_id, occurred_at, id) index and resourceType + resourceId the
// resource index. Other filters are checked on the rows that scan visits,
// so a selective filter on an unindexed column over a long, sparse history
// is best bounded with from/to. With personal data pseudonymised (see
// Personal) a userId matches its pseudonym, and the user id itself on
// rows written before: two searches, each down the user index, merged.
// The events come back through Personal.Reveal.
func (r *Repository) Search(ctx context.Context, f audit.SearchFilter) ([]audit.Event, error) {
	rows, err := r.search(ctx, f, f.UserID, false)
	if err != nil {
		return nil, err
	}
	if f.UserID != "" && r.personal != nil {
		pseudonymous, err := r.search(ctx, f, r.personal.Pseudonym(f.UserID), true)
		if err != nil {
			return nil, err
		}
		rows = mergeNewestFirst(rows, pseudonymous, f.Limit)
	}
	out := make([]audit.Event, len(rows))
	for i, row := range rows {
		out[i] = row.toEvent()
	}
	if err := r.personal.Reveal(ctx, out); err != nil {
		return nil, fmt.Errorf("search events: %w", err)
	}
	return out, nil
}

// mergeNewestFirst merges two lists ordered by (occurred_at, id)
// descending into the first limit rows of both.
func mergeNewestFirst(a, b []eventRow, limit int) []eventRow {
	return mergeNewest(a, b, limit, newer)
}

// mergeNewest merges two lists ordered newest first (by newer) into the
// first limit items of both.
func mergeNewest[T any](a, b []T, limit int, newer func(x, y T) bool) []T {
	out := make([]T, 0, min(len(a)+len(b), limit))
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || len(a) > 0 && newer(a[0], b[0]) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

func newer(x, y eventRow) bool {
	if !x.OccurredAt.Equal(y.OccurredAt) {
		return x.OccurredAt.After(y.OccurredAt)
	}
	return x.ID > y.ID
}

// search runs f with user (a user id, or a pseudonym when pseudonymous)
// in place of f.UserID.
func (r *Repository) search(ctx context.Context, f audit.SearchFilter, user string, pseudonymous bool) ([]eventRow, error) {
	var rows []eventRow
	q := r.db.NewSelect().Model(&rows)
	switch {
	case user != "" && pseudonymous:
		q = q.Where("user_id = ? AND pseudonymous", user)
	case user != "":
		q = q.Where("user_id = ? AND pseudonymous IS NULL", user)
	}
	if f.UserPseudonym != "" {
		q = q.Where("user_id = ? AND pseudonymous", f.UserPseudonym)
	}
	// An encrypted event stores its session id's keyed pseudonym; other
	// events store it in clear.
	if ps := r.personal.SessionPseudonym(f.SessionID); ps != "" {
		q = q.Where("session_id IN (?, ?)", f.SessionID, ps)
	} else if f.SessionID != "" {
		q = q.Where("session_id = ?", f.SessionID)
	}
	for _, eq := range []struct{ col, val string }{
		{"resource_type", f.ResourceType}, {"resource_id", f.ResourceID}, {"request_id", f.RequestID},
	} {
		if eq.val != "" {
			q = q.Where("? = ?", bun.Ident(eq.col), eq.val)
		}
	}
	switch {
	case f.ActionPrefix && f.Action != "":
		q = q.Where("action LIKE ?", escapeLike(f.Action)+"%")
	case !f.ActionPrefix && f.Action != "":
		q = q.Where("action = ?", f.Action)
	}
	if f.Success != nil {
		q = q.Where("success = ?", *f.Success)
	}
	if f.Tenant != nil {
		q = q.Where("tenant = ?", *f.Tenant)
	}
	if !f.From.IsZero() {
		q = q.Where("occurred_at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		q = q.Where("occurred_at < ?", f.To.UTC())
	}
	if f.After != nil {
		q = q.Where("(occurred_at, id) < (?, ?)", f.After.OccurredAt.UTC(), f.After.ID)
	}
	q = q.OrderExpr("occurred_at DESC, id DESC").Limit(int64(f.Limit))
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("search events: %w", err)
	}
	return rows, nil
}

// escapeLike escapes the LIKE metacharacters (%, _ and the escape
// character, backslash, itself) so s matches literally.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
