package audit

import "testing"

func TestEventID(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{`{"id":"evt-1","action":"x"}`, "evt-1"},
		{` {"action":"x","id":"evt-2"} `, "evt-2"},
		{`{"action":"x"}`, "AUDIT:7"},
		{`{"id":null}`, "AUDIT:7"},
		{`{"id":""}`, "AUDIT:7"},
		{`{"id":42}`, ""},
		{`[{"id":"a"}]`, ""},
		{`not json`, ""},
		{`{"id":"evt-3"`, "evt-3"},
		{`{"id":"evt-4","action":`, "evt-4"},
		{`{"action":"x","id":"evt-5","details":{"a":[1,2,`, "evt-5"},
		{`{"action":"x",`, ""},
		{`{"action":"x"`, ""},
		{`{"details":{"id":"inner"},"action":"x"}`, "AUDIT:7"},
		{``, ""},
	} {
		if got := EventID([]byte(c.data), "AUDIT:7"); got != c.want {
			t.Errorf("EventID(%s) = %q, want %q", c.data, got, c.want)
		}
	}
}
