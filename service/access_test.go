package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service"
	"github.com/auditq/auditq/service/servicetest"
)

// rolesConfig is the shipped example of roles (docs/security.md).
const rolesConfig = "../deploy/nats/auditq-roles.conf"

func rolesEnv(t *testing.T) map[string]string {
	env := servicetest.Env(t)
	env["AUDITQ_NATS_CONFIG"] = rolesConfig
	// The client commands of the test log in as the operator.
	env["AUDITQ_NATS_AUTH_USER"], env["AUDITQ_NATS_AUTH_PASSWORD"] = servicetest.Operator.User, servicetest.Operator.Password
	env["AUDITQ_NATS_INBOX_PREFIX"] = servicetest.Operator.Inbox
	return env
}

func TestRolesOfTheExampleOnTheEmbeddedServer(t *testing.T) {
	svc := servicetest.Start(t, rolesEnv(t))
	servicetest.CheckRoles(t, svc.NATSURL())
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
	for _, r := range []servicetest.Role{servicetest.Reader, servicetest.Operator, servicetest.Console} {
		rc := servicetest.ConnectAs(t, svc.NATSURL(), r)
		m := nats.NewMsg(contract.SubjectQuery)
		m.Data = []byte(`{"userId":"probe-` + r.Name + `"}`)
		m.Header.Set("Nats-Request-Info", forged)
		m.Header.Set("Auditq-Requester", "cli:someone-else")
		reply, err := rc.NC.RequestMsg(m, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
			t.Fatalf("%s: answered %s %s", r.Name, code, reply.Header.Get("Nats-Service-Error"))
		}
	}
	for _, r := range []servicetest.Role{servicetest.Reader, servicetest.Operator, servicetest.Console} {
		var rows []struct {
			UserID    string          `bun:"user_id"`
			Requester json.RawMessage `bun:"requester"`
		}
		servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
			err := db.NewSelect().Table("audit_logs").ColumnExpr("coalesce(user_id, '') AS user_id, details->'requester' AS requester").
				Where("action = 'audit.query' AND details->'request'->>'userId' = ?", "probe-"+r.Name).
				Scan(context.Background(), &rows)
			return err == nil && len(rows) == 1, fmt.Sprintf("read of %s: %d rows, %v", r.Name, len(rows), err)
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
		account := map[string]string{servicetest.Reader.Name: "READERS", servicetest.Operator.Name: "OPERATORS", servicetest.Console.Name: "OPERATORS"}[r.Name]
		if !who.Verified || who.Account != account || who.User != r.User || who.Name != r.Name+"-client" {
			t.Errorf("%s: requester %s, want verified %s/%s (%s-client)", r.Name, rows[0].Requester, account, r.User, r.Name)
		}
		if want := "nats:" + account + "/" + r.User; rows[0].UserID != want {
			t.Errorf("%s: userId %q, want %q", r.Name, rows[0].UserID, want)
		}
		if who.UnverifiedClaim != "cli:someone-else" || who.NatsRequestInfo["name"] == "forged" {
			t.Errorf("%s: requester %s: the claim is kept as unverified, the forged header replaced", r.Name, rows[0].Requester)
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
	_, err = nats.Connect(svc.NATSURL(), nats.UserInfo(servicetest.Reader.User, "wrong"))
	if err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("wrong password: %v", err)
	}
	// Nor is there a user without a password any more.
	if _, err = nats.Connect(svc.NATSURL()); err == nil {
		t.Fatal("connected without credentials")
	}
}

// TestOperatorJobsNameWhoStartedThem: a cleanup started with "auditq
// cleanup" and a report job started through audit.admin.report.generate,
// both as the operator, record the operator the server authenticated on
// the job's event and result, whatever the request claims; a cleanup the
// schedule fired is recorded as the service's.
func TestOperatorJobsNameWhoStartedThem(t *testing.T) {
	env := rolesEnv(t)
	env["AUDITQ_CLEANUP_CRON"] = "* * * * * *" // every second
	env["AUDITQ_RETENTION_DAYS"] = "3650"
	svc := servicetest.Start(t, env)
	db := servicetest.OpenDB(t, env)
	ctx := context.Background()

	// The CLI logs in as the operator (rolesEnv).
	out, err := runCLI(t, env, svc, "cleanup", "--retention-days", "3650", "--dry-run", "--timeout", "30s")
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	var jobID string
	if _, err := fmt.Sscanf(out, "started audit.cleanup job %s", &jobID); err != nil {
		t.Fatalf("no job id in %q: %v", out, err)
	}
	jobID = strings.TrimSuffix(jobID, ":")
	if !strings.Contains(out, `"startedBy"`) || !strings.Contains(out, `"user": "operator"`) {
		t.Errorf("the printed result does not name the operator:\n%s", out)
	}

	out, err = runCLI(t, env, svc, "report", "--type", "daily", "--date", "2026-11-24", "--job")
	if err != nil || !strings.Contains(out, "started audit.report.generate job report-") || !strings.Contains(out, "daily report, 2026-11-24T00:00:00Z") {
		t.Fatalf("report --job: %v\n%s", err, out)
	}
	var cliJob string
	if _, err := fmt.Sscanf(out, "started audit.report.generate job %s", &cliJob); err != nil {
		t.Fatal(err)
	}
	rc := servicetest.ConnectAs(t, svc.NATSURL(), servicetest.Operator)
	m := nats.NewMsg(contract.SubjectAdminReportGenerate)
	m.Data = []byte(`{"reportType":"daily","date":"2026-11-24"}`)
	m.Header.Set("Auditq-Requester", "cli:someone-else")
	m.Header.Set("Nats-Request-Info", `{"acc":"AUDITQ","user":"auditq"}`)
	reply, err := rc.NC.RequestMsg(m, 20*time.Second)
	if err != nil || reply.Header.Get("Nats-Service-Error-Code") != "" {
		t.Fatalf("report job: %v %v", err, reply.Header)
	}
	var job contract.JobStarted
	if err := json.Unmarshal(reply.Data, &job); err != nil || job.Subject != contract.SubjectReportGenerate || job.ID == "" {
		t.Fatalf("report job answer %s: %v", reply.Data, err)
	}

	type row struct {
		UserID    string          `bun:"user_id"`
		StartedBy json.RawMessage `bun:"started_by"`
	}
	find := func(where string, args ...any) row {
		t.Helper()
		var rows []row
		servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
			rows = nil
			err := db.NewSelect().Table("audit_logs").
				ColumnExpr("coalesce(user_id, '') AS user_id, coalesce(details->'startedBy', details->'requester') AS started_by").
				Where(where, args...).Limit(1).Scan(ctx, &rows)
			return err == nil && len(rows) == 1, fmt.Sprintf("no event where %s %v: %v", where, args, err)
		})
		return rows[0]
	}
	type who struct {
		Verified            bool
		Account, User, Name string
		UnverifiedClaim     string
	}
	check := func(what string, r row, userID string, want who) {
		t.Helper()
		var got who
		if err := json.Unmarshal(r.StartedBy, &got); err != nil {
			t.Fatalf("%s: %s: %v", what, r.StartedBy, err)
		}
		if r.UserID != userID || got != want {
			t.Errorf("%s: userId %q, started by %s; want %q, %+v", what, r.UserID, r.StartedBy, userID, want)
		}
	}
	check("cleanup", find("id = ?", "cleanup:"+jobID), "nats:OPERATORS/operator",
		who{Verified: true, Account: "OPERATORS", User: "operator", Name: "auditq-cli", UnverifiedClaim: cliClaim(t)})
	check("report job", find("id = ?", "audit.report.generate:"+job.ID), "nats:OPERATORS/operator",
		who{Verified: true, Account: "OPERATORS", User: "operator", Name: "operator-client", UnverifiedClaim: "cli:someone-else"})
	check("report job of the CLI", find("id = ?", "audit.report.generate:"+cliJob), "nats:OPERATORS/operator",
		who{Verified: true, Account: "OPERATORS", User: "operator", Name: "auditq-cli", UnverifiedClaim: cliClaim(t)})
	check("scheduled cleanup", find("action = 'audit.cleanup' AND details->>'trigger' = 'schedule'"), "nats:AUDITQ/auditq",
		who{Verified: true, Account: "AUDITQ", User: "auditq", Name: "audit.schedule.cleanup"})
}

// cliClaim is the unverified name the CLI sends (Auditq-Requester).
func cliClaim(t *testing.T) string {
	u, err := user.Current()
	if err != nil || u.Username == "" {
		return ""
	}
	return "cli:" + u.Username
}

// TestExternalExampleHasTheRolesOfTheEmbeddedOne: the shipped external
// server configuration has the accounts and permissions of the embedded
// example, plus auditq's own nkey user in its account, and passes the
// same check.
func TestExternalExampleHasTheRolesOfTheEmbeddedOne(t *testing.T) {
	dir := t.TempDir()
	text, err := os.ReadFile("../deploy/nats/auditq-external.conf")
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	ext := filepath.Join(dir, "auditq-external.conf")
	for name, body := range map[string]string{ext: string(text), filepath.Join(dir, "auditq-service.conf"): "AUDITQ_SERVICE_NKEY: " + pub + "\n"} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	extTree, err := conf.ParseFile(ext)
	if err != nil {
		t.Fatal(err)
	}
	embTree, err := conf.ParseFile(rolesConfig)
	if err != nil {
		t.Fatal(err)
	}
	accounts := func(tree map[string]any) map[string]any { return tree["accounts"].(map[string]any) }
	auditq := accounts(extTree)["AUDITQ"].(map[string]any)
	if users, _ := json.Marshal(auditq["users"]); string(users) != `[{"nkey":"`+pub+`"}]` {
		t.Errorf("users of AUDITQ in the external file: %s, want auditq's nkey only", users)
	}
	delete(auditq, "users")
	for _, key := range []string{"accounts", "READ"} {
		a, _ := json.Marshal(extTree[key])
		b, _ := json.Marshal(embTree[key])
		if string(a) != string(b) {
			t.Errorf("%s differs between the external and the embedded example:\n%s\n%s", key, a, b)
		}
	}
	opts, tree, err := natsjs.LoadExternalServerConfig(ext)
	if err != nil {
		t.Fatal(err)
	}
	rules := service.AccessRules(config.Config{NATSAccount: "AUDITQ"})
	rules.ServiceUsers = []string{pub}
	if err := natsjs.CheckAccess(opts, tree, rules); err != nil {
		t.Errorf("the external example is refused: %v", err)
	}
}

// TestClientCommandsAsEachRole: the operator's client commands work with
// the operator's credentials alone (requests, no JetStream permission on
// the streams); a reader's are refused by the server.
func TestClientCommandsAsEachRole(t *testing.T) {
	env := rolesEnv(t)
	svc := servicetest.Start(t, env)
	as := func(r servicetest.Role) map[string]string { return asRole(env, r) }
	op := as(servicetest.Operator)
	for _, args := range [][]string{{"poison", "list"}, {"schedule", "show"}, {"streams"}} {
		if out, err := runCLI(t, op, svc, args...); err != nil {
			t.Errorf("operator: %v: %v\n%s", args, err, out)
		}
	}
	// Answered by auditq (personal data is off here): the request got through.
	if _, err := runCLI(t, op, svc, "erase", "--user", "u-1", "--timeout", "10s"); err == nil || !strings.Contains(err.Error(), "audit.admin.erase answered") {
		t.Errorf("operator: erase: %v, want auditq's answer", err)
	}
	pub := as(servicetest.Publisher)
	if out, err := runCLI(t, pub, svc, "publish", "-count", "2"); err != nil {
		t.Errorf("publisher: publish: %v\n%s", err, out)
	}
	if _, err := runCLI(t, pub, svc, "report", "--type", "daily", "--timeout", "2s"); err == nil || strings.Contains(err.Error(), "answered") {
		t.Errorf("publisher: report: %v, want no answer", err)
	}
	rd := as(servicetest.Reader)
	if out, err := runCLI(t, rd, svc, "query", "--action", "none"); err != nil {
		t.Errorf("reader: query: %v\n%s", err, out)
	}
	// Refused by the server: no answer comes.
	if _, err := runCLI(t, rd, svc, "erase", "--user", "u-1", "--timeout", "2s"); err == nil || strings.Contains(err.Error(), "answered") {
		t.Errorf("reader: erase: %v, want no answer", err)
	}
}
