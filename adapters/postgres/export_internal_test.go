package postgres

import "github.com/auditq/auditq/domain/audit"

// PageQueries returns, for tests, the SQL of the first read of a page of f
// by Search (its arguments inline) and by ExportPage (with its arguments),
// without personal data handling.
func (r *Repository) PageQueries(f audit.SearchFilter) (search, export string, exportArgs []any) {
	var rows []eventRow
	search = r.searchQuery(f, personalMatch{}, false, &rows).OrderExpr(newestFirst(f, false)).Limit(int64(pageLimit(f, false))).String()
	export, exportArgs = exportQuery(f, nil, userAny, nil, false)
	return search, export, exportArgs
}
