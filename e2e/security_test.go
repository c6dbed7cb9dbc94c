package e2e

// Security basics: NATS authentication and TLS, a database role that
// cannot update audit rows, and no secret in logs or error replies.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/migrations"
	"github.com/auditq/auditq/service/servicetest"
)

// publishAndWait publishes one valid event through js and waits until it
// is stored.
func publishAndWait(t *testing.T, js jetstream.JetStream, env map[string]string, id string) {
	t.Helper()
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", id, servicetest.EventJSON(id, "doc.read"))})
	db := servicetest.OpenDB(t, env)
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = ?", id) == 1, "event " + id + " not stored"
	})
}

func TestEmbeddedNATSListensOnLoopbackByDefault(t *testing.T) {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(cfg.NATSListen)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("default AUDITQ_NATS_LISTEN = %s, want a loopback address", cfg.NATSListen)
	}
	// The console's WebSocket listener too.
	if host, _, err = net.SplitHostPort(cfg.NATSWebsocket); err != nil || !net.ParseIP(host).IsLoopback() {
		t.Fatalf("default AUDITQ_NATS_WEBSOCKET = %s, want a loopback address", cfg.NATSWebsocket)
	}
}

// With AUDITQ_NATS_AUTH_USER/PASSWORD (or TOKEN), the embedded server
// refuses clients without them, and the service itself still works.
func TestEmbeddedNATSRequiresConfiguredAuth(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		good, bad []nats.Option
	}{
		{"user and password",
			map[string]string{"AUDITQ_NATS_AUTH_USER": "auditq", "AUDITQ_NATS_AUTH_PASSWORD": "s3cret-pw"},
			[]nats.Option{nats.UserInfo("auditq", "s3cret-pw")}, []nats.Option{nats.UserInfo("auditq", "wrong")}},
		{"token",
			map[string]string{"AUDITQ_NATS_AUTH_TOKEN": "s3cret-token"},
			[]nats.Option{nats.Token("s3cret-token")}, []nats.Option{nats.Token("wrong")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := servicetest.Env(t)
			for k, v := range tc.env {
				env[k] = v
			}
			svc := servicetest.Start(t, env)
			// Over the console's WebSocket listener as over the client port.
			// Over WebSocket the server may close the connection after its
			// -ERR before the client has written all of CONNECT, and the
			// client then sees a broken pipe instead of the error: such an
			// attempt is repeated, up to 5 times, until the authorization
			// error is read. No attempt may get in.
			for _, url := range []string{svc.NATSURL(), svc.WebsocketURL()} {
				for _, opts := range [][]nats.Option{nil, tc.bad} {
					var errs []string
					for range 5 {
						nc, err := nats.Connect(url, opts...)
						if err == nil {
							nc.Close()
							t.Fatalf("%s: a client without the right credentials was let in", url)
						}
						errs = append(errs, err.Error())
						msg := strings.ToLower(err.Error())
						if strings.Contains(msg, "authorization") || url == svc.NATSURL() ||
							!strings.Contains(msg, "broken pipe") && !strings.Contains(msg, "connection reset") {
							break
						}
					}
					if last := errs[len(errs)-1]; !strings.Contains(strings.ToLower(last), "authorization") {
						t.Fatalf("%s: refused with %q, want an authorization error", url, errs)
					}
				}
			}
			nc, err := nats.Connect(svc.NATSURL(), tc.good...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			publishAndWait(t, js, env, "auth-1")
		})
	}
}

// tlsFiles writes a CA, a server certificate for 127.0.0.1 and a client
// certificate (all ECDSA P-256) into dir and returns their paths.
type tlsFiles struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func writeTLSFiles(t *testing.T, dir string) tlsFiles {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "EC PRIVATE KEY", der)
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "auditq test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cliDER, cliKey := leaf(3, "auditq", x509.ExtKeyUsageClientAuth, nil)
	return tlsFiles{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", srvDER), serverKey: writeKey("server-key.pem", srvKey),
		clientCert: write("client.pem", "CERTIFICATE", cliDER), clientKey: writeKey("client-key.pem", cliKey),
	}
}

// The service reaches an external nats-server over mutual TLS
// (AUDITQ_NATS_TLS_CA/CERT/KEY, certificates made here); clients without
// TLS or without a client certificate are refused.
func TestExternalNATSOverMutualTLS(t *testing.T) {
	files := writeTLSFiles(t, t.TempDir())
	serverPair, err := tls.LoadX509KeyPair(files.serverCert, files.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	port := freePort(t)
	startNATS(t, port, t.TempDir(), func(o *server.Options) {
		o.TLS, o.TLSVerify, o.TLSTimeout = true, true, 5
		o.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{serverPair}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		}
	})
	natsURL := fmt.Sprintf("tls://127.0.0.1:%d", port)

	env := servicetest.Env(t)
	env["AUDITQ_NATS_URL"] = natsURL
	env["AUDITQ_NATS_TLS_CA"] = files.ca
	env["AUDITQ_NATS_TLS_CERT"] = files.clientCert
	env["AUDITQ_NATS_TLS_KEY"] = files.clientKey
	servicetest.Start(t, env)

	for name, opts := range map[string][]nats.Option{
		"no TLS":                {},
		"no client certificate": {nats.RootCAs(files.ca)},
		"unknown server CA":     {nats.ClientCert(files.clientCert, files.clientKey)},
	} {
		u := natsURL
		if name == "no TLS" {
			u = fmt.Sprintf("nats://127.0.0.1:%d", port)
		}
		if nc, err := nats.Connect(u, append(opts, nats.Timeout(5*time.Second))...); err == nil {
			nc.Close()
			t.Fatalf("%s: connection accepted", name)
		}
	}
	nc, err := nats.Connect(natsURL, nats.RootCAs(files.ca), nats.ClientCert(files.clientCert, files.clientKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if !nc.TLSRequired() {
		t.Fatal("the connection is not TLS")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	publishAndWait(t, js, env, "tls-1")
}

// docs/writer-role.sql sets up a role that can insert, read and (through
// the retention cleanup) delete audit rows, but never update them. The
// service runs as that role: ingest and retention work; UPDATE, TRUNCATE
// and schema changes fail.
// With AUDITQ_NATS_WEBSOCKET_TLS_CERT and _KEY the console's WebSocket
// listener speaks only wss://, with that certificate.
func TestEmbeddedWebsocketOverTLS(t *testing.T) {
	files := writeTLSFiles(t, t.TempDir())
	env := servicetest.Env(t)
	env["AUDITQ_NATS_WEBSOCKET_TLS_CERT"] = files.serverCert
	env["AUDITQ_NATS_WEBSOCKET_TLS_KEY"] = files.serverKey
	svc := servicetest.Start(t, env)
	url := svc.WebsocketURL()
	if !strings.HasPrefix(url, "wss://127.0.0.1:") {
		t.Fatalf("WebSocket URL %q, want wss://127.0.0.1:...", url)
	}
	if nc, err := nats.Connect("ws://"+strings.TrimPrefix(url, "wss://"), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a plain ws:// client was let in")
	}
	nc, err := nats.Connect(url, nats.RootCAs(files.ca))
	if err != nil {
		t.Fatalf("connect over wss: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Request("audit.pubkey", []byte(`{}`), 10*time.Second); err != nil {
		t.Fatalf("audit.pubkey over wss: %v", err)
	}
}

func TestWriterRoleCannotUpdateAuditRows(t *testing.T) {
	ctx := context.Background()
	ownerURL := pgtest.NewDatabase(t)
	owner, err := postgres.Open(ctx, ownerURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Close() })
	if err := migrations.Up(ctx, owner); err != nil {
		t.Fatal(err)
	}
	writerURL := pgtest.WriterRole(t, ownerURL, "../docs/writer-role.sql")
	role := mustParseURL(t, writerURL).User.Username()
	// Old events for the retention cleanup, written by the owner.
	old := audit.Normalize(time.Now().AddDate(0, 0, -400))
	if _, err := postgres.NewRepository(owner).Write(ctx, []audit.Event{
		{ID: "old-1", Action: "user.login", ResourceType: "user", ResourceID: "1", Success: true, OccurredAt: old, ReceivedAt: old},
		{ID: "old-2", Action: "user.login", ResourceType: "user", ResourceID: "2", Success: true, OccurredAt: old, ReceivedAt: old},
	}); err != nil {
		t.Fatal(err)
	}

	env := servicetest.Env(t)
	env["AUDITQ_DATABASE_URL"] = writerURL
	svc := servicetest.Start(t, env)
	_, js := natstest.Connect(t, svc.NATSURL())
	// Ingest as the role, a re-sent id (the staging-table path) included.
	servicetest.PublishAll(t, js, []*nats.Msg{
		servicetest.EventMsg("audit.log", "w-1", servicetest.EventJSON("w-1", "doc.read")),
		servicetest.EventMsg("audit.log", "w-2", servicetest.EventJSON("w-2", "doc.read")),
		servicetest.EventMsg("audit.log", "w-1-again", servicetest.EventJSON("w-1", "doc.read")),
	})
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		d := servicetest.Metric(t, svc.HTTPAddr(), `auditq_events_duplicate_total{handler="audit.log"}`)
		n := servicetest.CountRows(t, owner, "id IN ('w-1', 'w-2')")
		return n == 2 && d == 1, fmt.Sprintf("%d of 2 events stored, %v duplicates", n, d)
	})
	// Retention as the role: the only way audit rows are deleted.
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.cleanup", "cleanup-1", `{"retentionDays":365}`)})
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, owner, "id LIKE 'old-%'")
		return n == 0, fmt.Sprintf("%d old rows left after the cleanup", n)
	})

	// Straight to the database as the role.
	conn, err := pgx.Connect(ctx, writerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, `INSERT INTO audit_logs (id, action, resource_type, resource_id, occurred_at)
		VALUES ('w-direct', 'doc.read', 'doc', 'd1', now())`); err != nil {
		t.Fatalf("INSERT as %s: %v", role, err)
	}
	for _, stmt := range []string{
		`UPDATE audit_logs SET action = 'tampered' WHERE id = 'w-1'`,
		`UPDATE audit_logs SET id = 'w-renamed' WHERE id = 'w-1'`,
		`UPDATE audit_logs SET success = false`,
		`TRUNCATE audit_logs`,
		`ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_update`,
		`DROP TRIGGER audit_logs_no_update ON audit_logs`,
		`ALTER TABLE audit_logs ADD COLUMN x int`,
	} {
		if _, err := conn.Exec(ctx, stmt); err == nil {
			t.Errorf("%s as %s succeeded", stmt, role)
		} else {
			t.Logf("%-70s -> %v", stmt, err)
		}
	}
	var canUpdate bool
	if err := conn.QueryRow(ctx, "SELECT has_table_privilege('audit_logs', 'UPDATE')").Scan(&canUpdate); err != nil || canUpdate {
		t.Errorf("%s has UPDATE on audit_logs (%v)", role, err)
	}
	var action string
	if err := owner.QueryRowContext(ctx, "SELECT action FROM audit_logs WHERE id = 'w-1'").Scan(&action); err != nil || action != "doc.read" {
		t.Fatalf("w-1 action = %q (%v), want doc.read", action, err)
	}
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// No secret (database password, NATS password or token) appears in the
// service's output or in an error reply, whatever fails: start-up with a
// database or NATS that refuses, a malformed URL, a database outage while
// running, a broker restart, a failing request.
func TestSecretsNeverInLogsOrReplies(t *testing.T) {
	const (
		dbSecret    = "Db-Secret-7f3a9"
		natsSecret  = "Nats-Secret-c41d2"
		tokenSecret = "Token-Secret-9be07"
		wrongSecret = "Wrong-Secret-55aa1"
	)
	secrets := []string{dbSecret, natsSecret, tokenSecret, wrongSecret}
	check := func(t *testing.T, what, out string) {
		t.Helper()
		for _, s := range secrets {
			for rest := out; strings.Contains(rest, s); {
				i := strings.Index(rest, s)
				t.Errorf("%s: secret %q appears: ...%s...", what, s, rest[max(0, i-300):min(len(rest), i+100)])
				rest = rest[i+len(s):]
			}
		}
	}
	dbURL := pgtest.NewDatabase(t)
	withPassword := func(u, hostport string) string {
		pu := mustParseURL(t, u)
		pu.User = url.UserPassword("postgres", dbSecret) // trust authentication ignores it
		if hostport != "" {
			pu.Host = hostport
		}
		return pu.String()
	}
	base := func() map[string]string {
		env := childEnv(t, withPassword(dbURL, ""))
		env["AUDITQ_LOG_LEVEL"] = "debug"
		return env
	}

	// Start-up failures: each exits non-zero; the output names the
	// problem without the secret.
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	natsPort, natsStore := freePort(t), t.TempDir()
	withUser := func(o *server.Options) { o.Username, o.Password = "auditq", natsSecret }
	natsSrv := startNATS(t, natsPort, natsStore, withUser)
	tokenPort := freePort(t)
	startNATS(t, tokenPort, t.TempDir(), func(o *server.Options) { o.Authorization = tokenSecret })
	for _, tc := range []struct {
		name string
		set  map[string]string
	}{
		{"database refuses connections", map[string]string{"AUDITQ_DATABASE_URL": withPassword(dbURL, closed)}},
		{"malformed database URL", map[string]string{"AUDITQ_DATABASE_URL": "postgres://postgres:" + dbSecret + "@127.0.0.1:notaport/x"}},
		{"database URL in key=value form", map[string]string{"AUDITQ_DATABASE_URL": "host=127.0.0.1 port=1 user=postgres password=" + dbSecret + " dbname=x connect_timeout=2"}},
		{"wrong NATS password", map[string]string{"AUDITQ_NATS_URL": fmt.Sprintf("nats://127.0.0.1:%d", natsPort),
			"AUDITQ_NATS_AUTH_USER": "auditq", "AUDITQ_NATS_AUTH_PASSWORD": wrongSecret}},
		{"wrong NATS password in the URL", map[string]string{"AUDITQ_NATS_URL": fmt.Sprintf("nats://auditq:%s@127.0.0.1:%d", wrongSecret, natsPort)}},
		{"wrong NATS token", map[string]string{"AUDITQ_NATS_URL": fmt.Sprintf("nats://127.0.0.1:%d", tokenPort), "AUDITQ_NATS_AUTH_TOKEN": wrongSecret}},
		{"NATS unreachable, password in the URL", map[string]string{"AUDITQ_NATS_URL": "nats://auditq:" + natsSecret + "@" + closed}},
		{"invalid configuration with secrets set", map[string]string{"AUDITQ_NATS_AUTH_PASSWORD": natsSecret, "AUDITQ_NATS_AUTH_TOKEN": tokenSecret}},
	} {
		env := base()
		for k, v := range tc.set {
			env[k] = v
		}
		c := launchChild(t, "fail", env)
		select {
		case <-c.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: still running after 60s", tc.name)
		}
		out := c.output()
		if c.exitCode() == 0 {
			t.Errorf("%s: exit code 0", tc.name)
		}
		t.Logf("%s: %s", tc.name, strings.TrimSpace(tail(out, 300)))
		check(t, tc.name, out)
	}

	// A running service with secrets in both URLs, through a database
	// outage, a broker restart, poisoned input and failing requests.
	proxy := startTCPProxy(t, "127.0.0.1:5432")
	env := base()
	env["AUDITQ_DATABASE_URL"] = withPassword(dbURL, proxy.Addr())
	env["AUDITQ_NATS_URL"] = fmt.Sprintf("nats://auditq:%s@127.0.0.1:%d", natsSecret, natsPort)
	env["AUDITQ_RETRY_BACKOFF"] = "100ms"
	svc := startChild(t, "serve", env)
	nc, err := nats.Connect(env["AUDITQ_NATS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "s-bad", `{"action":`)})
	proxy.Cut()
	servicetest.PublishAll(t, js, []*nats.Msg{servicetest.EventMsg("audit.log", "s-1", servicetest.EventJSON("s-1", "doc.read"))})
	var replies []string
	for subj, body := range map[string]string{
		"audit.query": `{"userId":"u-s-1"}`, "audit.event.get": `{"id":"s-1"}`, "audit.report": `{"reportType":"daily"}`,
	} {
		m, err := nc.Request(subj, []byte(body), 15*time.Second)
		if err != nil {
			replies = append(replies, subj+": "+err.Error())
			continue
		}
		replies = append(replies, fmt.Sprintf("%s: %v %s", subj, m.Header, m.Data))
	}
	servicetest.Eventually(t, 30*time.Second, func() (bool, string) {
		code, body := svc.readyz()
		replies = append(replies, body)
		return code == 503, fmt.Sprintf("/readyz %d during the outage", code)
	})
	time.Sleep(3 * time.Second) // failed attempts get logged
	proxy.Restore()
	db := servicetest.OpenDB(t, map[string]string{"AUDITQ_DATABASE_URL": dbURL})
	servicetest.Eventually(t, 2*time.Minute, func() (bool, string) {
		return servicetest.CountRows(t, db, "id = 's-1'") == 1, "s-1 not stored after the outage"
	})
	// A broker restart: the service disconnects and reconnects.
	natsSrv.Shutdown()
	natsSrv.WaitForShutdown()
	time.Sleep(time.Second)
	startNATS(t, natsPort, natsStore, withUser)
	servicetest.Eventually(t, 60*time.Second, func() (bool, string) {
		code, body := svc.readyz()
		return code == 200, fmt.Sprintf("/readyz %d after the broker restart: %s", code, body)
	})
	if !strings.Contains(svc.output(), "NATS reconnected") {
		t.Error("no reconnect logged")
	}
	if code, _ := svc.terminate(60 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
	t.Logf("replies during the outage:\n%s", strings.Join(replies, "\n"))
	check(t, "replies", strings.Join(replies, "\n"))
	out := svc.output()
	if !strings.Contains(out, "DEBUG") {
		t.Fatal("no debug output captured")
	}
	check(t, "log of a running service", out)
}

// The service reaches an external nats-server in operator (JWT) mode with
// a credentials file (AUDITQ_NATS_CREDS); clients without one are refused.
func TestExternalNATSWithCredentialsFile(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	opKP, err := nkeys.CreateOperator()
	must(err)
	opPub, err := opKP.PublicKey()
	must(err)
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(opKP)
	must(err)
	opClaims, err = jwt.DecodeOperatorClaims(opJWT)
	must(err)
	account := func(jetstream bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		ac := jwt.NewAccountClaims(pub)
		if jetstream {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		tok, err := ac.Encode(opKP)
		must(err)
		return kp, pub, tok
	}
	_, sysPub, sysJWT := account(false)
	accKP, accPub, accJWT := account(true)
	resolver := &server.MemAccResolver{}
	must(resolver.Store(sysPub, sysJWT))
	must(resolver.Store(accPub, accJWT))
	userKP, err := nkeys.CreateUser()
	must(err)
	userPub, err := userKP.PublicKey()
	must(err)
	userJWT, err := jwt.NewUserClaims(userPub).Encode(accKP)
	must(err)
	seed, err := userKP.Seed()
	must(err)
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	credsFile := filepath.Join(t.TempDir(), "auditq.creds")
	must(os.WriteFile(credsFile, creds, 0o600))

	port := freePort(t)
	startNATS(t, port, t.TempDir(), func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{opClaims}
		o.AccountResolver = resolver
		o.SystemAccount = sysPub
	})
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port)
	if nc, err := nats.Connect(natsURL); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was let in")
	}
	env := servicetest.Env(t)
	env["AUDITQ_NATS_URL"] = natsURL
	env["AUDITQ_NATS_CREDS"] = credsFile
	servicetest.Start(t, env)
	nc, err := nats.Connect(natsURL, nats.UserCredentials(credsFile))
	must(err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	must(err)
	publishAndWait(t, js, env, "creds-1")
}
