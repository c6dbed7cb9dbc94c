package service_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// schemasServed fetches the schemas from the running service (audit.schema)
// and compiles them, format assertion on.
func schemasServed(t *testing.T, nc *nats.Conn) map[string]*jsonschema.Schema {
	t.Helper()
	var bundle contract.SchemaBundle
	if err := json.Unmarshal(ask(t, nc, contract.SubjectSchema, "").ok(t).data, &bundle); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for name, raw := range bundle.Schemas {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(bundle.BaseURI+name+".json", doc); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for name := range bundle.Schemas {
		out[name] = c.MustCompile(bundle.BaseURI + name + ".json")
	}
	if len(out) != len(contract.SchemaNames()) {
		t.Fatalf("audit.schema served %d schemas, %d shipped", len(out), len(contract.SchemaNames()))
	}
	return out
}

func schemaErr(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// Every request and reply of the micro service, and the bulk and cleanup
// results, as the running service sends them, validate against the
// schemas it serves; requests it answers 400 fail their schema. The
// schemas are served on audit.schema and GET /schema/<name>.json as
// shipped.
func TestSchemasDescribeTheLiveContract(t *testing.T) {
	env := servicetest.Env(t)
	// A log stream, so that the answer of audit.streams lists one.
	env["AUDITQ_STREAMS_FILE"] = writeStreams(t, map[string]any{"name": "files", "sink": "file", "path": t.TempDir()})
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	nc, js := natstest.Connect(t, svc.NATSURL())
	schemas := schemasServed(t, nc)

	// Served as shipped, over NATS and HTTP.
	event, _ := contract.Schema(contract.SchemaEvent)
	if got := ask(t, nc, contract.SubjectSchema, `{"name":"event"}`).ok(t).data; !bytes.Equal(got, event) {
		t.Fatalf("audit.schema {name: event} = %.80s...", got)
	}
	if a := ask(t, nc, contract.SubjectSchema, `{"name":"nope"}`); a.code != "404" {
		t.Fatalf("unknown schema: %s %s", a.code, a.error)
	}
	if a := ask(t, nc, contract.SubjectSchema, `{"nam":"event"}`); a.code != "400" {
		t.Fatalf("bad schema request: %s %s", a.code, a.error)
	}
	for path, want := range map[string]int{"/schema/event.json": 200, "/schema/nope.json": 404, "/schema/event": 404, "/schema/": 200} {
		resp, err := http.Get("http://" + svc.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != want || (path == "/schema/event.json" && (!bytes.Equal(body, event) ||
			resp.Header.Get("Content-Type") != "application/schema+json")) {
			t.Fatalf("GET %s: %d %s %.80s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}

	// The example events, the bulk example and a cleanup dry run.
	results, err := nc.SubscribeSync("audit.results.>")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../docs/examples/events.json")
	if err != nil {
		t.Fatal(err)
	}
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatal(err)
	}
	var msgs []*nats.Msg
	for _, e := range events {
		if err := schemaErr(t, schemas["event"], e); err != nil {
			t.Fatalf("example event: %v", err)
		}
		var id struct{ ID string }
		_ = json.Unmarshal(e, &id)
		msgs = append(msgs, servicetest.EventMsg("audit.log", id.ID, string(e)))
	}
	bulk, err := os.ReadFile("../docs/examples/bulk.json")
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, servicetest.EventMsg("audit.bulk", "schema-bulk", string(bulk)),
		servicetest.EventMsg("audit.cleanup", "schema-cleanup", `{"retentionDays":365,"dryRun":true}`))
	servicetest.PublishAll(t, js, msgs)
	for range 2 {
		m, err := results.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("no result: %v", err)
		}
		name := map[string]string{"audit.results.bulk": "bulk-result", "audit.results.cleanup": "cleanup-result"}[m.Subject]
		if name == "" {
			t.Fatalf("unexpected result on %s", m.Subject)
		}
		if err := schemaErr(t, schemas[name], m.Data); err != nil {
			t.Fatalf("%s %s: %v", m.Subject, m.Data, err)
		}
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'example-%'")
		return n >= 7, fmt.Sprintf("%d example rows", n)
	})

	// Good requests: valid against the request schema, answered with a
	// reply valid against the reply schema.
	id := ask(t, nc, "audit.report", `{"reportType":"daily","date":"2026-11-24"}`).ok(t).object(t)["id"]
	for _, c := range []struct{ subject, body, request, reply string }{
		{"audit.report", `{"reportType":"daily","date":"2026-11-24","timeZone":"Europe/Berlin"}`, "report-request", "report"},
		{"audit.report", `{"reportType":"custom","startDate":"2026-11-01T00:00:00Z","endDate":"2026-11-30T00:00:00+01:00"}`, "report-request", "report"},
		{"audit.report", `{"reportType":"weekly"}`, "report-request", "report"},
		{"audit.report.get", fmt.Sprintf(`{"id":%v}`, id), "report-get-request", "report"},
		{"audit.report.list", `{"limit":1}`, "report-list-request", "report-list"},
		{"audit.report.list", `{"reportType":"daily","limit":100,"cursor":null}`, "report-list-request", "report-list"},
		{"audit.query", `{}`, "query-request", "query"},
		{"audit.query", `{"action":"user.*","success":true,"from":"2026-11-01T00:00:00Z","limit":2}`, "query-request", "query"},
		{"audit.event.get", `{"id":"example-0003"}`, "event-get-request", "event-view"},
		{"audit.pubkey", `{}`, "pubkey-request", "pubkey"},
		{"audit.event.proof", `{"id":"example-0001"}`, "event-proof-request", "event-proof"},
		{"audit.checkpoint.write", `{}`, "checkpoint-write-request", "checkpoint-write"},
		{"audit.streams", `{}`, "streams-request", "streams"},
		{"audit.event.proof", `{"id":"example-0003"}`, "event-proof-request", "event-proof"},
	} {
		if err := schemaErr(t, schemas[c.request], []byte(c.body)); err != nil {
			t.Errorf("%s %s: request invalid against %s: %v", c.subject, c.body, c.request, err)
		}
		a := ask(t, nc, c.subject, c.body)
		if c.subject == "audit.event.proof" && a.code == "404" { // not sealed yet
			servicetest.Eventually(t, 10*time.Second, func() (bool, string) {
				a = ask(t, nc, c.subject, c.body)
				return a.code != "404", a.error
			})
		}
		if a.code != "" {
			t.Errorf("%s %s: %s %s", c.subject, c.body, a.code, a.error)
			continue
		}
		if err := schemaErr(t, schemas[c.reply], a.data); err != nil {
			t.Errorf("%s %s: reply %.300s invalid against %s: %v", c.subject, c.body, a.data, c.reply, err)
		}
	}

	// The operator's requests, on two poison messages and the cleanup dry
	// run above.
	for i := range 2 {
		servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", fmt.Sprintf("schema-bad-%d", i),
			fmt.Sprintf(`{"id":"schema-bad-%d","action":"a","resourceType":"r","ipAddress":"\xff"}`, i))})
	}
	var poisoned contract.PoisonList
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		_ = json.Unmarshal(ask(t, nc, contract.SubjectAdminPoisonList, "").ok(t).data, &poisoned)
		return len(poisoned.Messages) >= 2 && strings.HasPrefix(poisoned.Messages[1].ID, "schema-bad-"),
			fmt.Sprintf("poison messages %+v", poisoned.Messages)
	})
	replay, _ := json.Marshal(map[string]any{"seq": poisoned.Messages[0].Seq, "payload": `{"id":"schema-bad-1","action":"a","resourceType":"r","resourceId":"1"}`})
	for _, c := range []struct{ subject, body, request, reply string }{
		{contract.SubjectAdminPoisonList, `{"job":"log","reason":"ipAddress","limit":1}`, "admin-poison-list-request", "admin-poison-list"},
		{contract.SubjectAdminPoisonList, `{"job":null,"limit":null,"cursor":null}`, "admin-poison-list-request", "admin-poison-list"},
		{contract.SubjectAdminPoisonGet, fmt.Sprintf(`{"seq":%d}`, poisoned.Messages[1].Seq), "admin-poison-get-request", "admin-poison-get"},
		{contract.SubjectAdminPoisonReplay, string(replay), "admin-poison-replay-request", "admin-poison-replay"},
		{contract.SubjectAdminPoisonDiscard, fmt.Sprintf(`{"seq":%d}`, poisoned.Messages[1].Seq), "admin-poison-discard-request", "admin-poison-discard"},
		{contract.SubjectAdminSchedules, `{}`, "admin-schedules-request", "admin-schedules"},
		{contract.SubjectAdminCleanups, `{"limit":5}`, "admin-cleanups-request", "admin-cleanups"},
		{contract.SubjectAdminCleanupDryRun, `{}`, "admin-cleanup-dryrun-request", "admin-cleanup-dryrun"},
		{contract.SubjectAdminCleanupDryRun, `{"beforeDate":"2025-01-01T00:00:00Z","excludeActions":["a"]}`, "admin-cleanup-dryrun-request", "admin-cleanup-dryrun"},
		{contract.SubjectAdminStatus, `{}`, "admin-status-request", "admin-status"},
	} {
		if err := schemaErr(t, schemas[c.request], []byte(c.body)); err != nil {
			t.Errorf("%s %s: request invalid against %s: %v", c.subject, c.body, c.request, err)
		}
		a := ask(t, nc, c.subject, c.body)
		if a.code != "" {
			t.Errorf("%s %s: %s %s", c.subject, c.body, a.code, a.error)
			continue
		}
		if err := schemaErr(t, schemas[c.reply], a.data); err != nil {
			t.Errorf("%s %s: reply %.300s invalid against %s: %v", c.subject, c.body, a.data, c.reply, err)
		}
	}

	// Bad requests: answered 400 with an error body valid against
	// error.json, and invalid against their request schema.
	for _, c := range []struct{ subject, body, request string }{
		{"audit.report", `{"reportType":"yearly"}`, "report-request"},
		{"audit.report", `{}`, "report-request"},
		{"audit.report", `{"reportType":"daily","timezone":"UTC"}`, "report-request"},
		{"audit.report", `{"reportType":"custom","date":"2026-11-24"}`, "report-request"},
		{"audit.report", `{"reportType":"custom","startDate":"2026-11-01T00:00:00Z"}`, "report-request"},
		{"audit.report", `{"reportType":"daily","startDate":"2026-11-01T00:00:00Z"}`, "report-request"},
		{"audit.report", `{"reportType":"daily","date":"24.11.2026"}`, "report-request"},
		{"audit.report", `{"reportType":"custom","startDate":"2026-11-01T00:00:00.1234567Z","endDate":"2026-11-02T00:00:00Z"}`, "report-request"},
		{"audit.report.get", `{"id":0}`, "report-get-request"},
		{"audit.report.get", `{"id":"7"}`, "report-get-request"},
		{"audit.report.list", `{"limit":0}`, "report-list-request"},
		{"audit.report.list", `{"limit":101}`, "report-list-request"},
		{"audit.report.list", `{"reportType":"yearly"}`, "report-list-request"},
		{"audit.query", `{"limit":1001}`, "query-request"},
		{"audit.query", `{"success":"yes"}`, "query-request"},
		{"audit.query", `{"from":"yesterday"}`, "query-request"},
		{"audit.query", `{"userid":"u"}`, "query-request"},
		{"audit.event.get", `{}`, "event-get-request"},
		{"audit.event.get", `{"id":7}`, "event-get-request"},
		{"audit.event.proof", `{"id":""}`, "event-proof-request"},
		{"audit.pubkey", `{"x":1}`, "pubkey-request"},
		{"audit.checkpoint.write", `{"now":true}`, "checkpoint-write-request"},
		{"audit.schema", `{"name":7}`, "schema-request"},
		{contract.SubjectAdminPoisonList, `{"job":"nope"}`, "admin-poison-list-request"},
		{contract.SubjectAdminPoisonList, `{"limit":0}`, "admin-poison-list-request"},
		{contract.SubjectAdminPoisonGet, `{}`, "admin-poison-get-request"},
		{contract.SubjectAdminPoisonGet, `{"seq":-1}`, "admin-poison-get-request"},
		{contract.SubjectAdminPoisonReplay, `{"seq":1,"payload":{}}`, "admin-poison-replay-request"},
		{contract.SubjectAdminPoisonDiscard, `{"seq":"1"}`, "admin-poison-discard-request"},
		{contract.SubjectAdminSchedules, `{"all":true}`, "admin-schedules-request"},
		{contract.SubjectAdminCleanups, `{"limit":101}`, "admin-cleanups-request"},
		{contract.SubjectAdminCleanupDryRun, `{"retentionDays":90,"dryRun":true}`, "admin-cleanup-dryrun-request"},
		{contract.SubjectAdminCleanupDryRun, `{"retentionDays":90,"beforeDate":"2025-01-01T00:00:00Z"}`, "admin-cleanup-dryrun-request"},
		{contract.SubjectAdminCleanupDryRun, `{"excludeActions":["a"]}`, "admin-cleanup-dryrun-request"},
		{contract.SubjectAdminStatus, `{"verbose":true}`, "admin-status-request"},
		{"audit.streams", `{"state":"active"}`, "streams-request"},
	} {
		if schemaErr(t, schemas[c.request], []byte(c.body)) == nil {
			t.Errorf("%s %s: valid against %s, but the service refuses it", c.subject, c.body, c.request)
		}
		a := ask(t, nc, c.subject, c.body)
		if a.code != "400" {
			t.Errorf("%s %s: answered %q %s, want 400", c.subject, c.body, a.code, a.error)
			continue
		}
		if err := schemaErr(t, schemas["error"], a.data); err != nil {
			t.Errorf("%s %s: error body %s: %v", c.subject, c.body, a.data, err)
		}
	}
	if a := ask(t, nc, "audit.event.get", `{"id":"nope"}`); a.code != "404" || schemaErr(t, schemas["error"], a.data) != nil {
		t.Errorf("404 body %q %s", a.code, a.data)
	}
}
