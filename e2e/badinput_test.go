package e2e

// Scenario 7 (the half that runs through the service; the fuzz targets
// are in domain/audit/fuzz_test.go): hand-written hostile inputs published
// to the running service. Each must end in AUDIT_POISON with a reason
// naming the field (or, for a bulk event, in the bulk result), the worker
// must keep running, and valid events published around them must be
// stored untouched.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/service/servicetest"
)

// hostileMaxPayload is the broker limit of this test: above the default
// 8 MiB so that a 10 MB message reaches the service (with the default, the
// broker refuses it at publish time and the publisher gets the error).
const hostileMaxPayload = 16 << 20

type hostileInput struct {
	name    string
	subject string // default audit.log
	body    []byte
	msgID   string // Nats-Msg-Id; default "hostile-<index>"; "-" sends none
	field   string // the reason must start with field + ": "
}

func ev(fields string) []byte {
	return []byte(`{"action":"doc.read","resourceType":"doc","resourceId":"d1"` + fields + `}`)
}

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth) + `1` + strings.Repeat(`}`, depth)
}

func hostileInputs() []hostileInput {
	big := strings.Repeat("x", 10_000_000)
	manyEvents := `{"events":[` + strings.TrimSuffix(strings.Repeat(`{"action":"a","resourceType":"t","resourceId":"r"},`, 100_000), ",") + `]}`
	thousandOne := `{"events":[` + strings.TrimSuffix(strings.Repeat(`{"action":"a","resourceType":"t","resourceId":"r"},`, 1001), ",") + `]}`
	// An invalid message just under the broker's limit: its poison copy
	// (the payload plus the poison headers) is larger than the message.
	nearLimit := `{"action":"a","resourceType":"t","resourceId":"r","padding":"`
	nearLimit += strings.Repeat("p", hostileMaxPayload-len(nearLimit)-2-300) + `"}`
	return []hostileInput{
		// Not JSON, or not one JSON object.
		{name: "truncated JSON", body: []byte(`{"action":"a","resourceType":`), field: "resourceType"},
		{name: "trailing garbage", body: append(ev(""), " garbage"...), field: "(message)"},
		{name: "two objects", body: append(ev(""), ev("")...), field: "(message)"},
		{name: "single quotes", body: []byte(`{'action':'a'}`), field: "(message)"},
		{name: "comment", body: []byte(`{"action":"a" /* c */}`), field: "(message)"},
		{name: "trailing comma", body: []byte(`{"action":"a","resourceType":"t","resourceId":"r",}`), field: "(message)"},
		{name: "NaN", body: ev(`,"details":{"n":NaN}`), field: "details"},
		{name: "empty payload", body: []byte{}, field: "(message)"},
		{name: "whitespace payload", body: []byte(" \n\t "), field: "(message)"},
		{name: "array payload", body: []byte(`[` + string(ev("")) + `]`), field: "(message)"},
		{name: "number payload", body: []byte(`42`), field: "(message)"},
		{name: "string payload", body: []byte(`"user.login"`), field: "(message)"},
		{name: "null payload", body: []byte(`null`), field: "(message)"},
		{name: "invalid UTF-8", body: []byte("{\"action\":\"a\xff\xfe\",\"resourceType\":\"t\",\"resourceId\":\"r\"}"), field: "action"},
		{name: "raw NUL byte", body: []byte("{\"action\":\"a\x00b\",\"resourceType\":\"t\",\"resourceId\":\"r\"}"), field: "action"},
		{name: "raw control byte", body: []byte("{\"action\":\"a\x07\",\"resourceType\":\"t\",\"resourceId\":\"r\"}"), field: "action"},
		{name: "lone surrogate in details", body: ev(`,"details":{"k":"\ud800"}`), field: "details"},
		// Structure.
		{name: "duplicate key", body: []byte(`{"action":"a","action":"b","resourceType":"t","resourceId":"r"}`), field: "action"},
		{name: "duplicate key in details", body: ev(`,"details":{"k":1,"k":2}`), field: "details"},
		{name: "unknown field", body: ev(`,"actor":"u1"`), field: "actor"},
		{name: "empty key", body: ev(`,"":1`), field: `""`},
		{name: "key with control characters", body: ev(`,"a\u0001\r\nNats-Msg-Id: forged":1`), field: `"a\x01\r\nNats-Msg-Id: forged"`},
		{name: "5 MB unknown key", body: ev(`,"` + strings.Repeat("k", 5_000_000) + `":1`), field: `"` + strings.Repeat("k", 64) + `"...`},
		{name: "details nested 10,000 levels", body: ev(`,"details":` + nested(10_000)), field: "details"},
		{name: "details nested 33 levels", body: ev(`,"details":` + nested(33)), field: "details"},
		{name: "details an array", body: ev(`,"details":[1,2]`), field: "details"},
		{name: "details a string", body: ev(`,"details":"{}"`), field: "details"},
		// Sizes.
		{name: "10 MB details", body: ev(`,"details":{"blob":"` + big + `"}`), field: "details"},
		{name: "10 MB errorMessage", body: ev(`,"errorMessage":"` + big + `"`), field: "errorMessage"},
		{name: "invalid message just under the broker limit", body: []byte(nearLimit), field: "padding"},
		{name: "action 257 characters", body: []byte(`{"action":"` + strings.Repeat("é", 257) + `","resourceType":"t","resourceId":"r"}`), field: "action"},
		{name: "id 257 characters", body: ev(`,"id":"` + strings.Repeat("i", 257) + `"`), field: "id"},
		{name: "userAgent 1025 characters", body: ev(`,"userAgent":"` + strings.Repeat("u", 1025) + `"`), field: "userAgent"},
		// NUL and control characters.
		{name: "NUL escape in action", body: []byte(`{"action":"a\u0000","resourceType":"t","resourceId":"r"}`), field: "action"},
		{name: "NUL escape in details", body: ev(`,"details":{"k":"v\u0000"}`), field: "details"},
		{name: "NUL escape in a details key", body: ev(`,"details":{"\u0000":1}`), field: "details"},
		{name: "bell in resourceType", body: []byte(`{"action":"a","resourceType":"t\u0007","resourceId":"r"}`), field: "resourceType"},
		{name: "line break in userId", body: ev(`,"userId":"u1\nadmin"`), field: "userId"},
		{name: "escape sequence in sessionId", body: ev(`,"sessionId":"\u001b[31mred"`), field: "sessionId"},
		{name: "DEL in requestId", body: ev(`,"requestId":"r\u007f"`), field: "requestId"},
		// Types and numbers.
		{name: "action a number", body: []byte(`{"action":1,"resourceType":"t","resourceId":"r"}`), field: "action"},
		{name: "success a string", body: ev(`,"success":"true"`), field: "success"},
		{name: "userId an object", body: ev(`,"userId":{"id":1}`), field: "userId"},
		{name: "userId a boolean", body: ev(`,"userId":true`), field: "userId"},
		{name: "resourceId a float", body: []byte(`{"action":"a","resourceType":"t","resourceId":1.5}`), field: "resourceId"},
		{name: "resourceId 41 digits", body: []byte(`{"action":"a","resourceType":"t","resourceId":` + strings.Repeat("9", 41) + `}`), field: "resourceId"},
		{name: "resourceId in exponent form", body: []byte(`{"action":"a","resourceType":"t","resourceId":1e400}`), field: "resourceId"},
		{name: "huge number in details", body: ev(`,"details":{"n":1e400}`), field: "details"},
		{name: "inexact number in details", body: ev(`,"details":{"n":123456789012345678901234567890}`), field: "details"},
		// Missing required fields.
		{name: "no action", body: []byte(`{"resourceType":"t","resourceId":"r"}`), field: "action"},
		{name: "empty action", body: []byte(`{"action":"","resourceType":"t","resourceId":"r"}`), field: "action"},
		{name: "null resourceId", body: []byte(`{"action":"a","resourceType":"t","resourceId":null}`), field: "resourceId"},
		// Ids from the header.
		{name: "Nats-Msg-Id with a control character", body: ev(""), msgID: "hostile\x01id", field: "id"},
		{name: "Nats-Msg-Id of invalid UTF-8", body: ev(""), msgID: "hostile\xffid", field: "id"},
		{name: "Nats-Msg-Id of 300 characters", body: ev(""), msgID: strings.Repeat("m", 300), field: "id"},
		// Addresses and times.
		{name: "ipAddress out of range", body: ev(`,"ipAddress":"999.1.1.1"`), field: "ipAddress"},
		{name: "ipAddress with zone", body: ev(`,"ipAddress":"fe80::1%eth0"`), field: "ipAddress"},
		{name: "ipAddress SQL", body: ev(`,"ipAddress":"1.1.1.1'; DROP TABLE audit_logs; --"`), field: "ipAddress"},
		{name: "negative year timestamp", body: ev(`,"timestamp":"-0001-01-01T00:00:00Z"`), field: "timestamp"},
		{name: "timestamp before 1970", body: ev(`,"timestamp":"1969-12-31T23:59:59Z"`), field: "timestamp"},
		{name: "timestamp in 9999", body: ev(`,"timestamp":"9999-12-31T23:59:59Z"`), field: "timestamp"},
		{name: "timestamp a day ahead", body: ev(`,"timestamp":"` + time.Now().Add(25*time.Hour).UTC().Format(time.RFC3339) + `"`), field: "timestamp"},
		{name: "timestamp a number", body: ev(`,"timestamp":1700000000`), field: "timestamp"},
		{name: "timestamp without zone", body: ev(`,"timestamp":"2026-11-24 10:00:00"`), field: "timestamp"},
		// Bulk envelopes (the whole message is poisoned).
		{name: "bulk: an array", subject: "audit.bulk", body: []byte(`[` + string(ev("")) + `]`), field: "(message)"},
		{name: "bulk: no events", subject: "audit.bulk", body: []byte(`{}`), field: "events"},
		{name: "bulk: events an object", subject: "audit.bulk", body: []byte(`{"events":{}}`), field: "events"},
		{name: "bulk: events empty", subject: "audit.bulk", body: []byte(`{"events":[]}`), field: "events"},
		{name: "bulk: 1,001 events", subject: "audit.bulk", body: []byte(thousandOne), field: "events"},
		{name: "bulk: 100,000 events", subject: "audit.bulk", body: []byte(manyEvents), field: "events"},
		{name: "bulk: unknown envelope field", subject: "audit.bulk", body: []byte(`{"events":[],"force":true}`), field: "force"},
		{name: "bulk: events twice", subject: "audit.bulk", body: []byte(`{"events":[],"events":[]}`), field: "events"},
		{name: "bulk: invalid UTF-8", subject: "audit.bulk", body: []byte("{\"events\":[\"\xff\"]}"), field: "events"},
		// Cleanup jobs of every wrong type (none of them may delete a row).
		{name: "cleanup: retentionDays a string", subject: "audit.cleanup", body: []byte(`{"retentionDays":"90"}`), field: "retentionDays"},
		{name: "cleanup: retentionDays a float", subject: "audit.cleanup", body: []byte(`{"retentionDays":90.5}`), field: "retentionDays"},
		{name: "cleanup: retentionDays negative", subject: "audit.cleanup", body: []byte(`{"retentionDays":-1}`), field: "retentionDays"},
		{name: "cleanup: retentionDays huge", subject: "audit.cleanup", body: []byte(`{"retentionDays":99999999999999999999}`), field: "retentionDays"},
		{name: "cleanup: retentionDays a boolean", subject: "audit.cleanup", body: []byte(`{"retentionDays":true}`), field: "retentionDays"},
		{name: "cleanup: retentionDays an array", subject: "audit.cleanup", body: []byte(`{"retentionDays":[90]}`), field: "retentionDays"},
		{name: "cleanup: retentionDays an object", subject: "audit.cleanup", body: []byte(`{"retentionDays":{"days":90}}`), field: "retentionDays"},
		{name: "cleanup: retentionDays below the minimum", subject: "audit.cleanup", body: []byte(`{"retentionDays":1}`), field: "retentionDays"},
		{name: "cleanup: beforeDate a number", subject: "audit.cleanup", body: []byte(`{"beforeDate":20250101}`), field: "beforeDate"},
		{name: "cleanup: beforeDate not a time", subject: "audit.cleanup", body: []byte(`{"beforeDate":"yesterday"}`), field: "beforeDate"},
		{name: "cleanup: beforeDate in the future", subject: "audit.cleanup", body: []byte(`{"beforeDate":"2999-01-01T00:00:00Z"}`), field: "beforeDate"},
		{name: "cleanup: both cutoffs", subject: "audit.cleanup", body: []byte(`{"retentionDays":90,"beforeDate":"2020-01-01T00:00:00Z"}`), field: "beforeDate"},
		{name: "cleanup: no cutoff", subject: "audit.cleanup", body: []byte(`{"dryRun":true}`), field: "retentionDays"},
		{name: "cleanup: excludeActions a string", subject: "audit.cleanup", body: []byte(`{"retentionDays":90,"excludeActions":"admin.access"}`), field: "excludeActions"},
		{name: "cleanup: excludeActions of numbers", subject: "audit.cleanup", body: []byte(`{"retentionDays":90,"excludeActions":[1]}`), field: "excludeActions[0]"},
		{name: "cleanup: excludeActions with null", subject: "audit.cleanup", body: []byte(`{"retentionDays":90,"excludeActions":["a",null]}`), field: "excludeActions[1]"},
		{name: "cleanup: excludeActions with an empty name", subject: "audit.cleanup", body: []byte(`{"retentionDays":90,"excludeActions":[""]}`), field: "excludeActions[0]"},
		{name: "cleanup: dryRun a string", subject: "audit.cleanup", body: []byte(`{"retentionDays":90,"dryRun":"yes"}`), field: "dryRun"},
		{name: "cleanup: unknown field", subject: "audit.cleanup", body: []byte(`{"retentionDays":90,"force":true}`), field: "force"},
		{name: "cleanup: an array", subject: "audit.cleanup", body: []byte(`[{"retentionDays":90}]`), field: "(message)"},
		{name: "cleanup: invalid JSON", subject: "audit.cleanup", body: []byte(`{"retentionDays":`), field: "retentionDays"},
	}
}

func TestHostileInputsArePoisonedWithTheirField(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_NATS_MAX_PAYLOAD"] = strconv.Itoa(hostileMaxPayload)
	env["AUDITQ_CONCURRENCY"] = "16"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	ctx := context.Background()
	results, err := nc.SubscribeSync("audit.results.bulk")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(subject, msgID string, body []byte) uint64 {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Data = body
		if msgID != "" {
			m.Header.Set(nats.MsgIdHdr, msgID)
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ack, err := js.PublishMsg(pctx, m)
		if err != nil {
			t.Fatalf("publish %q: %v", msgID, err)
		}
		return ack.Sequence
	}
	valid := func(id string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"userId":"u-%s","action":"doc.read","resourceType":"doc","resourceId":"d1",`+
			`"details":{"around":%q},"timestamp":"2026-11-24T10:00:00Z"}`, id, id, id)
	}

	inputs := hostileInputs()
	bySeq := map[uint64]int{}
	var validIDs []string
	for i, in := range inputs {
		if in.subject == "" {
			inputs[i].subject = "audit.log"
		}
		id := fmt.Sprintf("valid-%03d", i)
		publish("audit.log", id, valid(id))
		validIDs = append(validIDs, id)
		msgID := in.msgID
		switch msgID {
		case "":
			msgID = fmt.Sprintf("hostile-%03d", i)
		case "-":
			msgID = ""
		}
		bySeq[publish(inputs[i].subject, msgID, in.body)] = i
	}
	// Stored verbatim, not rejected: SQL-ish strings are data.
	sqlish := `{"id":"sql-1","userId":"1' OR '1'='1","action":"'; DROP TABLE audit_logs; --","resourceType":"doc\"; DELETE FROM audit_logs; --",` +
		`"resourceId":"1) OR 1=1 --","details":{"q":"SELECT * FROM users WHERE name = '' OR 1=1; --","$where":"1==1"},` +
		`"userAgent":"Robert'); DROP TABLE students;--","errorMessage":"E'\\\\x00' -- \\\\' \\\\\" %s %n","timestamp":"2026-11-24T10:00:00Z"}`
	publish("audit.log", "sql-1", []byte(sqlish))
	// A bulk job mixing valid and invalid events.
	mixed := `{"events":[` + string(valid("bulk-ok-1")) + `,{"action":"x"},"nope",` + string(valid("bulk-ok-2")) +
		`,{"id":"bulk-bad","action":"a\u0000","resourceType":"t","resourceId":"r"},{"id":"bulk-bad-2","action":"a","resourceType":"t","resourceId":"r","details":` + nested(100) + `}]}`
	publish("audit.bulk", "bulk-mixed", []byte(mixed))
	publish("audit.log", "valid-last", valid("valid-last"))
	validIDs = append(validIDs, "valid-last", "bulk-ok-1", "bulk-ok-2")

	// The bulk result accounts for every event. The bulk messages
	// rejected as a whole have results too, each saying why.
	var rm *nats.Msg
	for rm == nil {
		m, err := results.NextMsg(60 * time.Second)
		if err != nil {
			t.Fatalf("no bulk result: %v", err)
		}
		if m.Header.Get("job_id") == "bulk-mixed" {
			rm = m
			continue
		}
		var whole struct {
			Total int
			Error string
		}
		if err := json.Unmarshal(m.Data, &whole); err != nil || whole.Error == "" || whole.Total != 0 {
			t.Errorf("the result of a bulk rejected as a whole: %s", m.Data)
		}
	}
	var res struct {
		ID                          string
		Total, Inserted, Duplicates int
		Rejected                    []struct {
			Index int
			Error string
		}
	}
	if err := json.Unmarshal(rm.Data, &res); err != nil {
		t.Fatal(err)
	}
	wantRejected := map[int]string{1: "events[1].resourceType: ", 2: "events[2]: ", 4: "events[4].action: ", 5: "events[5].details: "}
	if res.ID != "bulk-mixed" || res.Total != 6 || res.Inserted != 2 || res.Duplicates != 0 || len(res.Rejected) != len(wantRejected) {
		t.Errorf("bulk result %s: want 6 events, 2 inserted, 4 rejected", rm.Data)
	}
	for _, r := range res.Rejected {
		if !strings.HasPrefix(r.Error, wantRejected[r.Index]) || wantRejected[r.Index] == "" {
			t.Errorf("bulk result: rejection %d %q, want one naming %q", r.Index, r.Error, wantRejected[r.Index])
		}
	}

	// Every hostile input reaches AUDIT_POISON with a reason naming its
	// field; the four rejected bulk events too.
	poison, err := js.Stream(ctx, "AUDIT_POISON")
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(len(inputs) + 4)
	servicetest.Eventually(t, 3*time.Minute, func() (bool, string) {
		info, err := poison.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.State.Msgs >= want, fmt.Sprintf("AUDIT_POISON holds %d messages, want %d", info.State.Msgs, want)
	})
	seen := map[int]bool{}
	cons, err := poison.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	bulkRejected := map[string]string{}
	for range want {
		pm, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		h := pm.Headers()
		reason := h.Get("reason_poisoned")
		if strings.Contains(reason, "panic") {
			t.Errorf("a handler panicked: %s", reason)
		}
		if h.Get("bulk_id") == "bulk-mixed" {
			bulkRejected[h.Get("bulk_index")] = reason
			continue
		}
		seq, _ := strconv.ParseUint(h.Get("nats_sequence"), 10, 64)
		i, ok := bySeq[seq]
		if !ok {
			t.Errorf("unexpected poison message %s (sequence %d): %s", pm.Subject(), seq, reason)
			continue
		}
		in := inputs[i]
		seen[i] = true
		if wantSubj := "audit.poison." + strings.TrimPrefix(in.subject, "audit."); pm.Subject() != wantSubj {
			t.Errorf("%s: poisoned on %s, want %s", in.name, pm.Subject(), wantSubj)
		}
		if !strings.HasPrefix(reason, in.field+": ") {
			t.Errorf("%s: reason %q does not name field %s", in.name, truncateForLog(reason), in.field)
		}
		if len(reason) > 1024 {
			t.Errorf("%s: reason of %d bytes", in.name, len(reason))
		}
		if string(pm.Data()) != string(in.body) {
			if h.Get("payload_truncated") == "" || !strings.HasPrefix(string(in.body), string(pm.Data())) {
				t.Errorf("%s: the poison message does not hold the payload as sent (%d bytes, sent %d)", in.name, len(pm.Data()), len(in.body))
			}
		}
		t.Logf("%-45s -> %s", in.name, truncateForLog(reason))
	}
	for i, in := range inputs {
		if !seen[i] {
			t.Errorf("%s: not in AUDIT_POISON", in.name)
		}
	}
	for _, idx := range []string{"1", "2", "4", "5"} {
		if bulkRejected[idx] == "" {
			t.Errorf("bulk event %s not in AUDIT_POISON", idx)
		}
	}

	// Valid events around them: stored, untouched; the SQL-ish one
	// verbatim; nothing hostile stored; the worker still runs.
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'valid-%' OR id LIKE 'bulk-ok-%' OR id = 'sql-1'")
		return n == len(validIDs)+1, fmt.Sprintf("%d valid events stored, want %d", n, len(validIDs)+1)
	})
	if n := servicetest.CountRows(t, db, ""); n != len(validIDs)+1 {
		t.Errorf("audit_logs holds %d rows, want only the %d valid events", n, len(validIDs)+1)
	}
	for _, id := range validIDs {
		var got struct {
			UserID  string `bun:"user_id"`
			Action  string `bun:"action"`
			Details string `bun:"details"`
			At      time.Time
		}
		if err := db.NewSelect().Table("audit_logs").ColumnExpr("user_id, action, details::text AS details, occurred_at AS at").
			Where("id = ?", id).Scan(ctx, &got); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if got.UserID != "u-"+id || got.Action != "doc.read" || got.Details != fmt.Sprintf(`{"around": %q}`, id) ||
			!got.At.Equal(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)) {
			t.Errorf("%s stored as %+v", id, got)
		}
	}
	var sql struct {
		UserID, Action, ResourceType, ResourceID, UserAgent, ErrorMessage, Q string
	}
	if err := db.QueryRowContext(ctx, `SELECT user_id, action, resource_type, resource_id, user_agent, error_message, details->>'q'
		FROM audit_logs WHERE id = 'sql-1'`).Scan(&sql.UserID, &sql.Action, &sql.ResourceType, &sql.ResourceID, &sql.UserAgent, &sql.ErrorMessage, &sql.Q); err != nil {
		t.Fatal(err)
	}
	wantSQL := struct{ UserID, Action, ResourceType, ResourceID, UserAgent, ErrorMessage, Q string }{
		"1' OR '1'='1", "'; DROP TABLE audit_logs; --", `doc"; DELETE FROM audit_logs; --`, "1) OR 1=1 --",
		"Robert'); DROP TABLE students;--", `E'\\x00' -- \\' \\" %s %n`, "SELECT * FROM users WHERE name = '' OR 1=1; --",
	}
	if sql != wantSQL {
		t.Errorf("SQL-ish event not stored verbatim:\n got  %+v\n want %+v", sql, wantSQL)
	}
	if p := servicetest.Metric(t, svc.HTTPAddr(), `auditq_messages_poisoned_total{handler="audit.log"}`) +
		servicetest.Metric(t, svc.HTTPAddr(), `auditq_messages_poisoned_total{handler="audit.bulk"}`) +
		servicetest.Metric(t, svc.HTTPAddr(), `auditq_messages_poisoned_total{handler="audit.cleanup"}`); int(p) != len(inputs) {
		t.Errorf("auditq_messages_poisoned_total = %v, want %d", p, len(inputs))
	}
	resp, err := http.Get("http://" + svc.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz = %d after the hostile inputs", resp.StatusCode)
	}
	var cleanups int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM audit_logs WHERE action = 'audit.cleanup'").Scan(&cleanups); err != nil {
		t.Fatal(err)
	}
	if cleanups != 0 {
		t.Errorf("%d cleanup runs recorded: a hostile cleanup job ran", cleanups)
	}
}

func truncateForLog(s string) string {
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

// With the default AUDITQ_NATS_MAX_PAYLOAD (8 MiB), a larger message never
// reaches the service: the broker refuses it, and the publisher gets the
// error (it is not dropped silently).
func TestOversizedPublishIsRefusedToThePublisher(t *testing.T) {
	svc := servicetest.Start(t, servicetest.Env(t))
	_, js := natstest.Connect(t, svc.NATSURL())
	m := nats.NewMsg("audit.log")
	m.Data = ev(`,"details":{"blob":"` + strings.Repeat("x", 10_000_000) + `"}`)
	m.Header.Set(nats.MsgIdHdr, "too-big")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := js.PublishMsg(ctx, m)
	if err == nil || !strings.Contains(err.Error(), "maximum payload") {
		t.Fatalf("publish of 10 MB: %v, want a maximum payload error", err)
	}
}
