package audit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// instant parses an RFC 3339 time in a test table.
func instant(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestResolvePeriod(t *testing.T) {
	// Every expected bound is worked out by hand from the zone's rules; the
	// hours column double-checks DST days (23 h in spring, 25 h in autumn).
	const now = "2026-11-25T10:00:00Z" // a Wednesday
	cases := []struct {
		name       string
		req        ReportRequest
		now        string
		start, end string // the period, as echoed (local time and offset)
		hours      float64
	}{
		{"daily UTC", ReportRequest{ReportType: "daily", Date: "2026-11-24"}, now,
			"2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z", 24},
		{"daily Berlin, spring forward", ReportRequest{ReportType: "daily", Date: "2026-03-29", TimeZone: "Europe/Berlin"}, now,
			"2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 23},
		{"daily Berlin, fall back", ReportRequest{ReportType: "daily", Date: "2026-10-25", TimeZone: "Europe/Berlin"}, now,
			"2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 25},
		{"daily Havana, midnight skipped: the day starts at 01:00", ReportRequest{ReportType: "daily", Date: "2026-03-08", TimeZone: "America/Havana"}, now,
			"2026-03-08T01:00:00-04:00", "2026-03-09T00:00:00-04:00", 23},
		{"daily Havana, the day before the skipped midnight", ReportRequest{ReportType: "daily", Date: "2026-03-07", TimeZone: "America/Havana"}, now,
			"2026-03-07T00:00:00-05:00", "2026-03-08T01:00:00-04:00", 24},
		{"daily Havana, midnight twice: the day starts at the first", ReportRequest{ReportType: "daily", Date: "2026-11-01", TimeZone: "America/Havana"}, now,
			"2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00", 25},
		{"daily Santiago, midnight skipped", ReportRequest{ReportType: "daily", Date: "2026-09-06", TimeZone: "America/Santiago"}, now,
			"2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00", 23},
		{"daily Kolkata, half-hour offset", ReportRequest{ReportType: "daily", Date: "2026-11-24", TimeZone: "Asia/Kolkata"}, now,
			"2026-11-24T00:00:00+05:30", "2026-11-25T00:00:00+05:30", 24},
		{"weekly from a Tuesday", ReportRequest{ReportType: "weekly", Date: "2026-11-24"}, now,
			"2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z", 168},
		{"weekly from the Monday", ReportRequest{ReportType: "weekly", Date: "2026-11-23"}, now,
			"2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z", 168},
		{"weekly from the Sunday (ISO weeks end on Sunday)", ReportRequest{ReportType: "weekly", Date: "2026-11-29"}, now,
			"2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z", 168},
		{"weekly spanning a month end", ReportRequest{ReportType: "weekly", Date: "2026-09-30"}, now,
			"2026-09-28T00:00:00Z", "2026-10-05T00:00:00Z", 168},
		{"weekly spanning a year end (ISO week 53)", ReportRequest{ReportType: "weekly", Date: "2027-01-03"}, now,
			"2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z", 168},
		{"weekly Berlin with the spring change", ReportRequest{ReportType: "weekly", Date: "2026-03-25", TimeZone: "Europe/Berlin"}, now,
			"2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 167},
		{"monthly February", ReportRequest{ReportType: "monthly", Date: "2026-02-10"}, now,
			"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", 28 * 24},
		{"monthly February of a leap year", ReportRequest{ReportType: "monthly", Date: "2028-02-29"}, now,
			"2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z", 29 * 24},
		{"monthly December into the next year", ReportRequest{ReportType: "monthly", Date: "2026-12-31"}, now,
			"2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", 31 * 24},
		{"monthly Berlin October (fall back)", ReportRequest{ReportType: "monthly", Date: "2026-10-01", TimeZone: "Europe/Berlin"}, now,
			"2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00", 31*24 + 1},
		{"default daily: yesterday", ReportRequest{ReportType: "daily"}, now,
			"2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z", 24},
		{"default daily at midnight: the day that just ended", ReportRequest{ReportType: "daily"}, "2026-11-25T00:00:00Z",
			"2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z", 24},
		{"default daily one microsecond before midnight", ReportRequest{ReportType: "daily"}, "2026-11-24T23:59:59.999999Z",
			"2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z", 24},
		{"default daily in Tokyo: already tomorrow there", ReportRequest{ReportType: "daily", TimeZone: "Asia/Tokyo"}, "2026-11-24T23:30:00Z",
			"2026-11-24T00:00:00+09:00", "2026-11-25T00:00:00+09:00", 24},
		{"default daily in Los Angeles: still yesterday there", ReportRequest{ReportType: "daily", TimeZone: "America/Los_Angeles"}, "2026-11-25T05:00:00Z",
			"2026-11-23T00:00:00-08:00", "2026-11-24T00:00:00-08:00", 24},
		{"default weekly: the week before this one", ReportRequest{ReportType: "weekly"}, now,
			"2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z", 168},
		{"default weekly on a Monday: the week that just ended", ReportRequest{ReportType: "weekly"}, "2026-11-23T00:00:00Z",
			"2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z", 168},
		{"default monthly in January: last December", ReportRequest{ReportType: "monthly"}, "2026-01-15T12:00:00Z",
			"2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z", 31 * 24},
		{"custom, echoed in its zone", ReportRequest{ReportType: "custom", StartDate: "2026-11-01T00:00:00Z", EndDate: "2026-11-02T12:30:00.5Z", TimeZone: "Europe/Berlin"}, now,
			"2026-11-01T01:00:00+01:00", "2026-11-02T13:30:00.5+01:00", 36.5 + 1.0/7200},
		{"custom, exactly the longest span", ReportRequest{ReportType: "custom", StartDate: "2025-01-01T00:00:00Z", EndDate: "2026-01-02T00:00:00Z"}, now,
			"2025-01-01T00:00:00Z", "2026-01-02T00:00:00Z", 366 * 24},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ResolvePeriod(c.req, instant(t, c.now), 0)
			if err != nil {
				t.Fatal(err)
			}
			got := [2]string{p.Start.Format(time.RFC3339Nano), p.End.Format(time.RFC3339Nano)}
			if got != [2]string{c.start, c.end} {
				t.Fatalf("period %v, want [%s, %s)", got, c.start, c.end)
			}
			if h := p.End.Sub(p.Start).Hours(); h != c.hours {
				t.Errorf("period is %v hours long, want %v", h, c.hours)
			}
			wantZone := c.req.TimeZone
			if wantZone == "" {
				wantZone = "UTC"
			}
			if p.TimeZone != wantZone {
				t.Errorf("timeZone %q, want %q", p.TimeZone, wantZone)
			}
		})
	}
}

// Consecutive days tile the time line: each day starts where the previous
// one ended, through every DST change of a year in several zones.
func TestDailyPeriodsTile(t *testing.T) {
	for _, zone := range []string{"UTC", "Europe/Berlin", "America/Havana", "America/Santiago", "Australia/Lord_Howe", "Asia/Tehran"} {
		day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		prev, err := ResolvePeriod(ReportRequest{ReportType: "daily", Date: day.Format(time.DateOnly), TimeZone: zone}, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 400 {
			day = day.AddDate(0, 0, 1)
			p, err := ResolvePeriod(ReportRequest{ReportType: "daily", Date: day.Format(time.DateOnly), TimeZone: zone}, time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Start.Equal(prev.End) {
				t.Fatalf("%s %s starts at %s, the previous day ended at %s", zone, day.Format(time.DateOnly), p.Start, prev.End)
			}
			if y, m, d := p.Start.Date(); time.Date(y, m, d, 0, 0, 0, 0, time.UTC) != day {
				t.Fatalf("%s %s starts on local date %s", zone, day.Format(time.DateOnly), p.Start)
			}
			if h := p.End.Sub(p.Start).Hours(); h < 22.9 || h > 25.1 {
				t.Fatalf("%s %s is %v hours long", zone, day.Format(time.DateOnly), h)
			}
			prev = p
		}
	}
}

func TestResolvePeriodErrors(t *testing.T) {
	now := instant(t, "2026-11-25T10:00:00Z")
	cases := []struct {
		req     ReportRequest
		maxDays int
		field   string
		rule    string
	}{
		{ReportRequest{}, 0, "reportType", "is required"},
		{ReportRequest{ReportType: "yearly"}, 0, "reportType", `must be one of daily, weekly, monthly, custom, got "yearly"`},
		{ReportRequest{ReportType: "Daily"}, 0, "reportType", "must be one of"},
		{ReportRequest{ReportType: "daily", Date: "2026-13-01"}, 0, "date", "must be a date"},
		{ReportRequest{ReportType: "daily", Date: "24.11.2026"}, 0, "date", "must be a date"},
		{ReportRequest{ReportType: "daily", Date: "2026-11-24T00:00:00Z"}, 0, "date", "must be a date"},
		{ReportRequest{ReportType: "daily", Date: "1969-12-31"}, 0, "date", "between 1970-01-01 and 9998-12-31"},
		{ReportRequest{ReportType: "weekly", Date: "2026-02-30"}, 0, "date", "must be a date"},
		{ReportRequest{ReportType: "daily", TimeZone: "Mars/Olympus_Mons"}, 0, "timeZone", "IANA time zone"},
		{ReportRequest{ReportType: "daily", TimeZone: "Local"}, 0, "timeZone", "IANA time zone"},
		{ReportRequest{ReportType: "daily", TimeZone: "../../etc/passwd"}, 0, "timeZone", "IANA time zone"},
		{ReportRequest{ReportType: "daily", StartDate: "2026-11-01T00:00:00Z"}, 0, "startDate", "only allowed with reportType \"custom\""},
		{ReportRequest{ReportType: "monthly", EndDate: "2026-11-01T00:00:00Z"}, 0, "endDate", "only allowed"},
		{ReportRequest{ReportType: "custom", Date: "2026-11-01"}, 0, "date", "not allowed"},
		{ReportRequest{ReportType: "custom", EndDate: "2026-11-01T00:00:00Z"}, 0, "startDate", "is required"},
		{ReportRequest{ReportType: "custom", StartDate: "2026-11-01T00:00:00Z"}, 0, "endDate", "is required"},
		{ReportRequest{ReportType: "custom", StartDate: "2026-11-01", EndDate: "2026-11-02T00:00:00Z"}, 0, "startDate", "RFC 3339"},
		{ReportRequest{ReportType: "custom", StartDate: "2026-11-01T00:00:00Z", EndDate: "tomorrow"}, 0, "endDate", "RFC 3339"},
		{ReportRequest{ReportType: "custom", StartDate: "2026-11-02T00:00:00Z", EndDate: "2026-11-01T00:00:00Z"}, 0, "endDate", "must be after startDate"},
		{ReportRequest{ReportType: "custom", StartDate: "2026-11-01T00:00:00Z", EndDate: "2026-11-01T01:00:00+01:00"}, 0, "endDate", "must be after startDate"},
		{ReportRequest{ReportType: "custom", StartDate: "2025-01-01T00:00:00Z", EndDate: "2026-01-02T00:00:00.000001Z"}, 0, "endDate", "at most 366 days"},
		{ReportRequest{ReportType: "custom", StartDate: "2026-11-01T00:00:00Z", EndDate: "2026-11-09T00:00:00Z"}, 7, "endDate", "at most 7 days"},
		{ReportRequest{ReportType: "custom", StartDate: "2026-11-01T00:00:00.0000001Z", EndDate: "2026-11-02T00:00:00Z"}, 0, "startDate", "microsecond precision"},
	}
	for _, c := range cases {
		_, err := ResolvePeriod(c.req, now, c.maxDays)
		var v *ValidationError
		if !errors.As(err, &v) {
			t.Errorf("%+v: got %v, want a validation error", c.req, err)
			continue
		}
		if v.Field != c.field || !strings.Contains(v.Rule, c.rule) {
			t.Errorf("%+v: got %q, want field %s with %q", c.req, err, c.field, c.rule)
		}
	}
}

func TestBuildReport(t *testing.T) {
	p, err := ResolvePeriod(ReportRequest{ReportType: "daily", Date: "2026-03-29", TimeZone: "Europe/Berlin"}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	counts := ReportCounts{
		// Out of order on purpose: BuildReport orders.
		Actions: []ActionTally{
			{Action: "b.tie", Count: 3, Failed: 1},
			{Action: "user.login", Count: 5, Failed: 2},
			{Action: "a.tie", Count: 3, Failed: 2},
			{Action: "c.never.fails", Count: 1},
		},
		TopUsers:     []UserCount{{UserID: "u1", Count: 4}},
		TopResources: []ResourceCount{{ResourceType: "user", Count: 12}},
	}
	generated := time.Date(2026, 3, 30, 0, 15, 0, 123456789, time.UTC)
	r := BuildReport("daily", p, counts, generated)
	want := Summary{Total: 12, Successful: 7, Failed: 5, SuccessRate: 58.33, ActionBreakdown: []ActionCount{
		{"user.login", 5}, {"a.tie", 3}, {"b.tie", 3}, {"c.never.fails", 1},
	}}
	if !jsonEqual(t, r.Summary, want) {
		t.Fatalf("summary %+v\nwant    %+v", r.Summary, want)
	}
	if !jsonEqual(t, r.TopActions, want.ActionBreakdown) {
		t.Errorf("topActions %+v", r.TopActions)
	}
	wantFailures := []ActionFailures{
		{Action: "a.tie", Failed: 2, Total: 3, FailureRate: 66.67},
		{Action: "user.login", Failed: 2, Total: 5, FailureRate: 40},
		{Action: "b.tie", Failed: 1, Total: 3, FailureRate: 33.33},
	}
	if !jsonEqual(t, r.FailureAnalysis, wantFailures) {
		t.Errorf("failureAnalysis %+v\nwant            %+v", r.FailureAnalysis, wantFailures)
	}
	body, _ := json.Marshal(r)
	for _, s := range []string{
		`"period":{"startDate":"2026-03-29T00:00:00+01:00","endDate":"2026-03-30T00:00:00+02:00","timeZone":"Europe/Berlin"}`,
		`"generatedAt":"2026-03-30T00:15:00.123456Z"`,
		`"successRate":58.33`,
	} {
		if !strings.Contains(string(body), s) {
			t.Errorf("JSON lacks %s:\n%s", s, body)
		}
	}
}

func TestBuildReportTopActionsAreTen(t *testing.T) {
	var counts ReportCounts
	for i := range 12 {
		counts.Actions = append(counts.Actions, ActionTally{Action: string(rune('a' + i)), Count: int64(100 - i)})
	}
	r := BuildReport("daily", Period{}, counts, time.Now())
	if len(r.TopActions) != 10 || len(r.Summary.ActionBreakdown) != 12 || r.TopActions[9].Action != "j" {
		t.Fatalf("topActions %+v, breakdown %d", r.TopActions, len(r.Summary.ActionBreakdown))
	}
}

func TestBuildReportEmpty(t *testing.T) {
	r := BuildReport("daily", Period{}, ReportCounts{}, time.Now())
	body, _ := json.Marshal(r)
	for _, s := range []string{
		`"summary":{"total":0,"successful":0,"failed":0,"successRate":0,"actionBreakdown":[]}`,
		`"topUsers":[]`, `"topActions":[]`, `"topResources":[]`, `"failureAnalysis":[]`,
	} {
		if !strings.Contains(string(body), s) {
			t.Errorf("JSON lacks %s:\n%s", s, body)
		}
	}
}

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		part, whole int64
		want        float64
	}{{0, 0, 0}, {0, 5, 0}, {5, 5, 100}, {1, 3, 33.33}, {2, 3, 66.67}, {1, 8, 12.5}, {999999, 1000000, 100}, {1, 200000, 0}} {
		if got := percent(c.part, c.whole); got != c.want {
			t.Errorf("percent(%d, %d) = %v, want %v", c.part, c.whole, got, c.want)
		}
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
