package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

// Search returns up to f.Limit events matching f, newest first by
// (occurred_at, id, tenant) descending, strictly after f.After when set
// (keyset pagination: stable while events are inserted). The order is that
// of the (occurred_at, id) index scanned backwards; a userId filter uses
// the (user_id, occurred_at, id) index and resourceType + resourceId the
// resource index. A search over every tenant orders the events that share
// a time and an id (one per tenant at most) by tenant: it reads the page
// in the index order and sorts those few rows itself, and reads it ordered
// by tenant only when the page ends among them (see newestFirst). Other
// filters are checked on the rows that scan visits, so a selective filter
// on an unindexed column over a long, sparse history is best bounded with
// from/to. With personal data handling (see Personal) a userId matches its
// pseudonym in the tenant searched (or in each tenant, when the search is
// over every tenant), and the user id itself on rows stored in clear: two
// searches, each down the user index, merged. The events come back
// through Personal.Reveal.
func (r *Repository) Search(ctx context.Context, f audit.SearchFilter) ([]audit.Event, error) {
	ms, err := r.personalMatch(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("search events: %w", err)
	}
	rows, err := r.search(ctx, f, ms, false)
	if err != nil {
		return nil, err
	}
	if len(ms.users) > 0 {
		pseudonymous, err := r.search(ctx, f, ms, true)
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

// mergeNewestFirst merges two lists ordered by (occurred_at, id, tenant)
// descending into the first limit rows of both.
func mergeNewestFirst(a, b []eventRow, limit int) []eventRow {
	return mergeNewest(a, b, limit, func(x, y eventRow) bool {
		return newerThan(x.OccurredAt, x.ID, x.Tenant, y.OccurredAt, y.ID, y.Tenant)
	})
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

// newerThan tells whether the event (at, id, tenant) comes before the
// event (yAt, yID, yTenant) newest first: the order of newestFirst.
func newerThan(at time.Time, id, tenant string, yAt time.Time, yID, yTenant string) bool {
	switch {
	case !at.Equal(yAt):
		return at.After(yAt)
	case id != yID:
		return id > yID
	}
	return tenant > yTenant
}

// newestFirst is the ORDER BY of one read of a page of f, and
// pageLimit its LIMIT. Events of several tenants may share a time and an
// id, so the order of a search over every tenant is (occurred_at, id,
// tenant): total, so that its keyset pages neither skip nor repeat such
// events. The indexes, on (..., occurred_at, id), give the first two keys,
// and a read in their order sorts nothing; it takes one row more than the
// page, which tells whether the page ends inside a run of equal
// (occurred_at, id) (see pageOf). Only then is the page read again
// ordered by tenant too (byTenant), which sorts each such run as the
// index scan reads it (an incremental sort). A search of one tenant needs
// no third key.
func newestFirst(f audit.SearchFilter, byTenant bool) string {
	if byTenant && f.Tenant == nil {
		return "occurred_at DESC, id DESC, tenant DESC"
	}
	return "occurred_at DESC, id DESC"
}

// pageLimit is the LIMIT of the read newestFirst orders.
func pageLimit(f audit.SearchFilter, byTenant bool) int {
	if byTenant || f.Tenant != nil {
		return f.Limit
	}
	return f.Limit + 1
}

// pageOf returns the page of limit rows of a search over every tenant
// from rows read by (occurred_at, id) descending with one row more than
// the page (see newestFirst), in the order (occurred_at, id, tenant)
// descending. It returns false when the row after the page has the same
// time and id as the page's last: the read may have cut that run of rows
// anywhere, and the page must be read ordered by tenant. Otherwise every
// run of equal (occurred_at, id) the read returned is whole, and sorting
// each run by tenant gives the page.
func pageOf[T any](rows []T, limit int, key func(*T) (time.Time, string, string)) ([]T, bool) {
	if limit > 0 && len(rows) > limit {
		at, id, _ := key(&rows[limit-1])
		nextAt, nextID, _ := key(&rows[limit])
		if at.Equal(nextAt) && id == nextID {
			return nil, false
		}
		rows = rows[:limit]
	}
	for start := 0; start < len(rows); {
		at, id, _ := key(&rows[start])
		end := start + 1
		for end < len(rows) {
			a, i, _ := key(&rows[end])
			if !a.Equal(at) || i != id {
				break
			}
			end++
		}
		if end-start > 1 {
			slices.SortFunc(rows[start:end], func(x, y T) int {
				_, _, tx := key(&x)
				_, _, ty := key(&y)
				return strings.Compare(ty, tx) // tenant descending
			})
		}
		start = end
	}
	return rows, true
}

// rowKey is the search order's key of an eventRow.
func rowKey(r *eventRow) (time.Time, string, string) { return r.OccurredAt, r.ID, r.Tenant }

// afterTenant tells whether the keyset condition of f takes the tenant of
// f.After: in a search over every tenant, from a position that names its
// tenant. A position without one (a cursor issued before the order had the
// tenant) continues after every event of its time and id.
func afterTenant(f audit.SearchFilter) bool {
	return f.Tenant == nil && f.After != nil && f.After.Tenant != nil
}

// personalMatch is what the userId and sessionId of a search match
// besides the values stored in clear: their pseudonyms in each tenant the
// search covers.
type personalMatch struct {
	users, sessions []string
}

// personalMatch returns the pseudonyms of f's userId and sessionId in the
// tenants f covers; none without personal data handling.
func (r *Repository) personalMatch(ctx context.Context, f audit.SearchFilter) (personalMatch, error) {
	var m personalMatch
	var err error
	if m.users, err = r.personal.searchPseudonyms(ctx, f.Tenant, f.UserID, pseudonymOf); err != nil {
		return m, err
	}
	m.sessions, err = r.personal.searchPseudonyms(ctx, f.Tenant, f.SessionID, sessionPseudonymOf, longSessionPseudonymOf)
	return m, err
}

// search runs f with, when pseudonymous, the pseudonyms of ms.users in
// place of f.UserID, else f.UserID on rows stored in clear.
func (r *Repository) search(ctx context.Context, f audit.SearchFilter, ms personalMatch, pseudonymous bool) ([]eventRow, error) {
	var rows []eventRow
	read := func(byTenant bool) error {
		rows = nil
		q := r.searchQuery(f, ms, pseudonymous, &rows).OrderExpr(newestFirst(f, byTenant)).Limit(int64(pageLimit(f, byTenant)))
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("search events: %w", err)
		}
		return nil
	}
	if err := read(false); err != nil {
		return nil, err
	}
	if f.Tenant != nil {
		return rows, nil
	}
	if page, ok := pageOf(rows, f.Limit, rowKey); ok {
		return page, nil
	}
	if err := read(true); err != nil {
		return nil, err
	}
	return rows, nil
}

// searchQuery is the query of search, without its order and limit,
// scanning into rows.
func (r *Repository) searchQuery(f audit.SearchFilter, ms personalMatch, pseudonymous bool, rows *[]eventRow) *bun.SelectQuery {
	q := r.db.NewSelect().Model(rows)
	switch {
	case pseudonymous:
		q = q.Where("user_id IN (?) AND pseudonymous", bun.List(ms.users))
	case f.UserID != "":
		q = q.Where("user_id = ? AND pseudonymous IS NULL", f.UserID)
	}
	if f.UserPseudonym != "" {
		q = q.Where("user_id = ? AND pseudonymous", f.UserPseudonym)
	}
	// An encrypted event stores its session id's keyed pseudonym; other
	// events store it in clear.
	if f.SessionID != "" {
		q = q.Where("session_id IN (?)", bun.List(append([]string{f.SessionID}, ms.sessions...)))
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
	switch {
	case afterTenant(f):
		q = q.Where("(occurred_at, id, tenant) < (?, ?, ?)", f.After.OccurredAt.UTC(), f.After.ID, *f.After.Tenant)
	case f.After != nil:
		q = q.Where("(occurred_at, id) < (?, ?)", f.After.OccurredAt.UTC(), f.After.ID)
	}
	return q
}

// escapeLike escapes the LIKE metacharacters (%, _ and the escape
// character, backslash, itself) so s matches literally.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
