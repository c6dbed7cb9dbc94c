package service_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// exportEnv is a service whose exports take many small pages and chunks.
func exportEnv(t *testing.T) map[string]string {
	env := servicetest.Env(t)
	env["AUDITQ_EXPORT_PAGE_EVENTS"] = "97"
	env["AUDITQ_EXPORT_CHUNK_BYTES"] = "4096"
	env["AUDITQ_EXPORT_WINDOW"] = "2"
	env["AUDITQ_EXPORT_ACK_TIMEOUT"] = "1s"
	return env
}

// exportEvents are n events with every field in use: system events,
// failures, details and messages that need CSV quoting, IPv6, and runs of
// events at the same time (ordered by id).
func exportEvents(n int) []audit.Event {
	base := at("2026-11-01T00:00:00Z")
	out := make([]audit.Event, n)
	for i := range out {
		t := base.Add(time.Duration(i/3) * time.Second).Add(time.Duration(i%7) * time.Microsecond)
		e := audit.Event{
			ID: fmt.Sprintf("x-%05d", i), UserID: fmt.Sprintf("u-%d", i%5), Action: []string{"user.login", "user.update", "doc.read"}[i%3],
			ResourceType: "doc", ResourceID: fmt.Sprint(i % 11), Success: i%4 != 0, OccurredAt: t, ReceivedAt: t.Add(time.Second),
			Details:   json.RawMessage(fmt.Sprintf(`{"n": %d, "note": "a, \"quoted\"\nline", "tags": ["x", "y"]}`, i)),
			IPAddress: []string{"192.0.2.1", "2001:db8::1", ""}[i%3], UserAgent: "agent, v1", SessionID: "s-" + fmt.Sprint(i%13),
		}
		if i%10 == 0 {
			e.UserID = ""
		}
		// Values a spreadsheet would take for formulas, and one that
		// starts with the guard's own quote.
		if f := []string{"", "=HYPERLINK(\"http://x.example/\",\"y\")", "-1", "+1", "@SUM(A1)", "\tx", "'=kept"}[i%7]; f != "" {
			e.UserAgent = f
		}
		if !e.Success {
			e.ErrorMessage = "denied:\r\n\tno role"
		}
		out[i] = e
	}
	return out
}

// sqlRow is a row of audit_logs as SQL returns it, for comparison with
// what an export delivered.
type sqlRow struct {
	ID, UserID, Action, ResourceType, ResourceID, Details, IP, UserAgent, SessionID, RequestID, ErrorMessage string
	Success                                                                                                  bool
	OccurredAt, ReceivedAt                                                                                   time.Time
}

// sqlRows runs the SQL of the filter "action LIKE 'user.%' AND occurred_at
// in [from, to)" newest first, as the export's order.
func sqlRows(t *testing.T, db *bun.DB, from, to string) []sqlRow {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `
		SELECT id, coalesce(user_id, ''), action, resource_type, resource_id, coalesce(details::text, ''),
		       coalesce(host(ip_address), ''), coalesce(user_agent, ''), coalesce(session_id, ''), coalesce(request_id, ''),
		       coalesce(error_message, ''), success, occurred_at, received_at
		FROM audit_logs WHERE action LIKE 'user.%' AND occurred_at >= ? AND occurred_at < ?
		ORDER BY occurred_at DESC, id DESC`, at(from), at(to))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out []sqlRow
	for rows.Next() {
		var r sqlRow
		if err := rows.Scan(&r.ID, &r.UserID, &r.Action, &r.ResourceType, &r.ResourceID, &r.Details, &r.IP, &r.UserAgent,
			&r.SessionID, &r.RequestID, &r.ErrorMessage, &r.Success, &r.OccurredAt, &r.ReceivedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameJSON says whether two JSON texts hold the same value.
func sameJSON(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// csvRow is a SQL row as the CSV export must print it.
func (r sqlRow) csvRow() []string {
	return []string{r.ID, r.UserID, r.Action, r.ResourceType, r.ResourceID, r.Details, r.IP, r.UserAgent, r.SessionID, r.RequestID,
		fmt.Sprint(r.Success), r.ErrorMessage, r.OccurredAt.UTC().Format(time.RFC3339Nano), r.ReceivedAt.UTC().Format(time.RFC3339Nano)}
}

func export(t *testing.T, nc *nats.Conn, req contract.ExportRequest) ([]byte, contract.ExportSummary) {
	t.Helper()
	var buf bytes.Buffer
	sum, err := contract.ReceiveExport(context.Background(), nc, req, &buf, contract.ExportOptions{})
	if err != nil {
		t.Fatalf("export %+v: %v", req, err)
	}
	return buf.Bytes(), sum
}

const exportFrom, exportTo = "2026-11-01T00:00:10Z", "2026-11-01T00:13:00Z"

func exportFilter() contract.Filter {
	return contract.Filter{Action: "user.*", From: exportFrom, To: exportTo}
}

// An export across many pages and chunks holds exactly the rows a SQL
// query of the same filter returns, in its order, field by field, in both
// formats; NDJSON lines are the JSON of audit.event.get; both exports are
// recorded as reads with their count.
func TestExportEqualsSQLInBothFormats(t *testing.T) {
	env := exportEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seed(t, db, exportEvents(3000)...)
	nc := natsClient(t, svc)
	want := sqlRows(t, db, exportFrom, exportTo)
	if len(want) < 1000 {
		t.Fatalf("the filter matches %d rows; the test wants many pages", len(want))
	}

	nd, sum := export(t, nc, contract.ExportRequest{Filter: exportFilter(), Format: "ndjson"})
	lines := strings.Split(strings.TrimSuffix(string(nd), "\n"), "\n")
	if len(lines) != len(want) || sum.Events != len(want) || sum.Chunks < 10 {
		t.Fatalf("ndjson: %d lines, summary %+v; SQL %d rows", len(lines), sum, len(want))
	}
	for i, line := range lines {
		var v contract.EventView
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		w := want[i]
		user := ""
		if v.UserID != nil {
			user = *v.UserID
		}
		got := sqlRow{v.ID, user, v.Action, v.ResourceType, v.ResourceID, string(v.Details), v.IPAddress, v.UserAgent, v.SessionID,
			v.RequestID, v.ErrorMessage, v.Success, v.Timestamp, v.ReceivedAt}
		if !sameJSON(got.Details, w.Details) || !got.OccurredAt.Equal(w.OccurredAt) || !got.ReceivedAt.Equal(w.ReceivedAt) {
			t.Fatalf("line %d: %s\nSQL %+v", i, line, w)
		}
		got.Details, got.OccurredAt, got.ReceivedAt = w.Details, w.OccurredAt, w.ReceivedAt
		if got != w {
			t.Fatalf("line %d: %+v\nSQL %+v", i, got, w)
		}
		if i%500 == 0 { // the same JSON as audit.event.get
			one := ask(t, nc, contract.SubjectEventGet, fmt.Sprintf(`{"id":%q}`, v.ID)).ok(t).data
			if !bytes.Equal(one, []byte(line)) {
				t.Fatalf("line %d: %s\naudit.event.get: %s", i, line, one)
			}
		}
	}

	// CSV, guarded by default: every value as stored once one leading
	// quote of a guarded value is removed (contract.UnguardCSVCell);
	// with csvRaw, every value as stored.
	for _, rawCSV := range []bool{false, true} {
		checkCSV(t, nc, want, rawCSV)
	}

	// Each export is two reads: its start (with the filter) and its end
	// (with the count).
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		reads := readEvents(t, db, "audit.export")
		ends := 0
		for _, r := range reads {
			req, _ := r["request"].(map[string]any)
			if r["phase"] == "end" && r["returned"] == float64(len(want)) && r["complete"] == true && r["_success"] == true &&
				req["action"] == "user.*" && req["from"] == exportFrom {
				ends++
			}
		}
		return len(reads) == 6 && ends == 3, fmt.Sprintf("read events %v", reads)
	})
}

// checkCSV exports the filter as CSV (raw: without the formula guard) and
// compares every record with the SQL rows want.
func checkCSV(t *testing.T, nc *nats.Conn, want []sqlRow, raw bool) {
	t.Helper()
	out, sum := export(t, nc, contract.ExportRequest{Filter: exportFilter(), Format: "csv", CSVRaw: raw})
	if !bytes.Contains(out, []byte("\r\n")) {
		t.Fatal("csv: want CRLF line ends (RFC 4180)")
	}
	if !bytes.Contains(out, []byte(`"denied:`+"\r\n\tno role\"")) {
		t.Fatal("csv: a CR LF inside a value must be kept verbatim")
	}
	guarded := bytes.Contains(out, []byte(",\"'=HYPERLINK(")) && bytes.Contains(out, []byte(",''=kept,")) && bytes.Contains(out, []byte(",'-1,"))
	if guarded == raw {
		t.Fatalf("csv raw %v: formula values guarded %v", raw, guarded)
	}
	records, err := csv.NewReader(bytes.NewReader(out)).ReadAll() // it reads a quoted CR LF as LF
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(records[0], ",") != strings.Join(contract.CSVColumns, ",") || len(records) != len(want)+1 || sum.Events != len(want) {
		t.Fatalf("csv: header %v, %d records, summary %+v; SQL %d rows", records[0], len(records), sum, len(want))
	}
	for i, rec := range records[1:] {
		if !raw {
			for j := range rec {
				rec[j] = contract.UnguardCSVCell(rec[j])
			}
		}
		w := want[i].csvRow()
		w[11] = strings.ReplaceAll(w[11], "\r\n", "\n")
		if !sameJSON(rec[5], w[5]) {
			t.Fatalf("csv row %d details %s, SQL %s", i, rec[5], w[5])
		}
		rec[5] = w[5]
		if strings.Join(rec, "\x00") != strings.Join(w, "\x00") {
			t.Fatalf("csv raw %v row %d:\n%q\nSQL\n%q", raw, i, rec, w)
		}
	}
}

// stopAfter is a writer that runs stop once it holds n chunks.
type stopAfter struct {
	bytes.Buffer
	n, chunks int
	stop      func()
}

func (w *stopAfter) Write(p []byte) (int, error) {
	w.chunks++
	if w.chunks == w.n {
		w.stop()
	}
	return w.Buffer.Write(p)
}

// An export interrupted half-way, by cancelling it or by dropping the
// connection, resumes from its cursor on a new connection without a gap
// or a repeat: the two parts are byte for byte the uninterrupted export.
// The service records the interrupted export's end with what it sent.
func TestExportResumesAfterInterruption(t *testing.T) {
	env := exportEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seed(t, db, exportEvents(3000)...)
	nc := natsClient(t, svc)

	for _, format := range []string{"ndjson", "csv"} {
		full, sum := export(t, nc, contract.ExportRequest{Filter: exportFilter(), Format: format})
		for _, how := range []string{"cancel", "drop the connection"} {
			t.Run(format+"/"+how, func(t *testing.T) {
				conn := natsClient(t, svc)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				w := &stopAfter{n: sum.Chunks / 2, stop: cancel}
				if how != "cancel" {
					w.stop = conn.Close
				}
				_, err := contract.ReceiveExport(ctx, conn, contract.ExportRequest{Filter: exportFilter(), Format: format}, w,
					contract.ExportOptions{Timeout: 5 * time.Second})
				var xe *contract.ExportError
				if !errors.As(err, &xe) || xe.Cursor == "" || xe.Events == 0 || xe.Events >= sum.Events {
					t.Fatalf("interrupted export: %v (%+v), want an ExportError with a cursor half-way", err, xe)
				}
				rest, rsum := export(t, nc, contract.ExportRequest{Filter: exportFilter(), Format: format, Cursor: xe.Cursor})
				if got := append(w.Bytes(), rest...); !bytes.Equal(got, full) {
					t.Fatalf("%d + %d bytes resumed, want the %d bytes of the whole export", w.Len(), len(rest), len(full))
				}
				if xe.Events+rsum.Events != sum.Events {
					t.Fatalf("%d + %d events, want %d", xe.Events, rsum.Events, sum.Events)
				}
			})
		}
	}
	// Every interrupted export's end is recorded, incomplete, with at
	// least the events its client wrote.
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		var stopped []string
		for _, r := range readEvents(t, db, "audit.export") {
			if r["phase"] == "end" && r["complete"] == false && r["_success"] == false && r["returned"].(float64) > 0 && r["cursor"] != nil {
				stopped = append(stopped, fmt.Sprint(r["returned"]))
			}
		}
		return len(stopped) == 4, fmt.Sprintf("incomplete exports recorded: %v", stopped)
	})
}

// A bad filter, format or field is refused before anything is sent, as a
// 400 naming the field; the CLI names the flag.
func TestExportRejectsBadRequests(t *testing.T) {
	env := exportEnv(t)
	svc := servicetest.Start(t, env)
	nc := natsClient(t, svc)
	schemas := schemasServed(t, nc)
	for _, body := range []string{`{}`, `{"format":"csv","action":"user.*","from":"2026-11-01T00:00:00Z","success":false}`, `{"format":"csv","csvRaw":true}`} {
		if err := schemaErr(t, schemas["export-request"], []byte(body)); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var req contract.ExportRequest
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			t.Fatal(err)
		}
		_, sum := export(t, nc, req)
		raw, _ := json.Marshal(sum)
		if err := schemaErr(t, schemas["export-summary"], raw); err != nil {
			t.Fatalf("summary %s: %v", raw, err)
		}
	}
	for body, field := range map[string]string{
		`{"format":"xml"}`:      "format",
		`{"from":"yesterday"}`:  "from",
		`{"limit":10}`:          "limit",
		`{"csvRaw":true}`:       "csvRaw",
		`{"cursor":"nope"}`:     "cursor",
		`{"Format":"csv"}`:      "Format",
		`{"userId":"a\u0001b"}`: "userId",
		`{"from":"2026-11-02T00:00:00Z","to":"2026-11-01T00:00:00Z"}`: "to",
	} {
		a := ask(t, nc, contract.SubjectExport, body)
		if a.code != "400" || !strings.HasPrefix(a.error, field+": ") {
			t.Errorf("%s: %s %q, want 400 naming %s", body, a.code, a.error, field)
		}
		if err := schemaErr(t, schemas["error"], a.data); err != nil {
			t.Errorf("%s: error body %s: %v", body, a.data, err)
		}
		if field != "cursor" && field != "to" && schemaErr(t, schemas["export-request"], []byte(body)) == nil {
			t.Errorf("%s: valid against export-request, but the service refuses it", body)
		}
	}
	var xe *contract.ExportError
	_, err := contract.ReceiveExport(context.Background(), nc, contract.ExportRequest{Format: "xml"}, io.Discard, contract.ExportOptions{})
	if !errors.As(err, &xe) || xe.Code != "400" || !strings.HasPrefix(xe.Message, "format: ") {
		t.Fatalf("ReceiveExport of a bad format: %v", err)
	}
	if _, err := runCLI(t, env, svc, "export", "--format", "xml"); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Fatalf("auditq export --format xml: %v", err)
	}
	if _, err := runCLI(t, env, svc, "export", "--resume", "nope"); err == nil || !strings.Contains(err.Error(), "--resume: is not a cursor") {
		t.Fatalf("auditq export --resume nope: %v", err)
	}
}

// auditq export writes what contract.ReceiveExport receives.
func TestExportCLI(t *testing.T) {
	env := exportEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seed(t, db, exportEvents(600)...)
	nc := natsClient(t, svc)
	want, _ := export(t, nc, contract.ExportRequest{Filter: exportFilter(), Format: "csv"})
	out, err := runCLI(t, env, svc, "export", "--format", "csv", "--action", "user.*",
		"--from", exportFrom, "--to", exportTo)
	if err != nil || out != string(want) {
		t.Fatalf("auditq export: %v\n%.300s\nwant\n%.300s", err, out, want)
	}
}

// Exports are the pool "exports" of the request service: an export holds
// its slot until it ends (auditq_requests_in_flight{pool="exports"}); one
// more waits up to AUDITQ_REQUEST_QUEUE_WAIT and is answered 429 with the
// pools' busy answer; one that waits gets the slot once the running export
// ends.
func TestExportIsAPoolOfTheRequestService(t *testing.T) {
	env := exportEnv(t)
	env["AUDITQ_EXPORT_MAX_RUNNING"] = "1"
	env["AUDITQ_EXPORT_ACK_TIMEOUT"] = "1m"
	env["AUDITQ_REQUEST_QUEUE_WAIT"] = "5s" // room for the waiting export to get the slot
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	seed(t, db, exportEvents(600)...)
	nc := natsClient(t, svc)
	inFlight := func() float64 {
		return servicetest.Metric(t, svc.HTTPAddr(), `auditq_requests_in_flight{pool="exports"}`)
	}

	// An export whose client never acknowledges: it sends its window and
	// holds the slot.
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(contract.SubjectExport, inbox, []byte(`{"format":"ndjson"}`)); err != nil {
		t.Fatal(err)
	}
	first, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ackSubject := first.Header.Get(contract.HeaderExportAck)
	if ackSubject == "" {
		t.Fatalf("first message has no %s header: %v %s", contract.HeaderExportAck, first.Header, first.Data)
	}
	if got := inFlight(); got != 1 {
		t.Fatalf("exports in flight while one streams: %v, want 1", got)
	}

	busy := ask(t, nc, contract.SubjectExport, `{"format":"csv"}`)
	if busy.code != "429" || busy.error != "auditq is busy: all 1 exports slots of this instance stayed taken; retry shortly" {
		t.Fatalf("a second export: %s %q, want the pools' 429", busy.code, busy.error)
	}

	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		_, err := contract.ReceiveExport(context.Background(), nc, contract.ExportRequest{Format: "ndjson"}, &out, contract.ExportOptions{})
		done <- err
	}()
	servicetest.Eventually(t, 10*time.Second, func() (bool, string) {
		w := servicetest.Metric(t, svc.HTTPAddr(), `auditq_requests_waiting{pool="exports"}`)
		return w == 1, fmt.Sprintf("%v exports waiting", w)
	})
	if err := nc.Publish(ackSubject, []byte(contract.ExportCancel)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting export, once the slot was free: %v", err)
	}
	if n := bytes.Count(out.Bytes(), []byte("\n")); n < 600 {
		t.Fatalf("the waiting export delivered %d lines, want the 600 events and more", n)
	}
	servicetest.Eventually(t, 10*time.Second, func() (bool, string) {
		got := inFlight()
		return got == 0, fmt.Sprintf("%v exports in flight", got)
	})
	if got := servicetest.Metric(t, svc.HTTPAddr(), `auditq_requests_total{code="429",subject="audit.export"}`); got != 1 {
		t.Errorf("auditq_requests_total of audit.export 429: %v, want 1", got)
	}
}
