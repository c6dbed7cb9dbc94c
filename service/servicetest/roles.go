package servicetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/ports/contract"
)

// The roles of the example NATS configurations
// (deploy/nats/auditq-roles.conf for the embedded server,
// deploy/nats/auditq-external.conf for an external one) and the table of
// what each may do, shared by the tests of both.

// Role is a user of the example configuration, with the password its
// bcrypt hash was made from and its private inbox prefix.
type Role struct {
	Name, User, Password, Inbox string
}

// The users of the example configurations.
var (
	Publisher = Role{"publisher", "publisher", "publisher-example", "_INBOX_publisher"}
	Reader    = Role{"reader", "reader", "reader-example", "_INBOX_reader"}
	Operator  = Role{"operator", "operator", "operator-example", "_INBOX_operator"}
	Console   = Role{"console", "console", "console-example", "_INBOX_console"}
	Roles     = []Role{Publisher, Reader, Operator, Console}
)

// RoleConn is a connection as one Role that collects the server's
// permission errors.
type RoleConn struct {
	NC *nats.Conn

	mu   sync.Mutex
	errs []string
}

// connectMu makes ConnectAs connect one at a time.
var connectMu sync.Mutex

// ConnectAs connects to url as r, on r's private inbox prefix, with the
// client name "<role>-client"; it fails the test when the server refuses.
func ConnectAs(t *testing.T, url string, r Role) *RoleConn {
	t.Helper()
	rc := &RoleConn{}
	// The server checks a bcrypt hash per connect: on a loaded machine a
	// few at once take longer than nats.go's default 2s, and one that
	// takes longer than the server's first PING (2s after the connection
	// opened) fails with the server's PING where nats.go waits for the
	// PONG of its handshake. So connects go one at a time, and that
	// failure is tried again.
	connectMu.Lock()
	defer connectMu.Unlock()
	var nc *nats.Conn
	var err error
	for range 3 {
		nc, err = nats.Connect(url, nats.UserInfo(r.User, r.Password), nats.CustomInboxPrefix(r.Inbox), nats.Name(r.Name+"-client"),
			nats.Timeout(15*time.Second),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				rc.mu.Lock()
				rc.errs = append(rc.errs, err.Error())
				rc.mu.Unlock()
			}))
		if err == nil || !strings.Contains(err.Error(), "expected 'PONG', got 'PING'") {
			break
		}
	}
	if err != nil {
		t.Fatalf("connect as %s: %v", r.Name, err)
	}
	t.Cleanup(nc.Close)
	rc.NC = nc
	return rc
}

// Errors returns the errors the server sent the connection so far
// (permission violations among them).
func (rc *RoleConn) Errors() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.errs)
}

// violation waits for the server's permission error naming what (e.g.
// `Publish to "audit.log"`), and reports whether it came before the
// permission error of sentinel, which the caller triggers after its
// action: errors arrive in order, so a missing one is known without
// waiting for a timeout.
func (rc *RoleConn) violation(t *testing.T, what, sentinel string) bool {
	t.Helper()
	var found bool
	Eventually(t, 20*time.Second, func() (bool, string) {
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

// action is one thing a Role tries: send a message (a request, an event
// or job through JetStream, a JetStream API call) and wait for its
// answer, or subscribe.
type Action struct {
	Kind    string // "send", "sub" or "qsub"
	Subject string
	Body    string
	Allowed []Role
}

// try does a and reports whether the server let it: for a send, whether
// an answer came back (any answer: the request reached auditq or
// JetStream) rather than a permission error; for a subscription, whether
// no permission error came.
func (rc *RoleConn) try(t *testing.T, r Role, a Action, n int) bool {
	t.Helper()
	// Every Role is refused this Subject: its error marks the end of
	// a's errors.
	sentinelSubj := fmt.Sprintf("audit.results.sentinel%d", n)
	sentinel := `Publish to "` + sentinelSubj + `"`
	var what string
	switch a.Kind {
	case "send":
		what = `Publish to "` + a.Subject + `"`
		inbox := r.Inbox + "." + nats.NewInbox()[len("_INBOX."):]
		replies := make(chan *nats.Msg, 1)
		sub, err := rc.NC.ChanSubscribe(inbox, replies)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		m := nats.NewMsg(a.Subject)
		m.Reply, m.Data = inbox, []byte(a.Body)
		if err := rc.NC.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		_ = rc.NC.Publish(sentinelSubj, nil)
		if rc.violation(t, what, sentinel) {
			return false
		}
		select {
		case reply := <-replies:
			if len(reply.Data) == 0 && reply.Header.Get("Status") == "503" {
				t.Fatalf("%s: %s: no responders (missing import?)", r.Name, a.Subject)
			}
			return true
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: %s: allowed, but no answer within 30s", r.Name, a.Subject)
		}
	case "sub", "qsub":
		var sub *nats.Subscription
		var err error
		if a.Kind == "sub" {
			what = `Subscription to "` + a.Subject + `"`
			sub, err = rc.NC.SubscribeSync(a.Subject)
		} else {
			what = `Subscription to "` + a.Subject + `" using queue "q"`
			sub, err = rc.NC.QueueSubscribeSync(a.Subject, "q")
		}
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		_ = rc.NC.Publish(sentinelSubj, nil)
		return !rc.violation(t, what, sentinel)
	}
	t.Fatalf("unknown action kind %q", a.Kind)
	return false
}

// roleActions is every subject of the contract against every Role of the
// example: what each may do, and that everything else is refused.
func RoleActions() []Action {
	readers := []Role{Reader, Operator, Console}
	var out []Action
	send := func(subject, body string, allowed ...Role) {
		out = append(out, Action{Kind: "send", Subject: subject, Body: body, Allowed: allowed})
	}
	event := `{"action":"Role.test","resourceType":"test","resourceId":"1"}`
	send(contract.SubjectLog, event, Publisher, Operator)
	send(contract.SubjectBulk, `{"events":[`+event+`]}`, Publisher, Operator)
	// Every operator request; its answer (a refusal of an incomplete
	// body included) shows that it reached auditq.
	for _, s := range append(contract.AdminRequestSubjects(), contract.SubjectAdminErase, contract.SubjectStreams) {
		body := map[string]string{
			contract.SubjectAdminCleanup: `{"retentionDays":3650,"dryRun":true}`, contract.SubjectAdminReportGenerate: `{"reportType":"daily","date":"2026-11-24"}`,
			contract.SubjectAdminCleanupDryRun: `{"retentionDays":3650}`,
		}[s]
		send(s, body, Operator)
	}
	for _, s := range []string{contract.SubjectReport, contract.SubjectReportGet, contract.SubjectReportList, contract.SubjectQuery,
		contract.SubjectEventGet, contract.SubjectEventProof, contract.SubjectPubKey, contract.SubjectSchema} {
		body := map[string]string{
			contract.SubjectReport: `{"reportType":"daily","date":"2026-11-24"}`, contract.SubjectReportGet: `{"id":1}`,
			contract.SubjectEventGet: `{"id":"none"}`, contract.SubjectEventProof: `{"id":"none"}`,
		}[s]
		send(s, body, readers...)
	}
	send(contract.SubjectCheckpointWrite, "", Operator, Console)
	// An export: its answer is a stream of messages across the accounts.
	send(contract.SubjectExport, `{"userId":"nobody"}`, readers...)
	send("$JS.API.STREAM.INFO.AUDIT_POISON", "", Operator)
	send("$JS.API.STREAM.INFO.AUDIT", "", Operator)
	// What only auditq publishes, and the JetStream API that would change
	// its streams: refused to everyone.
	// The cleanup and report job subjects are auditq's too: operators
	// start those jobs through audit.admin.*, which names who did.
	for _, s := range []string{contract.SubjectCleanup, contract.SubjectReportGenerate, contract.SubjectBulkResults, contract.SubjectCleanupResults, contract.SubjectReportResults,
		contract.PoisonPrefix + "log", contract.PoisonPrefix + "bulk", contract.SubjectCheckpoints, contract.SchedulePrefix + "cleanup",
		"$JS.API.STREAM.DELETE.AUDIT", "$JS.API.STREAM.PURGE.AUDIT", "$JS.API.STREAM.MSG.DELETE.AUDIT",
		"$JS.API.STREAM.UPDATE.AUDIT_CHECKPOINTS", "$JS.API.CONSUMER.CREATE.AUDIT", "$JS.API.STREAM.CREATE.AUDIT_RESULTS",
		// A publisher waits for its bulk result on audit.results.bulk; no
		// role reads AUDIT_RESULTS through a consumer of its own.
		"$JS.API.CONSUMER.CREATE.AUDIT_RESULTS"} {
		send(s, "{}")
	}
	// Nobody but auditq answers a request, in its queue group or not.
	for _, s := range contract.RequestSubjects() {
		out = append(out, Action{Kind: "sub", Subject: s}, Action{Kind: "qsub", Subject: s})
	}
	out = append(out,
		Action{Kind: "sub", Subject: contract.SubjectBulkResults, Allowed: []Role{Publisher, Operator}},
		Action{Kind: "sub", Subject: contract.ResultSubjects, Allowed: []Role{Operator}},
		Action{Kind: "sub", Subject: "_INBOX.>"},
		Action{Kind: "sub", Subject: contract.SubjectLog},
	)
	return out
}

// checkRoles runs every action as every Role against the server at url.
func CheckRoles(t *testing.T, url string) {
	conns := map[string]*RoleConn{}
	for _, r := range Roles {
		conns[r.Name] = ConnectAs(t, url, r)
	}
	for i, a := range RoleActions() {
		for _, r := range Roles {
			want := false
			for _, ok := range a.Allowed {
				want = want || ok == r
			}
			if got := conns[r.Name].try(t, r, a, i); got != want {
				t.Errorf("%s %s %s: allowed %v, want %v", r.Name, a.Kind, a.Subject, got, want)
			}
		}
	}
}
