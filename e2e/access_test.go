package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service/servicetest"
)

// externalConfig is the shipped configuration of an external nats-server
// with auditq's roles (docs/security.md).
const externalConfig = "../deploy/nats/auditq-external.conf"

// externalServer is a nats-server child running the shipped external
// configuration, with auditq's nkey user, on a free port.
type externalServer struct {
	node     *natsNode
	conf     string // the file the server runs: the shipped one, with listen and store
	seedFile string // auditq's nkey seed (AUDITQ_NATS_SERVICE_NKEY)
	pub      string // its public key
}

// startExternalNATS copies the shipped configuration into a directory of
// its own next to auditq-service.conf (auditq's public key), and starts
// nats-server on it.
func startExternalNATS(t *testing.T) externalServer {
	t.Helper()
	dir := t.TempDir()
	shipped, err := os.ReadFile(externalConfig)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	srv := externalServer{seedFile: filepath.Join(dir, "auditq.nk"), conf: filepath.Join(dir, "server.conf"), pub: pub}
	port := freePort(t)
	files := map[string]string{
		"auditq-external.conf": string(shipped),
		"auditq-service.conf":  "AUDITQ_SERVICE_NKEY: " + pub + "\n",
		"auditq.nk":            string(seed) + "\n",
		"server.conf": fmt.Sprintf("include \"auditq-external.conf\"\nlisten: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n}\n",
			port, filepath.Join(dir, "store")),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	node := startNATSNode(t, "external", port, srv.conf)
	srv.node = node
	return srv
}

// startNATSNode starts nats-server on conf (client port port), killed
// when the test ends, its log shown when the test fails.
func startNATSNode(t *testing.T, name string, port int, conf string) *natsNode {
	t.Helper()
	node := &natsNode{t: t, name: name, clientPort: port, confPath: conf, logPath: conf + ".log"}
	node.start(natsServerBinary(t))
	t.Cleanup(func() {
		if node.running() {
			node.kill9()
		}
		if t.Failed() {
			b, _ := os.ReadFile(node.logPath)
			t.Logf("nats-server %s output, last 3 KB:\n%s", name, tail(string(b), 3<<10))
		}
	})
	return node
}

func (s externalServer) url() string { return "nats://" + s.node.addr() }

// env is a child's environment connecting to s as auditq's own user,
// checking s's configuration file.
func (s externalServer) env(t *testing.T, dbURL string) map[string]string {
	env := childEnv(t, dbURL)
	delete(env, "AUDITQ_NATS_WEBSOCKET")
	env["AUDITQ_NATS_URL"] = s.url()
	env["AUDITQ_NATS_CONFIG"] = s.conf
	env["AUDITQ_NATS_SERVICE_NKEY"] = s.seedFile
	return env
}

// exitOutput waits for a child that must refuse to start and returns its
// output.
func exitOutput(t *testing.T, c *child) string {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not exit; output:\n%s", c.name, tail(c.output(), 3<<10))
	}
	if c.exitCode() == 0 {
		t.Fatalf("%s exited 0; output:\n%s", c.name, tail(c.output(), 3<<10))
	}
	return c.output()
}

// The roles of the example on a separate nats-server process, auditq
// connecting as its own nkey user: every subject against every role (the
// table of the embedded test), and a read recorded under the user the
// server authenticated. auditq refuses to start without its nkey, with an
// nkey the file does not hold, and against a server that admits clients
// without credentials into its account although the file it was given
// does not.
func TestRolesOnAnExternalNATSServer(t *testing.T) {
	skipIfShort(t)
	dbURL := pgtest.NewDatabase(t)
	srv := startExternalNATS(t)

	// Refusals at start, each naming what is wrong.
	env := srv.env(t, dbURL)
	delete(env, "AUDITQ_NATS_SERVICE_NKEY")
	if out := exitOutput(t, launchChild(t, "no-nkey", env)); !strings.Contains(out, "AUDITQ_NATS_SERVICE_NKEY: required with AUDITQ_NATS_URL and AUDITQ_NATS_CONFIG") {
		t.Errorf("without the nkey:\n%s", tail(out, 2<<10))
	}
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	env = srv.env(t, dbURL)
	env["AUDITQ_NATS_SERVICE_NKEY"] = otherFile
	if out := exitOutput(t, launchChild(t, "other-nkey", env)); !strings.Contains(out, "no user of account") || !strings.Contains(out, "has auditq's nkey") {
		t.Errorf("with an nkey the file does not hold:\n%s", tail(out, 2<<10))
	}

	// A server running a file that lets clients without credentials into
	// auditq's account, while auditq is given the shipped one.
	dir := t.TempDir()
	port := freePort(t)
	loose := filepath.Join(dir, "loose.conf")
	text := fmt.Sprintf(`listen: 127.0.0.1:%d
jetstream { store_dir: %q }
accounts { AUDITQ { jetstream: enabled, users: [{nkey: %s}, {user: intruder, password: intruder}] } }
no_auth_user: intruder
`, port, filepath.Join(dir, "store"), srv.pub)
	if err := os.WriteFile(loose, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	startNATSNode(t, "loose", port, loose)
	env = srv.env(t, dbURL)
	env["AUDITQ_NATS_URL"] = fmt.Sprintf("nats://127.0.0.1:%d", port)
	if out := exitOutput(t, launchChild(t, "loose-server", env)); !strings.Contains(out, "a client without credentials is admitted into account") {
		t.Errorf("against a server admitting anonymous clients into AUDITQ:\n%s", tail(out, 2<<10))
	}

	svc := startChild(t, "auditq", srv.env(t, dbURL))
	servicetest.CheckRoles(t, svc.natsURL())

	// A read as the reader is recorded under the reader.
	rc := servicetest.ConnectAs(t, srv.url(), servicetest.Reader)
	reply, err := rc.NC.Request(contract.SubjectQuery, []byte(`{"userId":"probe-external"}`), 20*time.Second)
	if err != nil || reply.Header.Get("Nats-Service-Error-Code") != "" {
		t.Fatalf("query as the reader: %v %v", err, reply)
	}
	db := servicetest.OpenDB(t, map[string]string{"AUDITQ_DATABASE_URL": dbURL})
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		var users []string
		err := db.NewSelect().Table("audit_logs").ColumnExpr("coalesce(user_id, '')").
			Where("action = 'audit.query' AND details->'request'->>'userId' = 'probe-external'").Scan(context.Background(), &users)
		return err == nil && len(users) == 1 && users[0] == "nats:READERS/reader", fmt.Sprintf("recorded readers %q, %v", users, err)
	})
}
