package audit

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Report types: the values of reportType in an audit.report request.
const (
	ReportDaily   = "daily"   // one calendar day
	ReportWeekly  = "weekly"  // one ISO week, Monday to Sunday
	ReportMonthly = "monthly" // one calendar month
	ReportCustom  = "custom"  // startDate to endDate
)

// Report triggers: what made a report be generated.
const (
	TriggerRequest  = "request"  // an audit.report request
	TriggerJob      = "job"      // an audit.report.generate job published by someone
	TriggerSchedule = "schedule" // an audit.report.generate job fired by a JetStream schedule
)

// DefaultReportMaxDays is the longest custom period, in days, unless
// configured otherwise.
const DefaultReportMaxDays = 366

// TopN is how many entries topUsers, topActions and topResources hold.
const TopN = 10

// ReportRequest asks for a report: the JSON body of audit.report and of an
// audit.report.generate job. ResolvePeriod checks it.
type ReportRequest struct {
	ReportType string `json:"reportType"`
	Date       string `json:"date,omitempty"`      // YYYY-MM-DD, daily/weekly/monthly
	StartDate  string `json:"startDate,omitempty"` // RFC 3339, custom
	EndDate    string `json:"endDate,omitempty"`   // RFC 3339, custom
	TimeZone   string `json:"timeZone,omitempty"`  // IANA name, default UTC
	// Tenant confines the report to one tenant ("" the default tenant's
	// events, docs/tenants.md); nil counts every tenant, or, for a reader
	// bound to a tenant, its own.
	Tenant *string `json:"tenant,omitempty"`
}

// Period is the half-open time range [Start, End) of a report. Start and End
// carry the report's time zone, so they print as local times with their
// offset (2026-03-29T00:00:00+01:00).
type Period struct {
	Start    time.Time `json:"startDate"`
	End      time.Time `json:"endDate"`
	TimeZone string    `json:"timeZone"`
}

// ResolvePeriod applies the report period rules to req at the instant now:
//
//   - daily, weekly (ISO, Monday first), monthly: the calendar period that
//     contains date in timeZone; without date, the last complete period
//     before now.
//   - custom: [startDate, endDate), start before end, at most maxDays long.
//
// Local midnights are computed in the zone, so a daylight-saving change
// gives a 23- or 25-hour day. It returns a *ValidationError naming the field
// that breaks a rule. maxDays < 1 means DefaultReportMaxDays.
func ResolvePeriod(req ReportRequest, now time.Time, maxDays int) (Period, error) {
	if maxDays < 1 {
		maxDays = DefaultReportMaxDays
	}
	loc, err := loadZone(req.TimeZone)
	if err != nil {
		return Period{}, err
	}
	zone := loc.String()
	switch req.ReportType {
	case ReportDaily, ReportWeekly, ReportMonthly:
		for _, f := range []struct{ name, val string }{{"startDate", req.StartDate}, {"endDate", req.EndDate}} {
			if f.val != "" {
				return Period{}, Invalid(f.name, "is only allowed with reportType %q (use date for a %s report)", ReportCustom, req.ReportType)
			}
		}
		var d civilDate
		if req.Date != "" {
			if d, err = parseDate("date", req.Date); err != nil {
				return Period{}, err
			}
		} else {
			d = dateOf(now.In(loc)).lastCompleteBefore(req.ReportType)
		}
		first, next := d.periodOf(req.ReportType)
		return Period{Start: startOfDay(first, loc), End: startOfDay(next, loc), TimeZone: zone}, nil
	case ReportCustom:
		if req.Date != "" {
			return Period{}, Invalid("date", "is not allowed with reportType %q (use startDate and endDate)", ReportCustom)
		}
		start, err := ParseInstant("startDate", req.StartDate)
		if err != nil {
			return Period{}, err
		}
		end, err := ParseInstant("endDate", req.EndDate)
		if err != nil {
			return Period{}, err
		}
		if !start.Before(end) {
			return Period{}, Invalid("endDate", "must be after startDate")
		}
		if end.Sub(start) > time.Duration(maxDays)*24*time.Hour {
			return Period{}, Invalid("endDate", "must be at most %d days after startDate", maxDays)
		}
		return Period{Start: start.In(loc), End: end.In(loc), TimeZone: zone}, nil
	case "":
		return Period{}, Invalid("reportType", "is required: one of daily, weekly, monthly, custom")
	default:
		return Period{}, Invalid("reportType", "must be one of daily, weekly, monthly, custom, got %q", truncate(req.ReportType, 64))
	}
}

// loadZone returns the IANA time zone name (default UTC).
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	// "Local" would silently mean the server's zone; "" is UTC above.
	if name == "Local" || len(name) > 64 || strings.ContainsAny(name, "\x00\\") {
		return nil, Invalid("timeZone", "must be an IANA time zone name such as \"Europe/Berlin\", got %q", truncate(name, 64))
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Invalid("timeZone", "must be an IANA time zone name such as \"Europe/Berlin\", got %q", name)
	}
	return loc, nil
}

// civilDate is a calendar date without a zone.
type civilDate struct {
	y int
	m time.Month
	d int
}

func dateOf(t time.Time) civilDate {
	y, m, d := t.Date()
	return civilDate{y, m, d}
}

// addDays does calendar arithmetic in UTC, where every day has 24 hours.
func (c civilDate) addDays(n int) civilDate {
	return dateOf(time.Date(c.y, c.m, c.d+n, 0, 0, 0, 0, time.UTC))
}

func (c civilDate) before(o civilDate) bool {
	return time.Date(c.y, c.m, c.d, 0, 0, 0, 0, time.UTC).Before(time.Date(o.y, o.m, o.d, 0, 0, 0, 0, time.UTC))
}

// isoWeekday is 0 for Monday ... 6 for Sunday.
func (c civilDate) isoWeekday() int {
	return (int(time.Date(c.y, c.m, c.d, 0, 0, 0, 0, time.UTC).Weekday()) + 6) % 7
}

// periodOf returns the first day of the period of kind holding c and the
// first day of the next one.
func (c civilDate) periodOf(kind string) (first, next civilDate) {
	switch kind {
	case ReportWeekly:
		first = c.addDays(-c.isoWeekday())
		return first, first.addDays(7)
	case ReportMonthly:
		first = civilDate{c.y, c.m, 1}
		return first, dateOf(time.Date(c.y, c.m+1, 1, 0, 0, 0, 0, time.UTC))
	default:
		return c, c.addDays(1)
	}
}

// lastCompleteBefore returns a day of the last complete period of kind that
// ended before the period holding today.
func (c civilDate) lastCompleteBefore(kind string) civilDate {
	first, _ := c.periodOf(kind)
	return first.addDays(-1)
}

// startOfDay returns the first instant of day c in loc. Usually that is
// local midnight; where a daylight-saving change skips midnight (America/
// Havana, America/Santiago) it is the instant of the change, and where
// midnight happens twice it is the earlier one.
func startOfDay(c civilDate, loc *time.Location) time.Time {
	t := time.Date(c.y, c.m, c.d, 0, 0, 0, 0, loc)
	if dateOf(t).before(c) {
		// Midnight does not exist: Date chose an instant of the previous day,
		// in the zone that ends where day c begins.
		_, end := t.ZoneBounds()
		return end
	}
	if start, _ := t.ZoneBounds(); !start.IsZero() {
		// Midnight may have happened earlier in the previous zone too.
		_, off := start.Add(-time.Nanosecond).Zone()
		alt := time.Date(c.y, c.m, c.d, 0, 0, 0, 0, time.FixedZone("", off))
		if alt.Before(start) && alt.Before(t) {
			if l := alt.In(loc); dateOf(l) == c && l.Hour() == 0 && l.Minute() == 0 {
				return l
			}
		}
	}
	return t
}

// parseDate parses a YYYY-MM-DD date between 1970 and 9998.
func parseDate(field, s string) (civilDate, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return civilDate{}, Invalid(field, "must be a date such as \"2026-11-24\", got %q", truncate(s, 64))
	}
	if t.Year() < 1970 || t.Year() > 9998 {
		return civilDate{}, Invalid(field, "must lie between 1970-01-01 and 9998-12-31, got %q", s)
	}
	return dateOf(t), nil
}

// ParseInstant parses a required RFC 3339 time for field (a custom
// report's startDate, a search's from): between 1970 and 9998, at most
// microsecond precision (the storage precision). It returns a
// *ValidationError naming field.
func ParseInstant(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, Invalid(field, "is required: an RFC 3339 time such as \"2026-11-24T00:00:00Z\"")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, Invalid(field, "must be an RFC 3339 time such as \"2026-11-24T00:00:00Z\", got %q", truncate(s, 64))
	}
	if t.Year() < 1970 || t.Year() > 9998 {
		return time.Time{}, Invalid(field, "must lie between 1970 and 9998, got %q", s)
	}
	if !t.Equal(t.Truncate(Precision)) {
		return time.Time{}, Invalid(field, "must have at most microsecond precision (times are stored in microseconds), got %q", s)
	}
	return t, nil
}

// Report is a compliance report over one period. Every number comes from
// one consistent snapshot: Summary.Successful + Summary.Failed =
// Summary.Total, and ActionBreakdown adds up to Total.
type Report struct {
	ReportType      string           `json:"reportType"`
	Period          Period           `json:"period"`
	GeneratedAt     time.Time        `json:"generatedAt"`
	Summary         Summary          `json:"summary"`
	TopUsers        []UserCount      `json:"topUsers"`
	TopActions      []ActionCount    `json:"topActions"`
	TopResources    []ResourceCount  `json:"topResources"`
	FailureAnalysis []ActionFailures `json:"failureAnalysis"`
}

// Summary counts the events of a report's period.
type Summary struct {
	Total      int64 `json:"total"`
	Successful int64 `json:"successful"`
	Failed     int64 `json:"failed"`
	// SuccessRate is Successful/Total in percent, 0 to 100 with two
	// decimals; 0 when Total is 0.
	SuccessRate float64 `json:"successRate"`
	// ActionBreakdown holds every action: count descending, then name.
	ActionBreakdown []ActionCount `json:"actionBreakdown"`
}

// ActionCount is how many events had an action.
type ActionCount struct {
	Action string `json:"action"`
	Count  int64  `json:"count"`
}

// UserCount is how many events a user caused. With personal data
// encrypted (docs/personal-data.md) the rows count by pseudonym:
// UserPseudonym is then set, and once the user is erased UserID is
// ErasedUserID and Erased is true.
type UserCount struct {
	UserID        string `json:"userId"`
	UserPseudonym string `json:"userPseudonym,omitempty"`
	Erased        bool   `json:"erased,omitempty"`
	Count         int64  `json:"count"`
}

// ResourceCount is how many events concerned a resource type.
type ResourceCount struct {
	ResourceType string `json:"resourceType"`
	Count        int64  `json:"count"`
}

// ActionFailures is the failure figure of one action that failed at least
// once: failed of total events, FailureRate in percent with two decimals.
type ActionFailures struct {
	Action      string  `json:"action"`
	Failed      int64   `json:"failed"`
	Total       int64   `json:"total"`
	FailureRate float64 `json:"failureRate"`
}

// ActionTally is the count and failures of one action, as read from storage.
type ActionTally struct {
	Action string
	Count  int64
	Failed int64
}

// ReportCounts is what storage reads for a report, all from one snapshot:
// every action with its count and failures, and the TopN users (system
// events left out) and resource types, count descending then name.
type ReportCounts struct {
	Actions      []ActionTally
	TopUsers     []UserCount
	TopResources []ResourceCount
}

// BuildReport derives a report from counts. Ordering is deterministic:
// breakdowns and tops by count descending, then name in byte order;
// failureAnalysis by failed descending, then failureRate descending, then
// action. It never fails.
func BuildReport(reportType string, p Period, counts ReportCounts, generatedAt time.Time) Report {
	actions := append([]ActionTally(nil), counts.Actions...)
	sort.Slice(actions, func(i, j int) bool {
		if actions[i].Count != actions[j].Count {
			return actions[i].Count > actions[j].Count
		}
		return actions[i].Action < actions[j].Action
	})
	r := Report{
		ReportType:      reportType,
		Period:          p,
		GeneratedAt:     Normalize(generatedAt),
		TopUsers:        nonNil(counts.TopUsers),
		TopResources:    nonNil(counts.TopResources),
		TopActions:      []ActionCount{},
		FailureAnalysis: []ActionFailures{},
	}
	r.Summary.ActionBreakdown = make([]ActionCount, 0, len(actions))
	for _, a := range actions {
		r.Summary.Total += a.Count
		r.Summary.Failed += a.Failed
		r.Summary.ActionBreakdown = append(r.Summary.ActionBreakdown, ActionCount{Action: a.Action, Count: a.Count})
		if a.Failed > 0 {
			r.FailureAnalysis = append(r.FailureAnalysis, ActionFailures{
				Action: a.Action, Failed: a.Failed, Total: a.Count, FailureRate: percent(a.Failed, a.Count),
			})
		}
	}
	r.Summary.Successful = r.Summary.Total - r.Summary.Failed
	r.Summary.SuccessRate = percent(r.Summary.Successful, r.Summary.Total)
	r.TopActions = append(r.TopActions, r.Summary.ActionBreakdown[:min(TopN, len(r.Summary.ActionBreakdown))]...)
	sort.Slice(r.FailureAnalysis, func(i, j int) bool {
		a, b := r.FailureAnalysis[i], r.FailureAnalysis[j]
		if a.Failed != b.Failed {
			return a.Failed > b.Failed
		}
		if a.FailureRate != b.FailureRate {
			return a.FailureRate > b.FailureRate
		}
		return a.Action < b.Action
	})
	return r
}

// percent returns part/whole in percent rounded to two decimals, 0 when
// whole is 0.
func percent(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return math.Round(float64(part)*10000/float64(whole)) / 100
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// StoredReport is a report as saved in audit_reports: its id, what
// triggered it and the request it answered, with the report's fields inline.
type StoredReport struct {
	ID      int64         `json:"id"`
	Trigger string        `json:"trigger"`
	Request ReportRequest `json:"request"`
	// Tenant is the one tenant the report counts; nil: every tenant.
	Tenant *string `json:"tenant,omitempty"`
	Report
}

// ReportListItem describes a stored report without its figures.
type ReportListItem struct {
	ID          int64     `json:"id"`
	ReportType  string    `json:"reportType"`
	Period      Period    `json:"period"`
	GeneratedAt time.Time `json:"generatedAt"`
	Trigger     string    `json:"trigger"`
}

// String describes the period for logs and errors.
func (p Period) String() string {
	return fmt.Sprintf("[%s, %s) %s", p.Start.Format(time.RFC3339Nano), p.End.Format(time.RFC3339Nano), p.TimeZone)
}
