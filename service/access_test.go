package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// rolesConfig is the shipped example of roles (docs/security.md).
const rolesConfig = "../deploy/nats/auditq-roles.conf"

// role is a user of the example configuration, with the password its
// bcrypt hash was made from and its private inbox prefix.
type role struct {
	name, user, password, inbox string
}

var (
	publisher = role{"publisher", "publisher", "publisher-example", "_INBOX_publisher"}
	reader    = role{"reader", "reader", "reader-example", "_INBOX_reader"}
	operator  = role{"operator", "operator", "operator-example", "_INBOX_operator"}
	console   = role{"console", "console", "console-example", "_INBOX_console"}
	roles     = []role{publisher, reader, operator, console}
)

// roleConn is a connection as one role that collects the server's
// permission errors.
type roleConn struct {
	nc *nats.Conn

	mu   sync.Mutex
	errs []string
}

func connectAs(t *testing.T, url string, r role) *roleConn {
	t.Helper()
	rc := &roleConn{}
	nc, err := nats.Connect(url, nats.UserInfo(r.user, r.password), nats.CustomInboxPrefix(r.inbox), nats.Name(r.name+"-client"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			rc.mu.Lock()
			rc.errs = append(rc.errs, err.Error())
			rc.mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", r.name, err)
	}
	t.Cleanup(nc.Close)
	rc.nc = nc
	return rc
}

// violation waits for the server's permission error naming what (e.g.
// `Publish to "audit.log"`), and reports whether it came before the
// permission error of sentinel, which the caller triggers after its
// action: errors arrive in order, so a missing one is known without
// waiting for a timeout.
func (rc *roleConn) violation(t *testing.T, what, sentinel string) bool {
	t.Helper()
	var found bool
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for i, e := range rc.errs {
			switch {
			case strings.Contains(e, "Permissions Violation for "+what):
				found = true
				rc.errs = rc.errs[i+1:]
				return true, ""
			case strings.Contains(e, sentinel):
				rc.errs = rc.errs[i+1:]
				return true, ""
			}
		}
		return false, fmt.Sprintf("no permission error for %s nor %s among %q", what, sentinel, rc.errs)
	})
	return found
}

// action is one thing a role tries: send a message (a request, an event
// or job through JetStream, a JetStream API call) and wait for its
// answer, or subscribe.
type action struct {
	kind    string // "send", "sub" or "qsub"
	subject string
	body    string
	allowed []role
}

// try does a and reports whether the server let it: for a send, whether
// an answer came back (any answer: the request reached auditq or
// JetStream) rather than a permission error; for a subscription, whether
// no permission error came.
func (rc *roleConn) try(t *testing.T, r role, a action, n int) bool {
	t.Helper()
	// Every role is refused this subject: its error marks the end of
	// a's errors.
	sentinelSubj := fmt.Sprintf("audit.results.sentinel%d", n)
	sentinel := `Publish to "` + sentinelSubj + `"`
	var what string
	switch a.kind {
	case "send":
		what = `Publish to "` + a.subject + `"`
		inbox := r.inbox + "." + nats.NewInbox()[len("_INBOX."):]
		replies := make(chan *nats.Msg, 1)
		sub, err := rc.nc.ChanSubscribe(inbox, replies)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		m := nats.NewMsg(a.subject)
		m.Reply, m.Data = inbox, []byte(a.body)
		if err := rc.nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		_ = rc.nc.Publish(sentinelSubj, nil)
		if rc.violation(t, what, sentinel) {
			return false
		}
		select {
		case reply := <-replies:
			if len(reply.Data) == 0 && reply.Header.Get("Status") == "503" {
				t.Fatalf("%s: %s: no responders (missing import?)", r.name, a.subject)
			}
			return true
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: %s: allowed, but no answer within 30s", r.name, a.subject)
		}
	case "sub", "qsub":
		var sub *nats.Subscription
		var err error
		if a.kind == "sub" {
			what = `Subscription to "` + a.subject + `"`
			sub, err = rc.nc.SubscribeSync(a.subject)
		} else {
			what = `Subscription to "` + a.subject + `" using queue "q"`
			sub, err = rc.nc.QueueSubscribeSync(a.subject, "q")
		}
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		_ = rc.nc.Publish(sentinelSubj, nil)
		return !rc.violation(t, what, sentinel)
	}
	t.Fatalf("unknown action kind %q", a.kind)
	return false
}

// roleActions is every subject of the contract against every role of the
// example: what each may do, and that everything else is refused.
func roleActions() []action {
	readers := []role{reader, operator, console}
	var out []action
	send := func(subject, body string, allowed ...role) {
		out = append(out, action{kind: "send", subject: subject, body: body, allowed: allowed})
	}
	event := `{"action":"role.test","resourceType":"test","resourceId":"1"}`
	send(contract.SubjectLog, event, publisher, operator)
	send(contract.SubjectBulk, `{"events":[`+event+`]}`, publisher, operator)
	send(contract.SubjectCleanup, `{"retentionDays":3650,"dryRun":true}`, operator)
	send(contract.SubjectReportGenerate, `{"reportType":"daily","date":"2026-11-24"}`, operator)
	for _, s := range []string{contract.SubjectReport, contract.SubjectReportGet, contract.SubjectReportList, contract.SubjectQuery,
		contract.SubjectEventGet, contract.SubjectEventProof, contract.SubjectPubKey, contract.SubjectSchema} {
		body := map[string]string{
			contract.SubjectReport: `{"reportType":"daily","date":"2026-11-24"}`, contract.SubjectReportGet: `{"id":1}`,
			contract.SubjectEventGet: `{"id":"none"}`, contract.SubjectEventProof: `{"id":"none"}`,
		}[s]
		send(s, body, readers...)
	}
	send(contract.SubjectCheckpointWrite, "", operator, console)
	// An export (its answer is a stream of messages across the accounts),
	// and the operator's requests.
	send(contract.SubjectExport, `{"userId":"nobody"}`, readers...)
	for _, s := range contract.AdminRequestSubjects() {
		send(s, map[string]string{contract.SubjectAdminPoisonGet: `{"seq":1}`, contract.SubjectAdminPoisonReplay: `{"seq":1}`,
			contract.SubjectAdminPoisonDiscard: `{"seq":1}`}[s], operator)
	}
	send("$JS.API.STREAM.INFO.AUDIT_POISON", "", operator)
	send("$JS.API.STREAM.INFO.AUDIT", "", operator)
	// What only auditq publishes, and the JetStream API that would change
	// its streams: refused to everyone.
	for _, s := range []string{contract.SubjectBulkResults, contract.SubjectCleanupResults, contract.SubjectReportResults,
		contract.PoisonPrefix + "log", contract.PoisonPrefix + "bulk", contract.SubjectCheckpoints, contract.SchedulePrefix + "cleanup",
		"$JS.API.STREAM.DELETE.AUDIT", "$JS.API.STREAM.PURGE.AUDIT", "$JS.API.STREAM.MSG.DELETE.AUDIT",
		"$JS.API.STREAM.UPDATE.AUDIT_CHECKPOINTS", "$JS.API.CONSUMER.CREATE.AUDIT", "$JS.API.STREAM.CREATE.AUDIT_RESULTS"} {
		send(s, "{}")
	}
	// Nobody but auditq answers a request, in its queue group or not.
	for _, s := range contract.RequestSubjects() {
		out = append(out, action{kind: "sub", subject: s}, action{kind: "qsub", subject: s})
	}
	out = append(out,
		action{kind: "sub", subject: contract.SubjectBulkResults, allowed: []role{publisher, operator}},
		action{kind: "sub", subject: contract.ResultSubjects, allowed: []role{operator}},
		action{kind: "sub", subject: "_INBOX.>"},
		action{kind: "sub", subject: contract.SubjectLog},
	)
	return out
}

// checkRoles runs every action as every role against the server at url.
func checkRoles(t *testing.T, url string) {
	conns := map[string]*roleConn{}
	for _, r := range roles {
		conns[r.name] = connectAs(t, url, r)
	}
	for i, a := range roleActions() {
		for _, r := range roles {
			want := false
			for _, ok := range a.allowed {
				want = want || ok == r
			}
			if got := conns[r.name].try(t, r, a, i); got != want {
				t.Errorf("%s %s %s: allowed %v, want %v", r.name, a.kind, a.subject, got, want)
			}
		}
	}
}

func rolesEnv(t *testing.T) map[string]string {
	env := servicetest.Env(t)
	env["AUDITQ_NATS_CONFIG"] = rolesConfig
	// The client commands of the test log in as the operator.
	env["AUDITQ_NATS_AUTH_USER"], env["AUDITQ_NATS_AUTH_PASSWORD"] = operator.user, operator.password
	return env
}

func TestRolesOfTheExampleOnTheEmbeddedServer(t *testing.T) {
	svc := servicetest.Start(t, rolesEnv(t))
	checkRoles(t, svc.NATSURL())
}

// TestReadsNameTheAuthenticatedIdentity asks as each role that may read,
// with a payload-free claim and a forged Nats-Request-Info header naming
// someone else, and finds each read recorded under the user the server
// authenticated.
func TestReadsNameTheAuthenticatedIdentity(t *testing.T) {
	env := rolesEnv(t)
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	forged := `{"acc":"AUDITQ","user":"auditq","name":"forged"}`
	for _, r := range []role{reader, operator, console} {
		rc := connectAs(t, svc.NATSURL(), r)
		m := nats.NewMsg(contract.SubjectQuery)
		m.Data = []byte(`{"userId":"probe-` + r.name + `"}`)
		m.Header.Set("Nats-Request-Info", forged)
		m.Header.Set("Auditq-Requester", "cli:someone-else")
		reply, err := rc.nc.RequestMsg(m, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
			t.Fatalf("%s: answered %s %s", r.name, code, reply.Header.Get("Nats-Service-Error"))
		}
	}
	for _, r := range []role{reader, operator, console} {
		var rows []struct {
			UserID    string          `bun:"user_id"`
			Requester json.RawMessage `bun:"requester"`
		}
		servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
			err := db.NewSelect().Table("audit_logs").ColumnExpr("coalesce(user_id, '') AS user_id, details->'requester' AS requester").
				Where("action = 'audit.query' AND details->'request'->>'userId' = ?", "probe-"+r.name).
				Scan(context.Background(), &rows)
			return err == nil && len(rows) == 1, fmt.Sprintf("read of %s: %d rows, %v", r.name, len(rows), err)
		})
		var who struct {
			Verified            bool
			Account, User, Name string
			UnverifiedClaim     string
			NatsRequestInfo     map[string]any
		}
		if err := json.Unmarshal(rows[0].Requester, &who); err != nil {
			t.Fatal(err)
		}
		account := map[string]string{reader.name: "READERS", operator.name: "OPERATORS", console.name: "OPERATORS"}[r.name]
		if !who.Verified || who.Account != account || who.User != r.user || who.Name != r.name+"-client" {
			t.Errorf("%s: requester %s, want verified %s/%s (%s-client)", r.name, rows[0].Requester, account, r.user, r.name)
		}
		if want := "nats:" + account + "/" + r.user; rows[0].UserID != want {
			t.Errorf("%s: userId %q, want %q", r.name, rows[0].UserID, want)
		}
		if who.UnverifiedClaim != "cli:someone-else" || who.NatsRequestInfo["name"] == "forged" {
			t.Errorf("%s: requester %s: the claim is kept as unverified, the forged header replaced", r.name, rows[0].Requester)
		}
	}
}

// TestBadNATSConfigurationIsRefusedAtStart: a file breaking a rule stops
// the start naming the file, the rule and the user; a client with a wrong
// password gets the server's authorization error.
func TestBadNATSConfigurationIsRefusedAtStart(t *testing.T) {
	text, err := os.ReadFile(rolesConfig)
	if err != nil {
		t.Fatal(err)
	}
	// The reader may now also subscribe to every audit subject.
	broken := strings.Replace(string(text), `subscribe: {allow: ["_INBOX_reader.>"]}`, `subscribe: {allow: ["_INBOX_reader.>", "audit.>"]}`, 1)
	if broken == string(text) {
		t.Fatal("the example's reader permissions changed; update this test")
	}
	path := filepath.Join(t.TempDir(), "broken.conf")
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	env := rolesEnv(t)
	env["AUDITQ_NATS_CONFIG"] = path
	_, err = servicetest.TryStart(t, env)
	if err == nil || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), `rule "only auditq subscribes to audit.query": user "reader" in account "READERS" may subscribe to audit.query (allow "audit.>")`) {
		t.Fatalf("start: %v", err)
	}

	svc := servicetest.Start(t, rolesEnv(t))
	_, err = nats.Connect(svc.NATSURL(), nats.UserInfo(reader.user, "wrong"))
	if err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("wrong password: %v", err)
	}
	// Nor is there a user without a password any more.
	if _, err = nats.Connect(svc.NATSURL()); err == nil {
		t.Fatal("connected without credentials")
	}
}
