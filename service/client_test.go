package service_test

// The Go client (module github.com/auditq/auditq/client) against the
// real service: publishing, bulk jobs, every request, proofs checked
// locally and by the service's own verifier, and a publish that outlives
// a restart of the service and its NATS server.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/client"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// newClient connects a client to the service at natsURL, reconnecting
// for ever.
func newClient(t *testing.T, natsURL string, opts client.Options) (*client.Client, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c, err := client.New(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, nc
}

// seenSubjects records the subjects published on nc under audit.>.
func seenSubjects(t *testing.T, nc *nats.Conn) func() []string {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	sub, err := nc.Subscribe("audit.>", func(m *nats.Msg) {
		mu.Lock()
		seen[m.Subject] = true
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		_ = nc.Flush()
		mu.Lock()
		defer mu.Unlock()
		_ = sub.Unsubscribe()
		out := make([]string, 0, len(seen))
		for s := range seen {
			out = append(out, s)
		}
		slices.Sort(out)
		return out
	}
}

func collect[T any](t *testing.T, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestClientAgainstTheService(t *testing.T) {
	env := servicetest.Env(t)
	// Stricter than the client's defaults (1 hour, 1,000 events).
	env["AUDITQ_MAX_FUTURE_SKEW"] = "1m"
	env["AUDITQ_BULK_MAX_EVENTS"] = "5"
	env["AUDITQ_STREAMS_FILE"] = writeStreams(t, map[string]any{"name": "files", "sink": "file", "path": t.TempDir()})
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	c, _ := newClient(t, svc.NATSURL(), client.Options{Requester: "client-test"})
	_, watch := newClient(t, svc.NATSURL(), client.Options{})
	subjects := seenSubjects(t, watch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Publish: one event with an id, one without, and a mistake that
	// fails at once, naming the field, and sends nothing.
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	id, err := c.Publish(ctx, client.Event{ID: "cl-1", UserID: "u-1", Action: "user.login", ResourceType: "user", ResourceID: "u-1",
		Details: json.RawMessage(`{"method":"password","attempt":2}`), IPAddress: "2001:db8::1", Timestamp: day.Add(9 * time.Hour)})
	if err != nil || id != "cl-1" {
		t.Fatalf("Publish: %q, %v", id, err)
	}
	generated, err := c.Publish(ctx, client.Event{Action: "system.backup", ResourceType: "system", ResourceID: "db", Failed: true,
		ErrorMessage: "disk full\nat /var", Timestamp: day.Add(10 * time.Hour)})
	if err != nil || len(generated) != 32 {
		t.Fatalf("Publish without id: %q, %v", generated, err)
	}
	_, err = c.Publish(ctx, client.Event{ID: "cl-bad", Action: "user.login", ResourceType: "user"})
	var verr *client.ValidationError
	if !errors.As(err, &verr) || verr.Field != "resourceId" || err.Error() != "resourceId: is required: a non-empty string" {
		t.Fatalf("Publish of an event without resourceId: %v", err)
	}
	_, err = c.Publish(ctx, client.Event{Action: "user.login", ResourceType: "user", ResourceID: "1", Details: json.RawMessage(`{"n":12345678901234567890}`)})
	if !errors.As(err, &verr) || verr.Field != "details" || !strings.Contains(verr.Rule, "IEEE 754 double") {
		t.Fatalf("Publish with an inexact number: %v", err)
	}

	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = 'cl-1'") == 1, "cl-1 not stored"
	})
	// A bulk job: the service, whose skew is 1 minute, rejects the event
	// 30 minutes ahead that the client's rules (1 hour) let through.
	bulk := []client.Event{
		{ID: "clb-0", UserID: "u-2", Action: "doc.read", ResourceType: "doc", ResourceID: "d-1", Timestamp: day.Add(11 * time.Hour)},
		{ID: "clb-1", UserID: "u-2", Action: "doc.read", ResourceType: "doc", ResourceID: "d-2", Timestamp: day.Add(11 * time.Hour)},
		{ID: "clb-2", UserID: "u-2", Action: "doc.read", ResourceType: "doc", ResourceID: "d-3", Timestamp: time.Now().Add(30 * time.Minute)},
		{ID: "cl-1", UserID: "u-1", Action: "user.login", ResourceType: "user", ResourceID: "u-1", Timestamp: day.Add(9 * time.Hour)},
	}
	res, err := c.PublishBulk(ctx, bulk)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 4 || res.Inserted != 2 || res.Duplicates != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 2 ||
		!strings.HasPrefix(res.Rejected[0].Reason, "events[2].timestamp: is more than 1m0s after the time it was received") ||
		!strings.HasPrefix(res.ID, "bulk-") {
		t.Fatalf("bulk result: %+v", res)
	}
	if !slices.Equal(res.IDs, []string{"clb-0", "clb-1", "clb-2", "cl-1"}) {
		t.Fatalf("bulk ids: %v", res.IDs)
	}
	anon, err := c.PublishBulk(ctx, []client.Event{{Action: "a", ResourceType: "r", ResourceID: "1"}, {Action: "a", ResourceType: "r", ResourceID: "2"}})
	if err != nil || anon.Inserted != 2 || len(anon.IDs) != 2 || len(anon.IDs[0]) != 32 || anon.IDs[0] == anon.IDs[1] {
		t.Fatalf("a bulk job without ids: %+v, %v", anon, err)
	}
	if n := servicetest.CountRows(t, db, "id IN (?, ?)", anon.IDs[0], anon.IDs[1]); n != 2 {
		t.Fatalf("%d rows under the generated ids %v", n, anon.IDs)
	}
	// Published again: another job (its id is random per call), whose
	// events are stored already.
	again, err := c.PublishBulk(ctx, bulk)
	if err != nil || !slices.Equal(again.Rejected, res.Rejected) || again.ID == res.ID || again.Inserted != 0 || again.Duplicates != 3 {
		t.Fatalf("the same bulk again: %+v, %v; first %+v", again, err, res)
	}
	if _, err := c.PublishBulk(ctx, []client.Event{bulk[0], {Action: "x"}}); !errors.As(err, &verr) || verr.Field != "events[1].resourceType" {
		t.Fatalf("PublishBulk with an invalid event: %v", err)
	}
	if _, err := c.PublishBulk(ctx, nil); !errors.As(err, &verr) || err.Error() != "events: must hold at least one event" {
		t.Fatalf("PublishBulk of nothing: %v", err)
	}
	// Six events: the service, whose limit is five, rejects the job whole.
	var six []client.Event
	for i := range 6 {
		six = append(six, client.Event{ID: fmt.Sprintf("six-%d", i), Action: "a", ResourceType: "r", ResourceID: "1"})
	}
	if _, err := c.PublishBulk(ctx, six); err == nil ||
		!strings.HasSuffix(err.Error(), " rejected as a whole: events: holds 6 events, more than the limit of 5") || errors.As(err, &verr) {
		t.Fatalf("PublishBulk of six events to a service taking five: %v", err)
	}

	// Seven events for the pages of a query.
	for i := range 7 {
		if _, err := c.Publish(ctx, client.Event{ID: fmt.Sprintf("pg-%d", i), UserID: "u-3", Action: "page.view", ResourceType: "page",
			ResourceID: fmt.Sprint(i), Timestamp: day.Add(time.Duration(12*60+i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 'cl%' OR id LIKE 'pg-%' OR id = ?", generated)
		return n == 11, fmt.Sprintf("%d of 11 events stored", n)
	})
	if n := servicetest.CountRows(t, db, "id IN ('cl-bad', 'clb-2') OR id LIKE 'six-%'"); n != 0 {
		t.Fatalf("%d rejected events stored", n)
	}

	pages := collect(t, c.Query(ctx, client.Query{Action: "page.*", PageSize: 3}))
	var ids []string
	for _, e := range pages {
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, " "); got != "pg-6 pg-5 pg-4 pg-3 pg-2 pg-1 pg-0" {
		t.Fatalf("Query over pages of 3: %s", got)
	}
	n := 0
	for _, err := range c.Query(ctx, client.Query{UserID: "u-3", PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	failed := false
	got := collect(t, c.Query(ctx, client.Query{Success: &failed, From: day, To: day.Add(24 * time.Hour)}))
	if len(got) != 1 || got[0].ID != generated || !got[0].Failed || got[0].ErrorMessage != "disk full\nat /var" || got[0].UserID != "" {
		t.Fatalf("Query of failures: %+v", got)
	}
	for _, err := range c.Query(ctx, client.Query{PageSize: 5000}) {
		var re *client.RequestError
		if !errors.As(err, &re) || re.Code != "400" || re.Field != "limit" {
			t.Fatalf("Query with a page size of 5000: %v", err)
		}
	}

	ev, err := c.GetEvent(ctx, "cl-1")
	if err != nil || ev.UserID != "u-1" || ev.IPAddress != "2001:db8::1" || ev.Failed || !ev.Timestamp.Equal(day.Add(9*time.Hour)) ||
		ev.ReceivedAt.IsZero() || !jsonEqual(ev.Details, `{"method":"password","attempt":2}`) {
		t.Fatalf("GetEvent: %+v, %v", ev, err)
	}
	if _, err := c.GetEvent(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("GetEvent of an unknown id: %v", err)
	}

	// Reports: one asked for, read back, listed.
	rep, err := c.Report(ctx, client.ReportRequest{Type: "daily", Date: "2026-11-24"})
	if err != nil || rep.ID == 0 || rep.Summary.Total != 11 || rep.Summary.Failed != 1 || rep.Trigger != "request" ||
		!rep.Period.Start.Equal(day) || rep.Request.Date != "2026-11-24" {
		t.Fatalf("Report: %+v, %v", rep, err)
	}
	custom, err := c.Report(ctx, client.ReportRequest{Type: "custom", Start: day.Add(12 * time.Hour), End: day.Add(13 * time.Hour)})
	if err != nil || custom.Summary.Total != 7 || len(custom.TopActions) != 1 || custom.TopActions[0] != (client.ActionCount{Action: "page.view", Count: 7}) {
		t.Fatalf("custom Report: %+v, %v", custom, err)
	}
	var re *client.RequestError
	if _, err := c.Report(ctx, client.ReportRequest{Type: "yearly"}); !errors.As(err, &re) || re.Code != "400" || re.Field != "reportType" {
		t.Fatalf("Report of type yearly: %v", err)
	}
	stored, err := c.GetReport(ctx, rep.ID)
	if err != nil || stored.ID != rep.ID || stored.Summary.Total != rep.Summary.Total || !stored.GeneratedAt.Equal(rep.GeneratedAt) {
		t.Fatalf("GetReport: %+v, %v", stored, err)
	}
	if _, err := c.GetReport(ctx, 9999); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("GetReport of an unknown id: %v", err)
	}
	var listed []int64
	for r, err := range c.Reports(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, r.ID)
	}
	if !slices.Equal(listed, []int64{custom.ID, rep.ID}) {
		t.Fatalf("Reports: %v, want [%d %d]", listed, custom.ID, rep.ID)
	}

	// Schemas.
	all, err := c.Schemas(ctx)
	if err != nil || len(all) != len(contract.SchemaNames()) {
		t.Fatalf("Schemas: %d, %v", len(all), err)
	}
	one, err := c.Schema(ctx, contract.SchemaEvent)
	if want, _ := contract.Schema(contract.SchemaEvent); err != nil || string(one) != string(want) {
		t.Fatalf("Schema(event): %v", err)
	}
	if _, err := c.Schema(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Schema of an unknown name: %v", err)
	}

	// Tamper evidence: a checkpoint asked for, the proof checked locally.
	keys, err := c.PublicKeys(ctx)
	if err != nil || len(keys.Current) != 32 {
		t.Fatalf("PublicKeys: %+v, %v", keys, err)
	}
	proof := checkpointedProof(ctx, t, c, "cl-1")
	if err := client.VerifyProof(proof, keys); err != nil {
		t.Fatalf("VerifyProof: %v", err)
	}

	// Export: the page views as NDJSON, each line the JSON of GetEvent;
	// as CSV with a formula guarded, and raw; a bad format named.
	var nd bytes.Buffer
	sum, err := c.Export(ctx, client.ExportRequest{Query: client.Query{Action: "page.*", PageSize: 3}}, &nd)
	lines := strings.Split(strings.TrimSuffix(nd.String(), "\n"), "\n")
	if err != nil || sum.Events != 7 || sum.Format != "ndjson" || len(lines) != 7 || sum.Bytes != int64(nd.Len()) {
		t.Fatalf("Export ndjson: %+v, %v\n%s", sum, err, nd.String())
	}
	var first client.StoredEvent
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.ID != "pg-6" {
		t.Fatalf("Export's first line: %s, %v", lines[0], err)
	}
	if _, err := c.Publish(ctx, client.Event{ID: "formula-1", UserID: "=HYPERLINK(\"http://x.example/\")", Action: "page.view",
		ResourceType: "page", ResourceID: "-1", Timestamp: day.Add(14 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = 'formula-1'") == 1, "formula-1 not stored"
	})
	for _, raw := range []bool{false, true} {
		var out bytes.Buffer
		sum, err := c.Export(ctx, client.ExportRequest{Query: client.Query{ResourceType: "page", From: day.Add(14 * time.Hour)},
			Format: "csv", CSVRaw: raw}, &out)
		want := "formula-1,\"'=HYPERLINK(\"\"http://x.example/\"\")\",page.view,page,'-1,"
		if raw {
			want = "formula-1,\"=HYPERLINK(\"\"http://x.example/\"\")\",page.view,page,-1,"
		}
		if err != nil || sum.Events != 1 || !strings.Contains(out.String(), "\r\n"+want) {
			t.Fatalf("Export csv raw %v: %+v, %v\n%q\nwant a row starting %q", raw, sum, err, out.String(), want)
		}
	}
	var xe *client.ExportError
	if _, err := c.Export(ctx, client.ExportRequest{Format: "xml"}, io.Discard); !errors.As(err, &xe) || xe.Code != "400" ||
		!strings.HasPrefix(xe.Message, "format: ") || xe.Events != 0 {
		t.Fatalf("Export of format xml: %v", err)
	}

	// Streams: the one file stream, delivering.
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		list, err := c.Streams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			return false, fmt.Sprintf("Streams: %+v", list)
		}
		s := list[0]
		return s.Name == "files" && s.Sink == "file" && s.Format == "native" && s.State == "active" && s.Delivered > 0 &&
			s.Owner != "" && s.Cursor.NextBatchSeq > 1 && s.LastError == "", fmt.Sprintf("Streams: %+v", s)
	})

	// The reads were recorded under the client's name.
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "action = 'audit.query' AND details->'requester'->>'unverifiedClaim' = 'client-test'")
		return n >= 5, fmt.Sprintf("%d audited searches by client-test", n)
	})

	// Every request subject of the contract has its call.
	var requests []string
	for _, s := range subjects() {
		if slices.Contains(contract.RequestSubjects(), s) {
			requests = append(requests, s)
		}
	}
	// The client has no calls yet for the operator's audit.admin.*
	// subjects (issue 18 notes).
	var want []string
	for _, s := range slices.Sorted(slices.Values(contract.RequestSubjects())) {
		if !strings.HasPrefix(s, "audit.admin.") {
			want = append(want, s)
		}
	}
	if !slices.Equal(requests, want) {
		t.Fatalf("the client asked %v; the contract's request subjects are %v", requests, want)
	}
}

// checkpointedProof writes a checkpoint until the proof of event id is
// covered by one (the event's batch is linked into the chain moments after
// its commit) and returns the proof.
func checkpointedProof(ctx context.Context, t *testing.T, c *client.Client, id string) client.Proof {
	t.Helper()
	var p client.Proof
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		w, err := c.WriteCheckpoint(ctx)
		if err != nil {
			return false, err.Error()
		}
		p, err = c.Proof(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		return p.Checkpoint != nil, fmt.Sprintf("checkpoint %d does not cover the batch of %s yet", w.Checkpoint.Seq, id)
	})
	return p
}

func jsonEqual(raw json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(raw, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && fmt.Sprint(a) == fmt.Sprint(b)
}

// Client and service verify the same proofs alike: a real proof, the
// proof before any checkpoint covers it, each field of it altered, and
// the proof of a row altered in the table.
func TestClientProofMatchesService(t *testing.T) {
	env := servicetest.Env(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	c, nc := newClient(t, svc.NATSURL(), client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var events []client.Event
	for i := range 5 {
		events = append(events, client.Event{ID: fmt.Sprintf("pf-%d", i), UserID: "u", Action: "doc.read", ResourceType: "doc", ResourceID: fmt.Sprint(i)})
	}
	if res, err := c.PublishBulk(ctx, events[:3]); err != nil || res.Inserted != 3 {
		t.Fatalf("PublishBulk: %+v, %v", res, err)
	}
	if res, err := c.PublishBulk(ctx, events[3:]); err != nil || res.Inserted != 2 {
		t.Fatalf("PublishBulk: %+v, %v", res, err)
	}
	keys, err := c.PublicKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ring := append(evidence.KeyRing{keys.Current}, keys.Retired...)
	checkpointedProof(ctx, t, c, "pf-4")

	rawProof := func(id string) map[string]any {
		t.Helper()
		reply, err := nc.RequestWithContext(ctx, contract.SubjectEventProof, []byte(`{"id":"`+id+`"}`))
		if err != nil || reply.Header.Get("Nats-Service-Error-Code") != "" {
			t.Fatalf("proof of %s: %v %q", id, err, reply.Data)
		}
		// Numbers as written: batch ids are beyond a double's integers.
		dec := json.NewDecoder(bytes.NewReader(reply.Data))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// verdict checks one proof with both verifiers and requires the same
	// outcome: valid, pending (no checkpoint) or invalid.
	verdict := func(label string, m map[string]any) string {
		t.Helper()
		data, _ := json.Marshal(m)
		var cp client.Proof
		var sp evidence.EventProof
		cerr, serr := json.Unmarshal(data, &cp), json.Unmarshal(data, &sp)
		if cerr == nil {
			cerr = client.VerifyProof(cp, keys)
		}
		if serr == nil {
			serr = sp.Verify(ring)
		}
		kind := func(err error, pending error) string {
			switch {
			case err == nil:
				return "valid"
			case errors.Is(err, pending):
				return "pending"
			}
			return "invalid"
		}
		ck, sk := kind(cerr, client.ErrNotCheckpointed), kind(serr, evidence.ErrNotCheckpointed)
		if ck != sk {
			t.Errorf("%s: the client finds the proof %s (%v), the service %s (%v)", label, ck, cerr, sk, serr)
		}
		if ck == "invalid" && cerr != nil && !errors.Is(cerr, client.ErrInvalidProof) && !strings.Contains(cerr.Error(), "json") {
			t.Errorf("%s: %v does not wrap ErrInvalidProof", label, cerr)
		}
		return ck
	}
	for i := range 5 {
		if v := verdict(fmt.Sprintf("pf-%d", i), rawProof(fmt.Sprintf("pf-%d", i))); v != "valid" {
			t.Fatalf("the proof of pf-%d is %s", i, v)
		}
	}

	flipHex := func(s string) string {
		b := []byte(s)
		if b[len(b)-1] == '0' {
			b[len(b)-1] = '1'
		} else {
			b[len(b)-1] = '0'
		}
		return string(b)
	}
	flipB64 := func(s string) string {
		b, _ := base64.StdEncoding.DecodeString(s)
		b[0] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	inc := func(v any) json.Number {
		n, err := v.(json.Number).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return json.Number(strconv.FormatInt(n+1, 10))
	}
	shift := func(s string) string {
		ts, _ := time.Parse(time.RFC3339Nano, s)
		return ts.Add(time.Microsecond).Format(time.RFC3339Nano)
	}
	type change struct {
		name string
		edit func(p, batch, cp map[string]any)
	}
	changes := []change{
		{"eventId", func(p, _, _ map[string]any) { p["eventId"] = "pf-9" }},
		{"canonical", func(p, _, _ map[string]any) {
			p["canonical"] = strings.Replace(p["canonical"].(string), "doc.read", "doc.kept", 1)
		}},
		{"leafHash", func(p, _, _ map[string]any) { p["leafHash"] = flipHex(p["leafHash"].(string)) }},
		{"leafIndex", func(p, _, _ map[string]any) { p["leafIndex"] = inc(p["leafIndex"]) }},
		{"leafProof", func(p, _, _ map[string]any) {
			lp := p["leafProof"].([]any)
			if len(lp) == 0 {
				t.Fatal("pf-1 has an empty leaf proof: not in a batch of three?")
			}
			lp[0] = flipHex(lp[0].(string))
		}},
		{"batch.root", func(_, b, _ map[string]any) { b["root"] = flipHex(b["root"].(string)) }},
		{"batch.signature", func(_, b, _ map[string]any) { b["signature"] = flipB64(b["signature"].(string)) }},
		{"batch.sealedAt", func(_, b, _ map[string]any) { b["sealedAt"] = shift(b["sealedAt"].(string)) }},
		{"batch.leafCount", func(_, b, _ map[string]any) { b["leafCount"] = inc(b["leafCount"]) }},
		{"batch.id", func(_, b, _ map[string]any) { b["id"] = inc(b["id"]) }},
		{"batch.prev", func(_, b, _ map[string]any) { b["prev"] = flipHex(b["prev"].(string)) }},
		{"batch.hash", func(_, b, _ map[string]any) { b["hash"] = flipHex(b["hash"].(string)) }},
		{"batch.seq", func(_, b, _ map[string]any) { b["seq"] = inc(b["seq"]) }},
		{"batchIndex", func(p, _, _ map[string]any) { p["batchIndex"] = inc(p["batchIndex"]) }},
		{"rangeSize", func(p, _, _ map[string]any) { p["rangeSize"] = inc(p["rangeSize"]) }},
		{"checkpoint.signature", func(_, _, c map[string]any) { c["signature"] = flipB64(c["signature"].(string)) }},
		{"checkpoint.rangeRoot", func(_, _, c map[string]any) { c["rangeRoot"] = flipHex(c["rangeRoot"].(string)) }},
		{"checkpoint.time", func(_, _, c map[string]any) { c["time"] = shift(c["time"].(string)) }},
		{"checkpoint.keyId", func(_, _, c map[string]any) { c["keyId"] = flipHex(c["keyId"].(string)) }},
		{"checkpoint.reason", func(_, _, c map[string]any) { c["reason"] = "forged" }},
		{"checkpoint.batchSeq", func(_, _, c map[string]any) { c["batchSeq"] = inc(c["batchSeq"]) }},
		{"checkpoint.deletionHash", func(_, _, c map[string]any) { c["deletionHash"] = flipHex(c["deletionHash"].(string)) }},
	}
	for _, ch := range changes {
		p := rawProof("pf-1") // in a batch of three: a leaf proof of two steps
		ch.edit(p, p["batch"].(map[string]any), p["checkpoint"].(map[string]any))
		if v := verdict(ch.name, p); v != "invalid" {
			t.Errorf("a proof with %s altered is %s", ch.name, v)
		}
	}
	p := rawProof("pf-1")
	p["checkpoint"] = nil
	if v := verdict("no checkpoint", p); v != "pending" {
		t.Errorf("a proof without its checkpoint is %s", v)
	}

	// A row altered in the table: its proof no longer holds, for either.
	if _, err := db.ExecContext(ctx, `UPDATE audit_logs SET resource_id = 'other' WHERE id = 'pf-2'`); err != nil {
		t.Fatal(err)
	}
	if v := verdict("altered row", rawProof("pf-2")); v != "invalid" {
		t.Fatalf("the proof of an altered row is %s", v)
	}
	proof, err := c.Proof(ctx, "pf-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := client.VerifyProof(proof, keys); !errors.Is(err, client.ErrInvalidProof) || !strings.Contains(err.Error(), "the event was modified") {
		t.Fatalf("VerifyProof of an altered row: %v", err)
	}
}

// A Publish and a PublishBulk issued while the service and its NATS
// server are down wait, retrying, and end acknowledged (the bulk job with
// its result) once they are back, each event stored exactly once.
func TestClientPublishRetriesThroughARestart(t *testing.T) {
	env := servicetest.Env(t)
	env["AUDITQ_ACK_WAIT"] = "5s"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	u, err := url.Parse(svc.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	env["AUDITQ_NATS_LISTEN"] = u.Host // the same port after the restart
	c, nc := newClient(t, svc.NATSURL(), client.Options{AttemptTimeout: time.Second, MaxRetryBackoff: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := c.Publish(ctx, client.Event{ID: "rs-0", Action: "a", ResourceType: "r", ResourceID: "0"}); err != nil {
		t.Fatal(err)
	}

	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return !nc.IsConnected(), "the client is still connected"
	})
	done := make(chan error, 2)
	go func() {
		_, err := c.Publish(ctx, client.Event{ID: "rs-1", Action: "a", ResourceType: "r", ResourceID: "1"})
		done <- err
	}()
	go func() {
		res, err := c.PublishBulk(ctx, []client.Event{{ID: "rs-2", Action: "a", ResourceType: "r", ResourceID: "2"},
			{ID: "rs-3", Action: "a", ResourceType: "r", ResourceID: "3"}})
		if err == nil && (res.Inserted != 2 || res.Total != 2) {
			err = fmt.Errorf("result %+v, want 2 inserted", res)
		}
		done <- err
	}()
	// Several attempts fail meanwhile (AttemptTimeout 1s); both keep
	// trying.
	time.Sleep(3 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("a publish returned while the service was down: %v", err)
	default:
	}

	servicetest.Start(t, env)
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("after the restart: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("a publish did not return after the restart")
		}
	}
	// rs-0 was acked by JetStream before the stop; if the stopped service
	// had pulled it without handling it, JetStream redelivers it after
	// the ack wait (5 s here).
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id IN ('rs-0', 'rs-1', 'rs-2', 'rs-3')")
		return n == 4, fmt.Sprintf("%d of rs-0, rs-1, rs-2, rs-3 stored", n)
	})
	if n := servicetest.CountRows(t, db, ""); n != 4 {
		t.Fatalf("%d rows, want 4", n)
	}
}
