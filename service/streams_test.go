package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/ports/streams/streamstest"
	"github.com/auditq/auditq/service"
	"github.com/auditq/auditq/service/servicetest"
)

const hookSecret = "0123456789abcdef-secret"

func writeStreams(t *testing.T, streams ...map[string]any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"streams": streams})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "streams.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Five streams, one per sink, each in its own format, against receivers
// that speak the sinks' protocols and misbehave once: the webhook refuses
// two requests, Splunk never indexes the first batch (ackId 0), and
// Elasticsearch loses the answer to the first bulk request. Every event
// arrives at every receiver, in commit order; repeats are whole re-sent
// batches at the same seal, and the seals match audit.event.proof.
func TestStreamsDeliverToEverySink(t *testing.T) {
	hook, err := streamstest.NewWebhook(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hook.Close() })
	hook.Fail(2)
	hec, err := streamstest.NewSplunk("hec-token", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hec.Close() })
	es, err := streamstest.NewElastic()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Close() })
	es.LoseAnswers(1)
	dir := t.TempDir()

	env := servicetest.Env(t)
	env["HOOK_SECRET"] = hookSecret
	env["AUDITQ_STREAMS_FILE"] = writeStreams(t,
		map[string]any{"name": "hook", "sink": "webhook", "url": hook.URL(), "secretEnv": "HOOK_SECRET", "batchSize": 70},
		map[string]any{"name": "splunk", "sink": "splunk", "format": "ocsf", "url": hec.URL(), "token": "hec-token", "ackTimeout": "2s"},
		map[string]any{"name": "elastic", "sink": "elasticsearch", "format": "cloudevents", "url": es.URL(), "index": "audit"},
		map[string]any{"name": "files", "sink": "file", "path": dir, "maxBytes": 20000, "batchSize": 50},
		map[string]any{"name": "bus", "sink": "nats", "format": "ocsf", "subject": "siem.audit", "jetStream": true},
		map[string]any{"name": "later", "sink": "file", "path": dir, "paused": true},
	)
	svc := servicetest.Start(t, env)
	nc := natsClient(t, svc)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SIEM", Subjects: []string{"siem.audit"}}); err != nil {
		t.Fatal(err)
	}

	var want []string
	var msgs []*nats.Msg
	for i := range 300 {
		id := fmt.Sprintf("st-%03d", i)
		want = append(want, id)
		msgs = append(msgs, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, []string{"user.login", "doc.create", "doc.delete"}[i%3])))
	}
	var bulk []string
	for i := range 50 {
		id := fmt.Sprintf("sb-%02d", i)
		want = append(want, id)
		bulk = append(bulk, servicetest.EventJSON(id, "doc.read"))
	}
	msgs = append(msgs, servicetest.EventMsg("audit.bulk", "st-bulk", `{"events":[`+strings.Join(bulk, ",")+`]}`))
	servicetest.PublishAll(t, js, msgs)

	natsGot := func() []streamstest.Received {
		c, err := js.OrderedConsumer(ctx, "SIEM", jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		var out []streamstest.Received
		for {
			batch, err := c.FetchNoWait(500)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for m := range batch.Messages() {
				e, err := streamstest.ParseEvent(m.Data())
				if err != nil {
					t.Fatal(err)
				}
				if m.Headers().Get("Nats-Msg-Id") != e.ID {
					t.Fatalf("message of %s has Nats-Msg-Id %q", e.ID, m.Headers().Get("Nats-Msg-Id"))
				}
				e.Delivery = len(out)
				out = append(out, e)
				n++
			}
			if n == 0 {
				return out
			}
		}
	}
	filesGot := func() []streamstest.Received {
		got, _, err := streamstest.ReadFiles(dir, "files")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	receivers := map[string]func() []streamstest.Received{
		"hook": hook.Events, "splunk": hec.Events, "elastic": es.Events, "files": filesGot, "bus": natsGot,
	}
	for name, got := range receivers {
		servicetest.Eventually(t, 90*time.Second, func() (bool, string) {
			r := streamstest.Check(got(), want)
			return len(r.Missing) == 0, name + ": " + r.String()
		})
		r := streamstest.Check(got(), want)
		if len(r.Unexpected) > 0 || len(r.Disorder) > 0 {
			t.Errorf("%s: %s; unexpected %v", name, r, r.Unexpected)
		}
		t.Logf("%s: %s", name, r)
	}
	// Refused requests were sent again, and nothing was taken twice; the
	// batch Splunk never indexed was sent again (its events twice, at the
	// same seals); Elasticsearch answered the re-sent creates 409.
	if r := streamstest.Check(hook.Events(), want); r.Duplicates != 0 || hook.Requests() < 3 || hook.BadSignatures() != 0 {
		t.Errorf("webhook: %s, %d requests, %d bad signatures", r, hook.Requests(), hook.BadSignatures())
	}
	if r := streamstest.Check(hec.Events(), want); r.Duplicates != 0 || hec.AckChecks() < 3 {
		t.Errorf("splunk: %s, %d ack checks (the unindexed batch counts as lost, its re-send as the delivery)", r, hec.AckChecks())
	}
	if es.Conflicts() == 0 {
		t.Error("elasticsearch: no 409 for the re-sent batch whose answer was lost")
	}
	if r := streamstest.Check(natsGot(), want); r.Duplicates != 0 {
		t.Errorf("JetStream stored repeats despite Nats-Msg-Id: %s", r)
	}
	if _, files, _ := streamstest.ReadFiles(dir, "files"); files < 2 {
		t.Errorf("file stream: %d files, want rotation at 20000 bytes", files)
	}

	// A delivered seal is the one audit.event.proof proves.
	e := hook.Events()[17]
	proof := ask(t, nc, contract.SubjectEventProof, fmt.Sprintf(`{"id":%q}`, e.ID))
	servicetest.Eventually(t, 10*time.Second, func() (bool, string) {
		proof = ask(t, nc, contract.SubjectEventProof, fmt.Sprintf(`{"id":%q}`, e.ID))
		return proof.code == "", proof.error
	})
	var p struct {
		LeafIndex int `json:"leafIndex"`
		Batch     struct {
			Seq int64 `json:"seq"`
			ID  int64 `json:"id"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(proof.data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Batch.Seq != e.BatchSeq || p.Batch.ID != e.BatchID || p.LeafIndex != e.Leaf {
		t.Errorf("delivered seal %+v, proof %+v", e, p)
	}

	// audit.streams: every stream caught up, the paused one paused.
	var list contract.StreamList
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		if err := json.Unmarshal(ask(t, nc, contract.SubjectStreams, `{}`).ok(t).data, &list); err != nil {
			t.Fatal(err)
		}
		for _, s := range list.Streams {
			if s.Name != "later" && (s.State != "active" || s.LagEvents != 0 || s.Delivered < int64(len(want))) {
				return false, fmt.Sprintf("%+v", s)
			}
		}
		return len(list.Streams) == 6, fmt.Sprintf("%d streams", len(list.Streams))
	})
	for _, s := range list.Streams {
		if s.Name == "later" && s.State != "paused" {
			t.Errorf("paused stream: %+v", s)
		}
		if s.Name == "hook" && s.Failed < 2 {
			t.Errorf("webhook stream counted %d failures, want 2", s.Failed)
		}
	}
	cenv := clientEnv(env, svc)
	out, err := servicetest.Client(ctx, t, cenv, "streams")
	if err != nil || !strings.Contains(out, "hook") || !strings.Contains(out, "paused") || !strings.Contains(out, "active") {
		t.Errorf("auditq streams: %v\n%s", err, out)
	}
	if v := servicetest.Metric(t, svc.HTTPAddr(), `auditq_stream_delivered_total{stream="hook"}`); v < float64(len(want)) {
		t.Errorf("auditq_stream_delivered_total of hook = %v", v)
	}
	if v := servicetest.Metric(t, svc.HTTPAddr(), `auditq_stream_failed_total{stream="splunk"}`); v < 1 {
		t.Errorf("auditq_stream_failed_total of splunk = %v, want the unindexed batch", v)
	}
}

// A stream that is down keeps its backlog and reports it: retrying, with
// the last error and the lag; once it answers again it gets everything.
func TestStreamsRetryAnOutage(t *testing.T) {
	hook, err := streamstest.NewWebhook(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hook.Close() })
	hook.SetDown(true)
	env := servicetest.Env(t)
	env["AUDITQ_STREAMS_FILE"] = writeStreams(t, map[string]any{"name": "hook", "sink": "webhook", "url": hook.URL(), "secret": hookSecret})
	svc := servicetest.Start(t, env)
	nc := natsClient(t, svc)
	js, _ := jetstream.New(nc)
	var want []string
	var msgs []*nats.Msg
	for i := range 40 {
		id := fmt.Sprintf("out-%02d", i)
		want = append(want, id)
		msgs = append(msgs, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "doc.read")))
	}
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		var list contract.StreamList
		_ = json.Unmarshal(ask(t, nc, contract.SubjectStreams, `{}`).ok(t).data, &list)
		s := list.Streams[0]
		return s.State == "retrying" && s.LastError != nil && strings.Contains(*s.LastError, "503") && s.LagEvents >= 40 && s.LagSeconds > 0,
			fmt.Sprintf("%+v", s)
	})
	hook.SetDown(false)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		r := streamstest.Check(hook.Events(), want)
		return len(r.Missing) == 0, r.String()
	})
	if r := streamstest.Check(hook.Events(), want); r.Duplicates != 0 || len(r.Disorder) != 0 {
		t.Errorf("after the outage: %s", r)
	}
}

// Bad stream settings stop the start with an error naming the stream and
// the field; streams without tamper evidence are refused.
func TestStreamsRefuseBadSettings(t *testing.T) {
	for _, c := range []struct {
		stream map[string]any
		env    map[string]string
		want   string
	}{
		{map[string]any{"name": "h", "sink": "webhook", "url": "ftp://x", "secret": hookSecret}, nil, `stream "h": url`},
		{map[string]any{"name": "h", "sink": "webhook", "url": "http://x", "secret": "short"}, nil, `stream "h": secret`},
		{map[string]any{"name": "s", "sink": "splunk", "url": "http://x"}, nil, `stream "s": token`},
		{map[string]any{"name": "e", "sink": "elasticsearch", "url": "http://x"}, nil, `stream "e": index`},
		{map[string]any{"name": "n", "sink": "nats", "subject": "audit.log"}, nil, `stream "n": subject`},
		{map[string]any{"name": "f", "sink": "file", "path": "/tmp", "format": "xml"}, nil, `stream "f": format`},
		{map[string]any{"name": "Bad Name", "sink": "file", "path": "/tmp"}, nil, `name`},
		{map[string]any{"name": "x", "sink": "kafka"}, nil, `stream "x": sink`},
		{map[string]any{"name": "f", "sink": "file", "path": "/tmp", "keepFiles": -2}, nil, `stream "f": keepFiles`},
		{map[string]any{"name": "n", "sink": "nats", "subject": "siem", "username": "u", "password": "p"}, nil, `stream "n": url`},
		{map[string]any{"name": "n", "sink": "nats", "subject": "siem", "url": "http://x:4222"}, nil, `stream "n": url`},
		{map[string]any{"name": "n", "sink": "nats", "subject": "siem", "url": "nats://u:p@x:4222"}, nil, `stream "n": url`},
		{map[string]any{"name": "n", "sink": "nats", "subject": "siem", "url": "nats://x:4222", "username": "u"}, nil, `stream "n": username, password`},
		{map[string]any{"name": "n", "sink": "nats", "subject": "siem", "url": "nats://x:4222", "token": "t", "credsFile": "/c"}, nil, `stream "n": username, token, credsFile, nkeyFile`},
		{map[string]any{"name": "n", "sink": "nats", "subject": "siem", "url": "nats://x:4222", "credsFile": "/nonexistent.creds"}, nil, `stream "n": credsFile`},
	} {
		env := servicetest.Env(t)
		env["AUDITQ_STREAMS_FILE"] = writeStreams(t, c.stream)
		if _, err := servicetest.TryStart(t, env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: start error %v, want one naming %s", c.stream, err, c.want)
		}
	}
}

// Two instances on one database and one stream: one of them holds the
// lease and delivers; the webhook gets every event once, and
// audit.streams on either names the same owner.
func TestStreamsOneInstanceDeliversEachStream(t *testing.T) {
	hook, err := streamstest.NewWebhook(hookSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hook.Close() })
	env := servicetest.Env(t)
	env["AUDITQ_SIGNING_KEY_FILE"] = filepath.Join(t.TempDir(), "key.pem")
	env["AUDITQ_STREAMS_FILE"] = writeStreams(t, map[string]any{"name": "hook", "sink": "webhook", "url": hook.URL(), "secret": hookSecret, "batchSize": 10})
	env2 := map[string]string{}
	for k, v := range env {
		env2[k] = v
	}
	env2["AUDITQ_DATA_DIR"] = t.TempDir()
	a := servicetest.Start(t, env)
	b := servicetest.Start(t, env2)
	var want []string
	for i, svc := range []*service.Service{a, b} {
		nc := natsClient(t, svc)
		js, _ := jetstream.New(nc)
		var msgs []*nats.Msg
		for j := range 100 {
			id := fmt.Sprintf("two-%d-%03d", i, j)
			want = append(want, id)
			msgs = append(msgs, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "doc.read")))
		}
		servicetest.PublishAll(t, js, msgs)
	}
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		r := streamstest.Check(hook.Events(), want)
		return len(r.Missing) == 0, r.String()
	})
	if r := streamstest.Check(hook.Events(), want); r.Duplicates != 0 || len(r.Disorder) != 0 || r.Rewinds != 0 {
		t.Errorf("two instances: %s", r)
	}
	var owners []string
	for _, svc := range []*service.Service{a, b} {
		var list contract.StreamList
		if err := json.Unmarshal(ask(t, natsClient(t, svc), contract.SubjectStreams, `{}`).ok(t).data, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Streams) != 1 || list.Streams[0].Owner == nil {
			t.Fatalf("audit.streams: %+v", list.Streams)
		}
		owners = append(owners, *list.Streams[0].Owner)
	}
	if owners[0] != owners[1] {
		t.Errorf("owners %q and %q", owners[0], owners[1])
	}
}

// siemNATS starts a second embedded NATS server, standing for a SIEM's:
// account SIEM (JetStream on, user siem with password pass) beside the
// default one, on a random port. It returns the URL.
func siemNATS(t *testing.T, pass string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "siem.conf")
	body := fmt.Sprintf(`listen: "127.0.0.1:-1"
jetstream { store_dir: %q }
accounts { SIEM { jetstream: enabled, users: [{user: siem, password: %q}] } }
`, t.TempDir(), pass)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("the SIEM's NATS server did not start")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// A nats stream with its own url and credentials publishes to that
// server's account, not on the service's NATS; one whose password the
// server refuses is retrying with the server's error and delivers
// nothing.
func TestStreamsNATSSinkOwnServer(t *testing.T) {
	siemURL := siemNATS(t, "siem-secret-pass")
	siem, err := nats.Connect(siemURL, nats.UserInfo("siem", "siem-secret-pass"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(siem.Close)
	sjs, err := jetstream.New(siem)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The SIEM's server is not auditq's: a subject under audit.> is fine there.
	if _, err := sjs.CreateStream(ctx, jetstream.StreamConfig{Name: "AUDIT", Subjects: []string{"audit.copy"}}); err != nil {
		t.Fatal(err)
	}

	env := servicetest.Env(t)
	env["SIEM_NATS_PASSWORD"] = "siem-secret-pass"
	env["AUDITQ_STREAMS_FILE"] = writeStreams(t,
		map[string]any{"name": "siem", "sink": "nats", "format": "cloudevents", "url": siemURL, "subject": "audit.copy",
			"jetStream": true, "username": "siem", "passwordEnv": "SIEM_NATS_PASSWORD"},
		map[string]any{"name": "refused", "sink": "nats", "url": siemURL, "subject": "audit.refused",
			"username": "siem", "password": "wrong-password"},
	)
	svc := servicetest.Start(t, env)
	nc := natsClient(t, svc)
	own, err := nc.SubscribeSync("audit.copy")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var msgs []*nats.Msg
	for i := range 120 {
		id := fmt.Sprintf("sn-%03d", i)
		want = append(want, id)
		msgs = append(msgs, servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "doc.read")))
	}
	servicetest.PublishAll(t, js, msgs)

	var got []streamstest.Received
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		c, err := sjs.OrderedConsumer(ctx, "AUDIT", jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for {
			batch, err := c.FetchNoWait(500)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for m := range batch.Messages() {
				e, err := streamstest.ParseEvent(m.Data())
				if err != nil {
					t.Fatal(err)
				}
				e.Delivery = len(got)
				got = append(got, e)
				n++
			}
			if n == 0 {
				break
			}
		}
		return len(got) >= len(want), fmt.Sprintf("%d of %d events in the SIEM's stream", len(got), len(want))
	})
	if r := streamstest.Check(got, want); len(r.Missing) != 0 || len(r.Unexpected) != 0 || r.Duplicates != 0 || len(r.Disorder) != 0 {
		t.Errorf("SIEM's stream: %s", r)
	}
	if m, err := own.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("a stream message reached the service's own NATS: %s", m.Data)
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		var list contract.StreamList
		if err := json.Unmarshal(ask(t, nc, contract.SubjectStreams, `{}`).ok(t).data, &list); err != nil {
			t.Fatal(err)
		}
		for _, s := range list.Streams {
			if s.Name == "refused" {
				last := ""
				if s.LastError != nil {
					last = *s.LastError
				}
				return s.State == "retrying" && s.Delivered == 0 && strings.Contains(strings.ToLower(last), "authorization"), fmt.Sprintf("%+v %s", s, last)
			}
		}
		return false, "no stream refused"
	})
}
