package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var received = time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)

func receipt() Receipt { return Receipt{ReceivedAt: received, FallbackID: "AUDIT:7"} }

func TestDecodeEventValid(t *testing.T) {
	ev, err := DecodeEvent([]byte(`{
		"id": "evt-1", "userId": "u1", "action": "guild.update", "resourceType": "guild",
		"resourceId": "g1", "details": {"changed": ["name"], "n": 1.5}, "ipAddress": "2001:DB8::1",
		"userAgent": "Mozilla/5.0", "sessionId": "s1", "requestId": "r1", "success": false,
		"errorMessage": "denied\nby policy", "timestamp": "2026-11-24T13:45:00.1234567+01:00"}`), receipt())
	if err != nil {
		t.Fatal(err)
	}
	want := Event{
		ID: "evt-1", UserID: "u1", Action: "guild.update", ResourceType: "guild", ResourceID: "g1",
		Details: []byte(`{"changed": ["name"], "n": 1.5}`), IPAddress: "2001:db8::1", UserAgent: "Mozilla/5.0",
		SessionID: "s1", RequestID: "r1", Success: false, ErrorMessage: "denied\nby policy",
		OccurredAt: time.Date(2026, 11, 24, 12, 45, 0, 123456000, time.UTC),
		ReceivedAt: time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC),
	}
	canon, err := ev.AppendCanonicalDetails(nil)
	if err != nil || string(canon) != `{"changed":["name"],"n":1.5}` {
		t.Fatalf("canonical details = %s, %v", canon, err)
	}
	ev.canonical, ev.canonicalOf = nil, nil // compared on their own above
	if fmt.Sprint(ev) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", ev, want)
	}
}

// The canonical details DecodeEvent keeps are used only while Details is
// the slice they were computed from.
func TestCanonicalDetailsFollowDetails(t *testing.T) {
	ev, err := DecodeEvent([]byte(`{"action":"a","resourceType":"t","resourceId":"r","details":{"b": 1.0, "a": "x"}}`), receipt())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		details json.RawMessage
		want    string
	}{
		{ev.Details, `{"a":"x","b":1}`},
		{json.RawMessage(`{"z": [1e2], "y": null}`), `{"y":null,"z":[100]}`},
		{ev.Details[:len(ev.Details):len(ev.Details)], `{"a":"x","b":1}`},
		{nil, ``},
	} {
		e := ev
		e.Details = c.details
		got, err := e.AppendCanonicalDetails([]byte("<"))
		if err != nil || string(got) != "<"+c.want {
			t.Errorf("details %s: canonical %s, %v; want %s", c.details, got, err, c.want)
		}
	}
}

func TestDecodeEventDefaults(t *testing.T) {
	ev, err := DecodeEvent([]byte(`{"action":"login","resourceType":"user","resourceId":0,"userId":null,"ipAddress":"","details":null}`), receipt())
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "AUDIT:7" {
		t.Errorf("id = %q, want the fallback AUDIT:7", ev.ID)
	}
	if !ev.Success {
		t.Error("success should default to true")
	}
	if ev.ResourceID != "0" {
		t.Errorf("resourceId 0 must be accepted as \"0\", got %q", ev.ResourceID)
	}
	if !ev.IsSystem() || ev.IPAddress != "" || ev.Details != nil {
		t.Errorf("null/empty optional fields must be absent: %+v", ev)
	}
	if !ev.OccurredAt.Equal(Normalize(received)) || !ev.ReceivedAt.Equal(Normalize(received)) {
		t.Errorf("times: occurred %v received %v, want both %v", ev.OccurredAt, ev.ReceivedAt, Normalize(received))
	}
}

func TestDecodeEventRejects(t *testing.T) {
	base := `"action":"a","resourceType":"t","resourceId":"r"`
	long := func(n int) string { return strings.Repeat("x", n) }
	deep := strings.Repeat(`{"a":`, MaxDetailsDepth+1) + "1" + strings.Repeat("}", MaxDetailsDepth+1)
	cases := []struct {
		name, in, field, rule string
	}{
		{"not json", `{not json`, "(message)", "not valid JSON"},
		{"empty", ``, "(message)", "must be a JSON object"},
		{"array", `[1,2]`, "(message)", "must be a JSON object, got an array"},
		{"number", `42`, "(message)", "must be a JSON object, got a number"},
		{"string", `"x"`, "(message)", "must be a JSON object, got a string"},
		{"null", `null`, "(message)", "must be a JSON object, got null"},
		{"trailing data", `{` + base + `} {}`, "(message)", "has data after"},
		{"truncated", `{` + base, "(message)", "not valid JSON"},
		{"invalid utf-8", "{" + base + ",\"userAgent\":\"\xff\xfe\"}", "userAgent", "not valid UTF-8"},
		{"unknown field", `{` + base + `,"tenant":"x"}`, "tenant", "unknown field"},
		{"duplicate key", `{` + base + `,"action":"b"}`, "action", "appears more than once"},
		{"missing action", `{"resourceType":"t","resourceId":"r"}`, "action", "is required"},
		{"empty action", `{"action":"","resourceType":"t","resourceId":"r"}`, "action", "is required"},
		{"missing resourceType", `{"action":"a","resourceId":"r"}`, "resourceType", "is required"},
		{"missing resourceId", `{"action":"a","resourceType":"t"}`, "resourceId", "is required"},
		{"action number", `{"action":5,"resourceType":"t","resourceId":"r"}`, "action", "must be a string, got a number"},
		{"action object", `{"action":{},"resourceType":"t","resourceId":"r"}`, "action", "must be a string, got an object"},
		{"action too long", `{"action":"` + long(MaxNameLen+1) + `","resourceType":"t","resourceId":"r"}`, "action", "more than the limit of 256"},
		{"action with NUL", `{"action":"a\u0000b","resourceType":"t","resourceId":"r"}`, "action", "NUL"},
		{"action with newline", `{"action":"a\nb","resourceType":"t","resourceId":"r"}`, "action", "control characters"},
		{"resourceId float", `{"action":"a","resourceType":"t","resourceId":1.5}`, "resourceId", "string or an integer"},
		{"resourceId bool", `{"action":"a","resourceType":"t","resourceId":true}`, "resourceId", "must be a string, got a boolean"},
		{"resourceId huge number", `{"action":"a","resourceType":"t","resourceId":` + strings.Repeat("9", 41) + `}`, "resourceId", "at most 40 digits"},
		{"userId array", `{` + base + `,"userId":["u"]}`, "userId", "must be a string, got an array"},
		{"userId too long", `{` + base + `,"userId":"` + long(MaxIDLen+1) + `"}`, "userId", "limit of 256"},
		{"id too long", `{` + base + `,"id":"` + long(MaxIDLen+1) + `"}`, "id", "limit of 256"},
		{"id number", `{` + base + `,"id":7}`, "id", "must be a string"},
		{"details array", `{` + base + `,"details":[1]}`, "details", "must be a JSON object, got an array"},
		{"details string", `{` + base + `,"details":"x"}`, "details", "must be a JSON object, got a string"},
		{"details too big", `{` + base + `,"details":{"a":"` + long(MaxDetailsBytes) + `"}}`, "details", "more than the limit of 65536"},
		{"details too deep", `{` + base + `,"details":` + deep + `}`, "details", "nested more than 32"},
		{"details NUL", `{` + base + `,"details":{"a":"x\u0000"}}`, "details", "NUL"},
		{"details NUL in key", `{` + base + `,"details":{"\u0000":1}}`, "details", "NUL"},
		{"details repeated key", `{` + base + `,"details":{"a":{"b":1,"b":2}}}`, "details", `key "b" appears more than once`},
		{"details number overflows a double", `{` + base + `,"details":{"n":1e400}}`, "details", "IEEE 754 double"},
		{"details number more precise than a double", `{` + base + `,"details":{"n":12345678901234567890}}`, "details", "nearest double is 12345678901234567000"},
		{"details number underflows a double", `{` + base + `,"details":{"n":[1e-400]}}`, "details", "IEEE 754 double"},
		{"ip not an ip", `{` + base + `,"ipAddress":"1.2.3"}`, "ipAddress", "IPv4 or IPv6"},
		{"ip with zone", `{` + base + `,"ipAddress":"fe80::1%eth0"}`, "ipAddress", "without zone"},
		{"ip number", `{` + base + `,"ipAddress":1234}`, "ipAddress", "must be a string"},
		{"userAgent too long", `{` + base + `,"userAgent":"` + long(MaxUserAgentLen+1) + `"}`, "userAgent", "limit of 1024"},
		{"sessionId object", `{` + base + `,"sessionId":{}}`, "sessionId", "must be a string"},
		{"requestId control", `{` + base + `,"requestId":"a\u0007"}`, "requestId", "control characters"},
		{"success string", `{` + base + `,"success":"true"}`, "success", "must be true or false, got a string"},
		{"success null", `{` + base + `,"success":null}`, "success", "must be true or false, got null"},
		{"success number", `{` + base + `,"success":1}`, "success", "must be true or false"},
		{"errorMessage too long", `{` + base + `,"errorMessage":"` + long(MaxErrorMessageLen+1) + `"}`, "errorMessage", "limit of 4096"},
		{"errorMessage NUL", `{` + base + `,"errorMessage":"\u0000"}`, "errorMessage", "NUL"},
		{"timestamp number", `{` + base + `,"timestamp":1700000000}`, "timestamp", "RFC 3339 string"},
		{"timestamp garbage", `{` + base + `,"timestamp":"yesterday"}`, "timestamp", "RFC 3339 time"},
		{"timestamp no zone", `{` + base + `,"timestamp":"2026-11-24T10:00:00"}`, "timestamp", "RFC 3339 time"},
		{"timestamp before 1970", `{` + base + `,"timestamp":"1969-12-31T23:59:59Z"}`, "timestamp", "before 1970"},
		{"timestamp far future", `{` + base + `,"timestamp":"2999-01-01T00:00:00Z"}`, "timestamp", "after the time it was received"},
		{"timestamp just too late", `{` + base + `,"timestamp":"2026-11-24T13:00:01Z"}`, "timestamp", "after the time it was received"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(c.in), receipt())
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			if ve.Field != c.field || !strings.Contains(ve.Rule, c.rule) {
				t.Fatalf("got %q, want field %q with rule containing %q", err, c.field, c.rule)
			}
			if !IsPermanent(err) {
				t.Fatal("validation errors must be permanent")
			}
		})
	}
}

func TestDecodeEventAcceptsLimits(t *testing.T) {
	long := strings.Repeat("é", MaxNameLen) // limits count characters, not bytes
	in := `{"action":"` + long + `","resourceType":"t","resourceId":"r","timestamp":"2026-11-24T13:00:00Z","errorMessage":"a\tb\r\nc"}`
	if _, err := DecodeEvent([]byte(in), receipt()); err != nil {
		t.Fatal(err)
	}
	// An escaped backslash followed by u0000 is text, not a NUL.
	if _, err := DecodeEvent([]byte(`{"action":"a","resourceType":"t","resourceId":"r","details":{"p":"C:\\u0000"}}`), receipt()); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeEventWithoutAnyID(t *testing.T) {
	_, err := DecodeEvent([]byte(`{"action":"a","resourceType":"t","resourceId":"r"}`), Receipt{ReceivedAt: received})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "id" {
		t.Fatalf("got %v, want an id error", err)
	}
}

func TestDecodeBulk(t *testing.T) {
	in := `{"events":[
		{"id":"a","action":"x","resourceType":"t","resourceId":"1"},
		{"action":"","resourceType":"t","resourceId":"2"},
		{"action":"y","resourceType":"t","resourceId":"3"},
		7
	]}`
	events, rejected, err := DecodeBulk([]byte(in), 10, receipt())
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].ID != "a" || events[1].ID != "AUDIT:7:2" {
		t.Fatalf("events = %+v", events)
	}
	want := []string{"1 events[1].action: is required: a non-empty string", "3 events[3]: must be a JSON object, got a number"}
	if len(rejected) != 2 {
		t.Fatalf("rejected = %+v", rejected)
	}
	for i, r := range rejected {
		if got := fmt.Sprintf("%d %s", r.Index, r.Error); got != want[i] {
			t.Errorf("rejection %d = %q, want %q", i, got, want[i])
		}
		if len(r.Raw) == 0 {
			t.Errorf("rejection %d lost the raw event", i)
		}
	}
}

func TestDecodeBulkEnvelope(t *testing.T) {
	ev := `{"action":"x","resourceType":"t","resourceId":"1"}`
	cases := []struct{ name, in, want string }{
		{"no events", `{}`, "events: is required"},
		{"events null", `{"events":null}`, "events: is required"},
		{"events object", `{"events":{}}`, "events: must be an array of events, got an object"},
		{"events empty", `{"events":[]}`, "events: must hold at least one event"},
		{"too many", `{"events":[` + ev + `,` + ev + `,` + ev + `]}`, "events: holds 3 events, more than the limit of 2"},
		{"unknown field", `{"events":[` + ev + `],"x":1}`, "x: unknown field"},
		{"array", `[` + ev + `]`, "(message): must be a JSON object, got an array"},
		{"bad json", `{"events":[`, "not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := DecodeBulk([]byte(c.in), 2, receipt())
			if err == nil || !strings.Contains(err.Error(), c.want) || !IsPermanent(err) {
				t.Fatalf("got %v, want a permanent error containing %q", err, c.want)
			}
		})
	}
}

// TestDecodeEventSharedKeepsThePayload: DecodeEventShared's strings are
// substrings of the payload itself, DecodeEvent's of a copy, and the two
// events are the same.
func TestDecodeEventSharedKeepsThePayload(t *testing.T) {
	in := []byte(`{"id":"e-1","userId":"u-1","action":"a.b","resourceType":"doc","resourceId":"d-1","userAgent":"ua","timestamp":"2026-11-24T10:00:00Z"}`)
	within := func(s string) bool {
		p, start := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(&in[0]))
		return p >= start && p < start+uintptr(len(in))
	}
	shared, err := DecodeEventShared(in, receipt())
	if err != nil {
		t.Fatal(err)
	}
	copied, err := DecodeEvent(in, receipt())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shared, copied) {
		t.Fatalf("DecodeEventShared = %+v, DecodeEvent = %+v", shared, copied)
	}
	for _, s := range []string{shared.ID, shared.UserID, shared.Action, shared.ResourceType, shared.ResourceID, shared.UserAgent} {
		if !within(s) {
			t.Errorf("DecodeEventShared: %q is a copy, not a substring of the payload", s)
		}
	}
	if within(copied.ID) {
		t.Errorf("DecodeEvent: %q shares the payload's bytes", copied.ID)
	}
}

// benchPayload is a typical event of about 400 bytes, as publishers send.
func benchPayload() []byte {
	return []byte(`{"id":"0b6f3c1e-6a43-4d0e-9a57-2b1f0c9e8d11","userId":"user-42","action":"guild.settings.update",
		"resourceType":"guild","resourceId":"g-1234567890","details":{"field":"name","old":"a","new":"b"},
		"ipAddress":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64)","sessionId":"s-1","requestId":"r-1",
		"success":true,"timestamp":"2026-11-24T11:59:59.123456Z"}`)
}

func BenchmarkDecodeEvent(b *testing.B) {
	in := benchPayload()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(in, receipt()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEventShared is BenchmarkDecodeEvent without the copy of
// the payload (the path of audit.log messages).
func BenchmarkDecodeEventShared(b *testing.B) {
	in := benchPayload()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEventShared(in, receipt()); err != nil {
			b.Fatal(err)
		}
	}
}
