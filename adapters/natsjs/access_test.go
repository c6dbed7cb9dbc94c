package natsjs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/auditq/auditq/adapters/natsjs"
)

// rules are the service's rules as service.accessRules gives them.
var rules = natsjs.AccessRules{
	Account:      "AUDITQ",
	Owned:        []string{"audit.results.>", "audit.poison.>", "audit.checkpoints", "audit.schedule.>"},
	Requests:     []string{"audit.report", "audit.query", "audit.checkpoint.write"},
	Jobs:         []string{"audit.log", "audit.bulk", "audit.cleanup", "audit.report.generate"},
	Acks:         []string{"audit.export.ack.>"},
	Results:      []string{"audit.results.>", "audit.checkpoints"},
	Streams:      []string{"AUDIT", "AUDIT_POISON", "AUDIT_RESULTS", "AUDIT_CHECKPOINTS"},
	PoisonStream: "AUDIT_POISON",
}

// roleConfig is a valid configuration with one reader; the tests change
// one part of it each.
func roleConfig(auditq, readerPerms, readerImports string) string {
	return `accounts {
  AUDITQ { jetstream: enabled
    ` + auditq + ` }
  READERS {
    users [{user: r, password: p, permissions: ` + readerPerms + `}]
    imports [` + readerImports + `]
  }
}
`
}

const (
	okAuditq  = `exports [{service: audit.query}, {stream: audit.results.bulk}, {service: "$JS.API.STREAM.INFO.AUDIT_POISON"}]`
	okPerms   = `{publish: {allow: [audit.query]}, subscribe: {allow: ["_INBOX_r.>"]}}`
	okImports = `{service: {account: AUDITQ, subject: audit.query}, share: true}`
)

func check(t *testing.T, text string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, tree, err := natsjs.LoadServerConfig(path)
	if err != nil {
		return err
	}
	return natsjs.CheckAccess(opts, tree, rules)
}

func TestCheckAccessRefusesWhatOnlyAuditqMayDo(t *testing.T) {
	cases := []struct {
		name, config string
		want         []string // every one in the error; none: no error
	}{
		{"the valid base", roleConfig(okAuditq, okPerms, okImports), nil},
		{"no permissions allow everything", roleConfig(okAuditq, `{}`, okImports),
			[]string{`rule "only auditq publishes audit.results.>": user "r" in account "READERS" may publish to audit.results.>`,
				`rule "only auditq subscribes to audit.query": user "r"`, "no permissions: everything is allowed"}},
		{"publish >", roleConfig(okAuditq, `{publish: ">", subscribe: {allow: ["_INBOX_r.>"]}}`, okImports),
			[]string{`may publish to audit.checkpoints (allow ">")`, `may publish to audit.schedule.>`}},
		{"a deny that leaves poison open", roleConfig(okAuditq, `{publish: {allow: ["audit.>"], deny: ["audit.results.>"]}, subscribe: {allow: ["_INBOX_r.>"]}}`, okImports),
			[]string{`only auditq publishes audit.poison.>`}},
		{"a wildcard subscription", roleConfig(okAuditq, `{publish: {allow: [audit.query]}, subscribe: {allow: ["audit.*"]}}`, okImports),
			[]string{`may subscribe to audit.query (allow "audit.*")`, `may subscribe to audit.report`}},
		{"the service's queue group", roleConfig(okAuditq, `{publish: {allow: [audit.query]}, subscribe: {allow: ["audit.query q"]}}`, okImports),
			[]string{`may subscribe to audit.query (allow "audit.query q")`}},
		{"a deny of one queue only", roleConfig(okAuditq, `{publish: {allow: [audit.query]}, subscribe: {deny: ["audit.query q"]}}`, okImports),
			[]string{`may subscribe to audit.query`}},
		{"a user in auditq's account", roleConfig(okAuditq+"\n"+` users [{user: x, password: y, permissions: {publish: {allow: [audit.log]}}}]`, okPerms, okImports),
			[]string{`rule "no user in auditq's account": user "x" is in account "AUDITQ"`}},
		{"a result exported as a service", roleConfig(`exports [{service: audit.query}, {service: audit.results.bulk}]`, okPerms, okImports),
			[]string{`exports service "audit.results.bulk"`}},
		{"the JetStream API exported", roleConfig(`exports [{service: audit.query}, {service: "$JS.API.>"}]`, okPerms, okImports),
			[]string{`exports service "$JS.API.>"`}},
		{"the export acknowledgements exported", roleConfig(`exports [{service: audit.query}, {service: "audit.export.ack.>"}]`, okPerms, okImports), nil},
		{"a wider acknowledgement export", roleConfig(`exports [{service: audit.query}, {service: "audit.export.>"}]`, okPerms, okImports),
			[]string{`exports service "audit.export.>"`, `the export acknowledgements (audit.export.ack.>)`}},
		{"a wildcard export", roleConfig(`exports [{service: "audit.>"}]`, okPerms, okImports),
			[]string{`exports service "audit.>"`}},
		{"a job stream exported", roleConfig(`exports [{service: audit.query}, {stream: "audit.>"}]`, okPerms, okImports),
			[]string{`exports stream "audit.>"`}},
		{"an import into auditq's account", `accounts {
  AUDITQ { jetstream: enabled, exports [{service: audit.query}], imports [{stream: {account: OTHER, subject: audit.results.bulk}}] }
  OTHER { exports [{stream: audit.results.bulk}] }
}`,
			[]string{`rule "auditq's account imports nothing"`}},
		{"an import without share", roleConfig(okAuditq, okPerms, `{service: {account: AUDITQ, subject: audit.query}}`),
			[]string{`rule "every read names its user": account "READERS" imports audit.query without share: true`}},
		{"no account of auditq's own", `authorization { users [{user: r, password: p, permissions: ` + okPerms + `}] }`,
			[]string{`account "AUDITQ" is not defined`}},
		{"a single token", roleConfig(okAuditq, okPerms, okImports) + "authorization { token: s3cret }\n",
			// The server names the users array or the accounts block,
			// whichever of the two its map order checks first.
			[]string{`Can not have a token and `}},
		{"a websocket token", roleConfig(okAuditq, okPerms, okImports) + "websocket { port: -1, no_tls: true, authorization { token: s3cret } }\n",
			[]string{`websocket.authorization sets a single user or token`}},
		{"a listen address", roleConfig(okAuditq, okPerms, okImports) + "listen: 0.0.0.0:4222\n",
			[]string{`"listen" is set by auditq (AUDITQ_NATS_LISTEN)`}},
		{"a leaf node listener", roleConfig(okAuditq, okPerms, okImports) + "leafnodes { port: 7422 }\n",
			[]string{`"leafnodes" is not supported`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := check(t, c.config)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestLoadServerConfigNamesTheFileAndLine(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.conf")
	if _, _, err := natsjs.LoadServerConfig(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	syntax := filepath.Join(dir, "syntax.conf")
	if err := os.WriteFile(syntax, []byte("accounts {\n  AUDITQ {\n    jetstream: enabled\n    exports [ {service: audit.query\n  }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := natsjs.LoadServerConfig(syntax)
	if err == nil || !strings.Contains(err.Error(), syntax) || !strings.Contains(err.Error(), "line 6") {
		t.Fatalf("syntax error: %v", err)
	}
	badBlock := filepath.Join(dir, "block.conf")
	if err := os.WriteFile(badBlock, []byte("accounts {\n  A {\n    users: [{user: a, password: b, permissions: {publish: {allow: 42}}}]\n  }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = natsjs.LoadServerConfig(badBlock)
	if err == nil || !strings.Contains(err.Error(), badBlock+":3:") {
		t.Fatalf("unusable block: %v", err)
	}
}

// An external server's file holds auditq's own nkey user in its account
// (and its listeners): that user, and only it, is allowed there; JWT
// trust models are refused as uncheckable.
func TestCheckAccessOfAnExternalServer(t *testing.T) {
	key := func() string {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		return pub
	}
	svc, other := key(), key()
	ext := rules
	ext.ServiceUsers = []string{svc}
	cases := []struct {
		name, config string
		want         []string
	}{
		{"auditq's user, listeners and JetStream", "listen: 127.0.0.1:4222\njetstream {store_dir: /tmp/x}\n" +
			roleConfig(okAuditq+"\nusers [{nkey: "+svc+"}]", okPerms, okImports), nil},
		{"auditq's user missing", roleConfig(okAuditq, okPerms, okImports),
			[]string{`rule "auditq's user is in its account": no user of account "AUDITQ" has auditq's nkey ` + svc}},
		{"another user beside it", roleConfig(okAuditq+"\nusers [{nkey: "+svc+"}, {nkey: "+other+"}]", okPerms, okImports),
			[]string{`rule "no user in auditq's account": user "` + other + `" is in account "AUDITQ": only auditq's own user`}},
		{"an operator", "operator: /etc/nats/op.jwt\n" + roleConfig(okAuditq+"\nusers [{nkey: "+svc+"}]", okPerms, okImports),
			[]string{`"operator" is not supported: auditq checks the users and accounts written in the file`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nats.conf")
			if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			opts, tree, err := natsjs.LoadExternalServerConfig(path)
			if err == nil {
				err = natsjs.CheckAccess(opts, tree, ext)
			}
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
