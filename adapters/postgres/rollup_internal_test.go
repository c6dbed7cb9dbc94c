package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSplitPeriod(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, "2026-05-"+s+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	str := func(spans []span) string {
		out := ""
		for _, s := range spans {
			out += fmt.Sprintf("[%s,%s)", s.from.Format("02T15:04:05.999999"), s.to.Format("02T15:04:05.999999"))
		}
		return out
	}
	for _, c := range []struct {
		name                 string
		start, end           string
		spans                []string // "from/to"
		fresh                []string
		spanned, rolled, raw string
	}{
		{"nothing fresh", "10T00:30:00", "10T05:00:00", nil, nil, "", "", "[10T00:30:00,10T05:00:00)"},
		{"all fresh", "10T01:00:00", "10T03:00:00", nil, []string{"10T01:00:00", "10T02:00:00"}, "", "[10T01:00:00,10T03:00:00)", ""},
		{"half-hour edges", "10T00:30:00", "10T04:30:00", nil, []string{"10T01:00:00", "10T02:00:00", "10T03:00:00"},
			"", "[10T01:00:00,10T04:00:00)", "[10T00:30:00,10T01:00:00)[10T04:00:00,10T04:30:00)"},
		{"stale hole", "10T00:00:00", "10T05:00:00", nil, []string{"10T00:00:00", "10T01:00:00", "10T03:00:00"},
			"", "[10T00:00:00,10T02:00:00)[10T03:00:00,10T04:00:00)", "[10T02:00:00,10T03:00:00)[10T04:00:00,10T05:00:00)"},
		{"microsecond edges", "10T00:59:59.999999", "10T02:00:00.000001", nil, []string{"10T01:00:00"},
			"", "[10T01:00:00,10T02:00:00)", "[10T00:59:59.999999,10T01:00:00)[10T02:00:00,10T02:00:00.000001)"},
		{"days and hours around them (Berlin)", "09T22:00:00", "12T22:00:00",
			[]string{"10T00:00:00/11T00:00:00", "11T00:00:00/12T00:00:00"},
			[]string{"09T22:00:00", "10T05:00:00", "11T23:00:00", "12T00:00:00", "12T01:00:00", "12T03:00:00"},
			"[10T00:00:00,12T00:00:00)", "[09T22:00:00,09T23:00:00)[12T00:00:00,12T02:00:00)[12T03:00:00,12T04:00:00)",
			"[09T23:00:00,10T00:00:00)[12T02:00:00,12T03:00:00)[12T04:00:00,12T22:00:00)"},
	} {
		var spans []span
		for _, s := range c.spans {
			from, to, _ := strings.Cut(s, "/")
			spans = append(spans, span{at(from), at(to)})
		}
		var fresh []time.Time
		for _, f := range c.fresh {
			fresh = append(fresh, at(f))
		}
		spanned, rolled, raw := splitPeriod(at(c.start), at(c.end), spans, fresh)
		if str(spanned) != c.spanned || str(rolled) != c.rolled || str(raw) != c.raw {
			t.Errorf("%s:\n got  spanned %s rolled %s raw %s\n want spanned %s rolled %s raw %s",
				c.name, str(spanned), str(rolled), str(raw), c.spanned, c.rolled, c.raw)
		}
	}
	if p := rangePredicate("hour", nil); p != "false" {
		t.Errorf("no spans: %q", p)
	}
}

func TestPickSpansPrefersLongerOnes(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 6, d, 0, 0, 0, 0, time.UTC) }
	fresh := []spanRow{
		{1, day(1), day(2)}, {2, day(2), day(3)},
		{3, day(1), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)}, // June
		{4, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC)},
	}
	ids, picked := pickSpans(fresh)
	july := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	if fmt.Sprint(ids) != "[3 4]" || len(picked) != 2 || !picked[0].from.Equal(day(1)) || !picked[0].to.Equal(july) || !picked[1].from.Equal(july) {
		t.Fatalf("picked %v %v", ids, picked)
	}
}
