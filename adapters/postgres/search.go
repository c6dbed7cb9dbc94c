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
// is best bounded with from/to.
func (r *Repository) Search(ctx context.Context, f audit.SearchFilter) ([]audit.Event, error) {
	var rows []eventRow
	q := r.db.NewSelect().Model(&rows)
	switch {
	case f.UserID != "" && r.personal != nil:
		// Rows written before pseudonymisation hold the user id itself.
		q = q.Where("((user_id = ? AND pseudonymous) OR (user_id = ? AND pseudonymous IS NULL))", r.personal.Pseudonym(f.UserID), f.UserID)
	case f.UserID != "":
		q = q.Where("user_id = ? AND pseudonymous IS NULL", f.UserID)
	}
	if f.UserPseudonym != "" {
		q = q.Where("user_id = ? AND pseudonymous", f.UserPseudonym)
	}
	for _, eq := range []struct{ col, val string }{
		{"resource_type", f.ResourceType}, {"resource_id", f.ResourceID},
		{"session_id", f.SessionID}, {"request_id", f.RequestID},
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
	out := make([]audit.Event, len(rows))
	for i, row := range rows {
		out[i] = row.toEvent()
	}
	if err := r.personal.Reveal(ctx, out); err != nil {
		return nil, fmt.Errorf("search events: %w", err)
	}
	return out, nil
}

// escapeLike escapes the LIKE metacharacters (%, _ and the escape
// character, backslash, itself) so s matches literally.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
