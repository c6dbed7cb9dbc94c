package audit

import "time"

// StartOfDate returns the first instant of the date year-month-day in loc,
// as report periods begin: local midnight, or where a daylight-saving
// change skips midnight the instant of the change, and where midnight
// happens twice the earlier one.
func StartOfDate(year int, month time.Month, day int, loc *time.Location) time.Time {
	return startOfDay(civilDate{year, month, day}, loc)
}
