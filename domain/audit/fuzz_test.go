package audit_test

// Native Go fuzz targets over the decoders of everything auditq accepts
// from the outside: audit.log events, audit.bulk envelopes and
// audit.cleanup jobs. Each holds the decoder to invariants rather than
// to exact outputs: it never panics; whatever it accepts satisfies every
// documented rule (docs/contract.md, "Event fields"), checked here independently
// with encoding/json; whatever it rejects is a *ValidationError naming a
// field. "go tool task fuzz" runs each for a bounded number of inputs; the seeds below
// (and any crasher saved under testdata/fuzz) run on every "go test".

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auditq/auditq/domain/audit"
)

var fuzzReceived = time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)

// seedEvents are valid, boundary and hostile event payloads.
var seedEvents = []string{
	`{"id":"e1","action":"user.login","resourceType":"user","resourceId":"42"}`,
	`{"id":"e2","userId":7,"action":"a","resourceType":"t","resourceId":0,"details":{"a":[1,2,{"b":null}],"c":"ü"},` +
		`"ipAddress":"2001:DB8::1","userAgent":"UA","sessionId":"s","requestId":"r","success":false,` +
		`"errorMessage":"line\nbreak\ttab","timestamp":"2026-11-24T13:45:00.1234567+01:00"}`,
	`{"action":"a","resourceType":"t","resourceId":"r","userId":null,"details":null,"ipAddress":"","timestamp":null}`,
	`{"action":"a","action":"b","resourceType":"t","resourceId":"r"}`,
	`{"action":"a\u0000","resourceType":"t","resourceId":"r"}`,
	`{"action":"a\u0007","resourceType":"t","resourceId":"r"}`,
	`{"action":"a","resourceType":"t","resourceId":"r","details":{"k":"\u0000"}}`,
	`{"action":"a","resourceType":"t","resourceId":"r","details":{"\u0000":1}}`,
	`{"action":"a","resourceType":"t","resourceId":"r","details":[1]}`,
	`{"action":"a","resourceType":"t","resourceId":"r","details":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`,
	`{"action":"a","resourceType":"t","resourceId":123456789012345678901234567890123456789012}`,
	`{"action":"a","resourceType":"t","resourceId":1e3}`,
	`{"action":"a","resourceType":"t","resourceId":-0}`,
	`{"action":"a","resourceType":"t","resourceId":"r","details":{"n":1e400}}`,
	`{"action":"a","resourceType":"t","resourceId":"r","details":{"n":12345678901234567890}}`,
	`{"action":"a","resourceType":"t","resourceId":"r","timestamp":"1969-12-31T23:59:59Z"}`,
	`{"action":"a","resourceType":"t","resourceId":"r","timestamp":"9999-12-31T23:59:59Z"}`,
	`{"action":"a","resourceType":"t","resourceId":"r","timestamp":"2026-11-24T13:00:00.123456999Z"}`,
	`{"action":"a","resourceType":"t","resourceId":"r","timestamp":1700000000}`,
	`{"action":"a","resourceType":"t","resourceId":"r","ipAddress":"fe80::1%eth0"}`,
	`{"action":"a","resourceType":"t","resourceId":"r","ipAddress":"::ffff:192.0.2.1"}`,
	`{"action":"'; DROP TABLE audit_logs; --","resourceType":"t","resourceId":"1 OR 1=1"}`,
	`{"action":"a","resourceType":"t","resourceId":"r","success":"true"}`,
	`{"action":"a","resourceType":"t","resourceId":"r","unknown":1}`,
	`{"action":"a","resourceType":"t","resourceId":"r"} trailing`,
	`{"action":"a","resourceType":"t","resourceId":"r"`,
	"{\"action\":\"a\xff\",\"resourceType\":\"t\",\"resourceId\":\"r\"}",
	`[{"action":"a"}]`, `42`, `"x"`, `null`, ``, ` `, `{}`, `{"":1}`,
	`{"action":"\ud800","resourceType":"t","resourceId":"r"}`,
	`{"action":"` + strings.Repeat("é", 257) + `","resourceType":"t","resourceId":"r"}`,
}

// FuzzDecodeEvent: DecodeEvent never panics, accepts only events that
// satisfy every rule, and rejects with a *ValidationError naming a field.
// The fallback id (the message's Nats-Msg-Id) is fuzzed too: any header
// value can arrive there.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range seedEvents {
		f.Add([]byte(s), "AUDIT:7")
	}
	f.Add([]byte(`{"action":"a","resourceType":"t","resourceId":"r"}`), "")
	f.Add([]byte(`{"action":"a","resourceType":"t","resourceId":"r"}`), "msg\x01id")
	f.Add([]byte(`{"action":"a","resourceType":"t","resourceId":"r"}`), "msg\xffid")
	f.Add([]byte(`{"action":"a","resourceType":"t","resourceId":"r"}`), "msg\x00id")
	f.Add([]byte(`{"action":"a","resourceType":"t","resourceId":"r"}`), strings.Repeat("m", 300))
	f.Fuzz(func(t *testing.T, data []byte, fallback string) {
		r := audit.Receipt{ReceivedAt: fuzzReceived, FallbackID: fallback}
		ev, err := audit.DecodeEvent(data, r)
		shared, sharedErr := audit.DecodeEventShared(slices.Clone(data), r)
		if (err == nil) != (sharedErr == nil) || (err != nil && err.Error() != sharedErr.Error()) || !reflect.DeepEqual(ev, shared) {
			t.Fatalf("DecodeEventShared differs: %+v, %v / %+v, %v", shared, sharedErr, ev, err)
		}
		if err != nil {
			checkRejection(t, err)
			return
		}
		checkAccepted(t, data, ev, r)
		again, err := audit.DecodeEvent(data, r)
		if err != nil || !reflect.DeepEqual(ev, again) {
			t.Fatalf("decoding twice differs: %+v / %+v, %v", ev, again, err)
		}
	})
}

// FuzzDecodeBulk: DecodeBulk never panics; an accepted envelope accounts
// for every item (events + rejections = items, at most the limit), each
// rejection names its own index, and each accepted event satisfies the
// rules with the fallback id "<message id>:<index>".
func FuzzDecodeBulk(f *testing.F) {
	for _, s := range seedEvents {
		f.Add([]byte(`{"events":[`+s+`]}`), 3)
	}
	f.Add([]byte(`{"events":[{"id":"a","action":"x","resourceType":"t","resourceId":"r"},{"action":"x"},"nope",`+
		`{"id":"a","action":"x","resourceType":"t","resourceId":"r"},{"action":"y","resourceType":"t","resourceId":"r"}]}`), 10)
	f.Add([]byte(`{"events":[]}`), 3)
	f.Add([]byte(`{"events":null}`), 3)
	f.Add([]byte(`{"events":{}}`), 3)
	f.Add([]byte(`{"events":[{},{},{},{}]}`), 3)
	f.Add([]byte(`{"events":[1,2],"events":[3]}`), 3)
	f.Add([]byte(`{"events":[{}],"other":1}`), 3)
	f.Add([]byte(`[]`), 3)
	f.Add([]byte(`{"events":[ {"action":"a","resourceType":"t","resourceId":"r"} , [] , null ]}`), 3)
	f.Fuzz(func(t *testing.T, data []byte, maxEvents int) {
		maxEvents = 1 + abs(maxEvents%50)
		r := audit.Receipt{ReceivedAt: fuzzReceived, FallbackID: "AUDIT:9"}
		events, rejected, err := audit.DecodeBulk(data, maxEvents, r)
		if err != nil {
			checkRejection(t, err)
			if len(events) > 0 || len(rejected) > 0 {
				t.Fatalf("envelope rejected (%v) but %d events and %d rejections returned", err, len(events), len(rejected))
			}
			return
		}
		var env struct{ Events []json.RawMessage }
		if !json.Valid(data) || json.Unmarshal(data, &env) != nil {
			t.Fatalf("accepted an envelope encoding/json cannot read: %q", data)
		}
		items := env.Events
		if len(items) == 0 || len(items) > maxEvents {
			t.Fatalf("accepted %d items with a limit of %d", len(items), maxEvents)
		}
		if len(events)+len(rejected) != len(items) {
			t.Fatalf("%d events + %d rejections != %d items", len(events), len(rejected), len(items))
		}
		isRejected := map[int]bool{}
		last := -1
		for _, rej := range rejected {
			if rej.Index <= last || rej.Index >= len(items) {
				t.Fatalf("rejection indexes out of order or range: %+v", rejected)
			}
			last = rej.Index
			isRejected[rej.Index] = true
			if prefix := fmt.Sprintf("events[%d]", rej.Index); !strings.HasPrefix(rej.Error, prefix) {
				t.Fatalf("rejection %q does not name %s", rej.Error, prefix)
			}
			if !bytes.Equal(bytes.TrimSpace(rej.Raw), bytes.TrimSpace(items[rej.Index])) {
				t.Fatalf("rejection %d keeps %q, not the event as sent %q", rej.Index, rej.Raw, items[rej.Index])
			}
		}
		k := 0
		for i, item := range items {
			if isRejected[i] {
				continue
			}
			ri := r
			ri.FallbackID = fmt.Sprintf("%s:%d", r.FallbackID, i)
			checkAccepted(t, item, events[k], ri)
			k++
		}
	})
}

// FuzzDecodeCleanupRequest: DecodeCleanupRequest never panics, accepts
// exactly one of beforeDate and retentionDays within range and a clean
// list of excluded actions, and rejects with a *ValidationError.
func FuzzDecodeCleanupRequest(f *testing.F) {
	for _, s := range []string{
		`{"retentionDays":90}`,
		`{"retentionDays":90,"excludeActions":["security.breach","admin.access"],"dryRun":true}`,
		`{"beforeDate":"2025-01-01T00:00:00Z","excludeActions":null,"dryRun":null}`,
		`{"beforeDate":"2025-01-01T00:00:00Z","retentionDays":90}`,
		`{}`, `[]`, `"x"`, `90`, `null`,
		`{"retentionDays":"90"}`, `{"retentionDays":90.5}`, `{"retentionDays":-1}`, `{"retentionDays":1e3}`,
		`{"retentionDays":99999999999999999999999}`, `{"retentionDays":true}`, `{"retentionDays":[90]}`,
		`{"beforeDate":20250101}`, `{"beforeDate":"yesterday"}`, `{"beforeDate":"0001-01-01T00:00:00Z"}`,
		`{"retentionDays":90,"excludeActions":"admin"}`, `{"retentionDays":90,"excludeActions":[1]}`,
		`{"retentionDays":90,"excludeActions":[""]}`, `{"retentionDays":90,"excludeActions":["a","a"]}`,
		`{"retentionDays":90,"excludeActions":["a\u0000"]}`, `{"retentionDays":90,"dryRun":"yes"}`,
		`{"retentionDays":90,"retentionDays":91}`, `{"retentionDays":90,"force":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := audit.DecodeCleanupRequest(data)
		if err != nil {
			checkRejection(t, err)
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if req.HasRetentionDays {
			if req.RetentionDays < 0 || req.RetentionDays > audit.MaxRetentionDays || !req.BeforeDate.IsZero() {
				t.Fatalf("retentionDays out of range or with a beforeDate: %+v", req)
			}
		} else {
			if req.BeforeDate.Location() != time.UTC || req.BeforeDate.Nanosecond()%1000 != 0 {
				t.Fatalf("beforeDate not normalized: %v", req.BeforeDate)
			}
			if !bytes.Contains(data, []byte("beforeDate")) && !bytes.Contains(data, []byte(`\u`)) {
				t.Fatalf("accepted without retentionDays or beforeDate: %q", data)
			}
		}
		if req.ExcludeActions == nil || len(req.ExcludeActions) > audit.MaxExcludeActions {
			t.Fatalf("excludeActions nil or too long: %d", len(req.ExcludeActions))
		}
		seen := map[string]bool{}
		for _, a := range req.ExcludeActions {
			if a == "" || seen[a] || !utf8.ValidString(a) || utf8.RuneCountInString(a) > audit.MaxNameLen || hasControl(a, false) {
				t.Fatalf("bad excluded action %q in %q", a, req.ExcludeActions)
			}
			seen[a] = true
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// checkRejection: a rejection is a *ValidationError naming a field.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	var v *audit.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("rejection is %T, not a *audit.ValidationError: %v", err, err)
	}
	if v.Field == "" || v.Rule == "" || err.Error() != v.Field+": "+v.Rule {
		t.Fatalf("rejection does not name a field and a rule: %q", err)
	}
}

var eventFields = map[string]bool{
	"id": true, "userId": true, "action": true, "resourceType": true, "resourceId": true, "details": true,
	"ipAddress": true, "userAgent": true, "sessionId": true, "requestId": true, "success": true,
	"errorMessage": true, "timestamp": true,
}

// checkAccepted holds an accepted event to every documented rule, reading
// data again with encoding/json.
func checkAccepted(t *testing.T, data []byte, ev audit.Event, r audit.Receipt) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("accepted %q as %+v: %s", data, ev, fmt.Sprintf(format, args...))
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		fail("not valid UTF-8 JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		fail("not a JSON object")
	}
	raw := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			fail("%v", err)
		}
		key := tok.(string)
		if _, dup := raw[key]; dup {
			fail("repeated key %q", key)
		}
		if !eventFields[key] {
			fail("unknown field %q", key)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			fail("%v", err)
		}
		raw[key] = v
	}
	str := func(key string) (string, bool) {
		v, ok := raw[key]
		if !ok || string(v) == "null" {
			return "", false
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			if key == "userId" || key == "resourceId" {
				if !isInteger(v) {
					fail("%s %s is neither a string nor an integer", key, v)
				}
				return string(v), true
			}
			fail("%s is not a string: %s", key, v)
		}
		return s, true
	}
	// Text fields: what was sent (null and "" mean absent), within limits,
	// no NUL, no control characters except line breaks and tabs in
	// errorMessage.
	for _, f := range []struct {
		key, got  string
		max       int
		multiLine bool
	}{
		{"userId", ev.UserID, audit.MaxIDLen, false},
		{"action", ev.Action, audit.MaxNameLen, false},
		{"resourceType", ev.ResourceType, audit.MaxNameLen, false},
		{"resourceId", ev.ResourceID, audit.MaxIDLen, false},
		{"userAgent", ev.UserAgent, audit.MaxUserAgentLen, false},
		{"sessionId", ev.SessionID, audit.MaxIDLen, false},
		{"requestId", ev.RequestID, audit.MaxIDLen, false},
		{"errorMessage", ev.ErrorMessage, audit.MaxErrorMessageLen, true},
	} {
		sent, _ := str(f.key)
		if f.got != sent {
			fail("%s = %q, sent %q", f.key, f.got, sent)
		}
		if utf8.RuneCountInString(f.got) > f.max || !utf8.ValidString(f.got) || hasControl(f.got, f.multiLine) {
			fail("%s %q breaks its rule", f.key, f.got)
		}
	}
	for _, f := range []struct{ key, got string }{{"action", ev.Action}, {"resourceType", ev.ResourceType}, {"resourceId", ev.ResourceID}} {
		if f.got == "" {
			fail("required %s is empty", f.key)
		}
	}
	if id, ok := str("id"); ok && id != "" {
		if ev.ID != id {
			fail("id = %q, sent %q", ev.ID, id)
		}
	} else if ev.ID != r.FallbackID {
		fail("id = %q, want the fallback %q", ev.ID, r.FallbackID)
	}
	if ev.ID == "" || utf8.RuneCountInString(ev.ID) > audit.MaxIDLen || !utf8.ValidString(ev.ID) || hasControl(ev.ID, false) {
		fail("id %q breaks its rule", ev.ID)
	}
	if ev.IPAddress != "" {
		a, err := netip.ParseAddr(ev.IPAddress)
		if err != nil || a.Zone() != "" || a.String() != ev.IPAddress {
			fail("ipAddress %q is not a canonical address without zone", ev.IPAddress)
		}
	} else if s, _ := str("ipAddress"); s != "" {
		fail("ipAddress %q dropped", s)
	}
	if v, ok := raw["success"]; ok && string(v) != "null" && string(v) != fmt.Sprint(ev.Success) {
		fail("success = %v, sent %s", ev.Success, v)
	} else if !ok && !ev.Success {
		fail("success defaults to true")
	}
	if ev.Details != nil {
		checkDetails(t, fail, ev.Details)
	} else if v, ok := raw["details"]; ok && string(v) != "null" {
		fail("details %s dropped", v)
	}
	received := audit.Normalize(r.ReceivedAt)
	skew := r.FutureSkew
	if skew == 0 {
		skew = audit.DefaultFutureSkew
	}
	if !ev.ReceivedAt.Equal(received) || ev.ReceivedAt.Location() != time.UTC {
		fail("receivedAt %v, want %v", ev.ReceivedAt, received)
	}
	if ev.OccurredAt.Location() != time.UTC || ev.OccurredAt.Nanosecond()%1000 != 0 ||
		ev.OccurredAt.Before(audit.Earliest) || ev.OccurredAt.After(received.Add(skew)) {
		fail("occurredAt %v breaks its rule", ev.OccurredAt)
	}
	if err := ev.CheckNoNUL(); err != nil {
		fail("%v", err)
	}
}

// checkDetails: a JSON object within the size and depth limits whose keys
// and strings hold no NUL.
func checkDetails(t *testing.T, fail func(string, ...any), d json.RawMessage) {
	t.Helper()
	if len(d) > audit.MaxDetailsBytes || !json.Valid(d) || bytes.TrimSpace(d)[0] != '{' {
		fail("details %q not an object within %d bytes", d, audit.MaxDetailsBytes)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(d))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		fail("details: %v", err)
	}
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		switch x := v.(type) {
		case map[string]any:
			if depth > audit.MaxDetailsDepth {
				fail("details nested %d levels", depth)
			}
			for k, e := range x {
				if strings.ContainsRune(k, 0) {
					fail("details key with NUL")
				}
				walk(e, depth+1)
			}
		case []any:
			if depth > audit.MaxDetailsDepth {
				fail("details nested %d levels", depth)
			}
			for _, e := range x {
				walk(e, depth+1)
			}
		case string:
			if strings.ContainsRune(x, 0) {
				fail("details string with NUL")
			}
		}
	}
	walk(v, 1)
}

func isInteger(v []byte) bool {
	s := string(v)
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// hasControl reports a control character (C0 or DEL); multi-line text may
// hold tabs and line breaks.
func hasControl(s string, multiLine bool) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			if multiLine && (c == '\n' || c == '\r' || c == '\t') {
				continue
			}
			return true
		}
	}
	return false
}
