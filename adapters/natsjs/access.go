package natsjs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
)

// AccessRules say what only the service may do on a NATS server whose
// accounts and users come from a nats-server configuration file. The
// service passes its own subjects and streams (this package does not know
// the contract).
type AccessRules struct {
	// Account is the service's own account: it holds the streams, and no
	// user of the file may be in it (auditq adds its own).
	Account string
	// Owned are the subjects only the service publishes (results, poison,
	// checkpoints, schedules), in any account.
	Owned []string
	// Requests are the subjects only the service subscribes to, in any
	// account (a subscriber in an importing account would get the
	// requests of its account's users too, and could answer them).
	Requests []string
	// Jobs are the subjects other accounts may publish to through a
	// service export of Account (events and jobs, stored by JetStream).
	Jobs []string
	// Acks are subjects other accounts may publish to through a service
	// export that are neither jobs nor requests: the acknowledgements of
	// an export's chunks (audit.export.ack.>), which only the service
	// reads.
	Acks []string
	// Results are the subjects other accounts may import as streams
	// (results and checkpoints, to watch them).
	Results []string
	// Streams are the service's JetStream streams; other accounts may be
	// given read-only JetStream API calls on them (STREAM.INFO,
	// STREAM.MSG.GET, DIRECT.GET) through service exports.
	Streams []string
	// PoisonStream is the one stream whose messages others may delete
	// (STREAM.MSG.DELETE), to discard a rejected message.
	PoisonStream string
	// ServiceUsers are the public nkeys of the service's own users: on
	// an external server they are the only users of Account, and at
	// least one must be there. Empty for the embedded server, which adds
	// its own user after the check.
	ServiceUsers []string
	// Tenants are the subjects of tenants (docs/tenants.md), nil without
	// tenants: patterns with a "*" where the tenant is. The service's
	// account may export them only so that each account reaches the
	// subjects of its own name: the pattern with account_token_position
	// at the tenant, or one tenant's subject to that account alone.
	Tenants []TenantPattern
}

// TenantPattern is a subject pattern of tenants and the position (from 1)
// of its tenant token, e.g. audit.t.*.log and 3.
type TenantPattern struct {
	Subject string
	Token   int
}

// Validate returns an error when Account is empty.
func (r AccessRules) Validate() error {
	if r.Account == "" {
		return errors.New("access rules: Account must not be empty")
	}
	return nil
}

// ownedKeys are the top-level keys auditq sets itself, with the setting
// that does.
var ownedKeys = map[string]string{
	"listen": "AUDITQ_NATS_LISTEN", "port": "AUDITQ_NATS_LISTEN", "host": "AUDITQ_NATS_LISTEN", "net": "AUDITQ_NATS_LISTEN",
	"jetstream": "AUDITQ_DATA_DIR", "store_dir": "AUDITQ_DATA_DIR", "max_payload": "AUDITQ_NATS_MAX_PAYLOAD",
	"server_name": "the embedded server's name, auditq",
}

// otherListeners are the top-level keys of listeners and trust models the
// embedded server does not take from AUDITQ_NATS_CONFIG: more ways in, or
// users auditq cannot check. Any other key (variables, limits) is passed
// on as the server reads it.
var otherListeners = []string{
	"cluster", "routes", "gateway", "leafnodes", "leaf", "mqtt", "http", "https", "http_port", "https_port",
	"monitor_port", "tls", "operator", "operators", "resolver", "resolver_preload", "trusted", "trusted_keys",
}

// LoadServerConfig reads a nats-server configuration file with the server
// package's own parser, and returns its options and its parsed tree. It
// returns an error naming the file (and the line, where the parser gives
// one) for a missing file, a syntax error, a block the server refuses,
// a setting auditq owns (listen address, JetStream, maximum payload) or
// another listener or trust model (cluster, leafnodes, operator, ...).
func LoadServerConfig(path string) (*server.Options, map[string]any, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("NATS configuration %s: %w", path, err)
	}
	tree, err := conf.ParseFile(path)
	if err != nil { // the parser names the line, not the file
		return nil, nil, fmt.Errorf("NATS configuration %s: %w", path, err)
	}
	var bad []string
	for k := range tree {
		key := strings.ToLower(k)
		switch {
		case ownedKeys[key] != "":
			bad = append(bad, fmt.Sprintf("%q is set by auditq (%s)", k, ownedKeys[key]))
		case slices.Contains(otherListeners, key):
			bad = append(bad, fmt.Sprintf("%q is not supported: of the listeners and trust settings, only authorization, accounts, no_auth_user, system_account and websocket apply to the embedded server", k))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, nil, fmt.Errorf("NATS configuration %s: %s", path, strings.Join(bad, "; "))
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("NATS configuration: %w", err)
	}
	return opts, tree, nil
}

// trustModels are the top-level keys of trust models CheckAccess cannot
// check: accounts and users defined by JWTs, outside the file.
var trustModels = []string{"operator", "operators", "resolver", "resolver_preload", "trusted", "trusted_keys", "authorization_callout", "auth_callout"}

// LoadExternalServerConfig reads the configuration file of an external
// nats-server with the server package's own parser, and returns its
// options and its parsed tree; unlike LoadServerConfig, listeners,
// JetStream and clustering are the file's own. It returns an error
// naming the file (and the line, where the parser gives one) for a
// missing file, a syntax error, a block the server refuses, or a trust
// model whose users the file does not hold (operator, resolver, auth
// callout), which auditq cannot check.
func LoadExternalServerConfig(path string) (*server.Options, map[string]any, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("NATS configuration %s: %w", path, err)
	}
	tree, err := conf.ParseFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("NATS configuration %s: %w", path, err)
	}
	var bad []string
	for k := range tree {
		if slices.Contains(trustModels, strings.ToLower(k)) {
			bad = append(bad, fmt.Sprintf("%q is not supported: auditq checks the users and accounts written in the file, and cannot check those of JWTs or an auth callout", k))
		}
	}
	if auth := lowerKeys(asMap(lowerKeys(tree)["authorization"])); auth["auth_callout"] != nil || auth["callout"] != nil {
		bad = append(bad, "authorization.auth_callout is not supported: auditq cannot check the users a callout admits")
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, nil, fmt.Errorf("NATS configuration %s: %s", path, strings.Join(bad, "; "))
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("NATS configuration: %w", err)
	}
	return opts, tree, nil
}

// CheckAccess returns every way the configuration (opts and the tree it
// was parsed from) would let anyone but the service publish to an owned
// subject, subscribe to a request subject, reach the JetStream API of
// the service's account beyond reading its streams and discarding poison
// messages, or act inside the service's account; nil when there is none.
// Each error names the rule and the user or account. A permissions block
// that is absent allows everything, and wildcards count for every
// subject they match.
func CheckAccess(opts *server.Options, tree map[string]any, rules AccessRules) error {
	if err := rules.Validate(); err != nil {
		return err
	}
	var errs []error
	bad := func(rule, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rule %q: %s", rule, fmt.Sprintf(format, args...)))
	}
	// Configuration keys are case-insensitive, account names are not.
	acc, ok := asMap(lowerKeys(tree)["accounts"])[rules.Account]
	if !ok {
		bad("auditq has its own account", "account %q is not defined in accounts {}: auditq needs an account of its own, which other accounts import its subjects from, so that the server vouches for who asks (Nats-Request-Info)", rules.Account)
		return errors.Join(errs...)
	}
	if opts.Username != "" || opts.Authorization != "" {
		bad("every client has a role", "authorization {} sets a single user or token: whoever holds it may do everything; give each client a user with permissions")
	}
	if opts.Websocket.Username != "" || opts.Websocket.Token != "" {
		bad("every client has a role", "websocket.authorization sets a single user or token: whoever holds it may do everything; let WebSocket clients log in as users of accounts {}")
	}
	serviceUserFound := false
	for _, u := range users(opts) {
		if u.account == rules.Account && slices.Contains(rules.ServiceUsers, u.name) {
			serviceUserFound = true
			continue
		}
		if slices.Contains(rules.ServiceUsers, u.name) {
			bad("auditq's user is in its account", "auditq's user %s is in account %q, not %q", u.name, u.account, rules.Account)
			continue
		}
		if u.account == rules.Account {
			if len(rules.ServiceUsers) > 0 {
				bad("no user in auditq's account", "user %q is in account %q: only auditq's own user (%s) may be there; another user could answer requests and sign Nats-Request-Info itself", u.name, u.account, strings.Join(rules.ServiceUsers, ", "))
			} else {
				bad("no user in auditq's account", "user %q is in account %q: auditq adds its own user there; a user of its own could answer requests and sign Nats-Request-Info itself", u.name, u.account)
			}
			continue
		}
		for _, s := range rules.Owned {
			if at, ok := reaches(u.perms.pub(), s, false); ok {
				bad("only auditq publishes "+s, "user %q in account %q may publish to %s (%s)", u.name, u.account, s, at)
			}
		}
		for _, s := range rules.Requests {
			if at, ok := reaches(u.perms.sub(), s, true); ok {
				bad("only auditq subscribes to "+s, "user %q in account %q may subscribe to %s (%s), and so answer requests in auditq's place", u.name, u.account, s, at)
			}
		}
	}
	if len(rules.ServiceUsers) > 0 && !serviceUserFound {
		bad("auditq's user is in its account", "no user of account %q has auditq's nkey %s (AUDITQ_NATS_SERVICE_NKEY)", rules.Account, strings.Join(rules.ServiceUsers, ", "))
	}
	accMap := lowerKeys(asMap(acc))
	if imports := asList(accMap["imports"]); len(imports) > 0 {
		bad("auditq's account imports nothing", "account %q has %d imports: a stream import could write into its streams", rules.Account, len(imports))
	}
	for _, e := range asList(accMap["exports"]) {
		em := lowerKeys(asMap(e))
		if err := tenantExport(em, rules); err != nil {
			bad("a tenant's subjects reach its own account only", "account %q %v", rules.Account, err)
			continue
		}
		switch {
		case em["service"] != nil:
			s := fmt.Sprint(em["service"])
			if !exportableService(s, rules) {
				bad("auditq's account exports only its job and request subjects", "account %q exports service %q: only %s, the request subjects, the export acknowledgements (%s), and read-only JetStream API calls on its streams ($JS.API.STREAM.INFO.<stream>, $JS.API.STREAM.MSG.GET.<stream>, $JS.API.DIRECT.GET.<stream>, $JS.API.STREAM.MSG.DELETE.%s) may be exported as services", rules.Account, s, strings.Join(rules.Jobs, ", "), strings.Join(rules.Acks, ", "), rules.PoisonStream)
			}
		case em["stream"] != nil:
			s := fmt.Sprint(em["stream"])
			if !slices.ContainsFunc(rules.Results, func(r string) bool { return server.SubjectMatchesFilter(s, r) }) {
				bad("auditq's account exports only its results as streams", "account %q exports stream %q: only subjects within %s may be exported as streams", rules.Account, s, strings.Join(rules.Results, ", "))
			}
		}
	}
	for name, a := range asMap(lowerKeys(tree)["accounts"]) {
		for _, im := range asList(lowerKeys(asMap(a))["imports"]) {
			imm := lowerKeys(asMap(im))
			svc := lowerKeys(asMap(imm["service"]))
			if fmt.Sprint(svc["account"]) != rules.Account || !slices.Contains(rules.Requests, fmt.Sprint(svc["subject"])) {
				continue
			}
			if share, _ := imm["share"].(bool); !share {
				bad("every read names its user", "account %q imports %s without share: true: the server would tell auditq the account only, not the user", name, svc["subject"])
			}
		}
	}
	return errors.Join(errs...)
}

// tenantExport returns why export em (lower-cased keys) would let an
// account reach another tenant's subjects, nil when it cannot or covers
// no tenant subject. Allowed: a tenant pattern with account_token_position
// at its tenant token, and one tenant's subject (the pattern with the
// tenant filled in) exported to that tenant's account alone.
func tenantExport(em map[string]any, rules AccessRules) error {
	kind, s := "service", fmt.Sprint(em["service"])
	if em["service"] == nil {
		kind, s = "stream", fmt.Sprint(em["stream"])
		if em["stream"] == nil {
			return nil
		}
	}
	var accounts []string
	for _, a := range asList(em["accounts"]) {
		accounts = append(accounts, fmt.Sprint(a))
	}
	pos, _ := em["account_token_position"].(int64)
	for _, tp := range rules.Tenants {
		if !server.SubjectsCollide(s, tp.Subject) {
			continue
		}
		if s == tp.Subject {
			if pos == int64(tp.Token) {
				return nil
			}
			return fmt.Errorf("exports %s %q without account_token_position: %d: any account could import another tenant's subject", kind, s, tp.Token)
		}
		tokens := strings.Split(s, ".")
		if tp.Token <= len(tokens) && server.IsValidLiteralSubject(s) {
			tenant := tokens[tp.Token-1]
			if len(accounts) == 1 && accounts[0] == tenant {
				return nil
			}
			return fmt.Errorf("exports %s %q to %v: one tenant's subject goes to that tenant's account only (accounts: [%s])", kind, s, accounts, tenant)
		}
		// nats-server authorises an import by the first matching export
		// of its unordered map: an export overlapping the tenant pattern
		// could let any account of its list in.
		return fmt.Errorf("exports %s %q to %v: it overlaps the tenant subjects %s, which are exported only as %q with account_token_position: %d, or one tenant's subject to that tenant's account", kind, s, accounts, tp.Subject, tp.Subject, tp.Token)
	}
	return nil
}

// exportableService reports whether s may be a service export of the
// service's account: a job or request subject, or a read-only JetStream
// API call on one of its streams, or deleting a poison message.
func exportableService(s string, rules AccessRules) bool {
	if slices.Contains(rules.Jobs, s) || slices.Contains(rules.Requests, s) || slices.Contains(rules.Acks, s) || s == "$JS.API.INFO" {
		return true
	}
	for _, tp := range rules.Tenants {
		if server.SubjectMatchesFilter(s, tp.Subject) { // tenantExport checked who gets it
			return true
		}
	}
	for _, st := range rules.Streams {
		for _, api := range []string{"$JS.API.STREAM.INFO.", "$JS.API.STREAM.MSG.GET.", "$JS.API.DIRECT.GET."} {
			if s == api+st {
				return true
			}
		}
		if s == "$JS.API.DIRECT.GET."+st+".>" {
			return true
		}
	}
	return rules.PoisonStream != "" && s == "$JS.API.STREAM.MSG.DELETE."+rules.PoisonStream
}

// configUser is a user of the configuration, password or nkey.
type configUser struct {
	name, account string
	perms         perms
}

// perms wraps a user's permissions; nil allows everything.
type perms struct{ p *server.Permissions }

func (p perms) pub() *server.SubjectPermission {
	if p.p == nil {
		return nil
	}
	return p.p.Publish
}

func (p perms) sub() *server.SubjectPermission {
	if p.p == nil {
		return nil
	}
	return p.p.Subscribe
}

// users lists the password and nkey users of opts with their accounts
// ($G when none) and permissions (defaults already applied by the parser).
func users(opts *server.Options) []configUser {
	accName := func(a *server.Account) string {
		if a == nil {
			return server.DEFAULT_GLOBAL_ACCOUNT
		}
		return a.GetName()
	}
	var out []configUser
	for _, u := range opts.Users {
		out = append(out, configUser{name: u.Username, account: accName(u.Account), perms: perms{u.Permissions}})
	}
	for _, u := range opts.Nkeys {
		out = append(out, configUser{name: u.Nkey, account: accName(u.Account), perms: perms{u.Permissions}})
	}
	return out
}

// reaches reports whether a client holding sp may publish (or, with
// queue entries allowed, subscribe) to some subject matching pattern, and
// names the entry that lets it. It errs on the side of yes: an allow
// entry overlapping pattern counts unless a single deny entry covers the
// allow entry or the whole pattern. A nil permission, or one without an
// allow list, allows everything not denied.
func reaches(sp *server.SubjectPermission, pattern string, queues bool) (string, bool) {
	if sp == nil {
		return "no permissions: everything is allowed", true
	}
	denied := func(s string) bool {
		for _, d := range sp.Deny {
			ds, q := splitQueue(d)
			if q != "" && queues { // denies one queue group only
				continue
			}
			if server.SubjectMatchesFilter(s, ds) {
				return true
			}
		}
		return false
	}
	if denied(pattern) {
		return "", false
	}
	if sp.Allow == nil {
		return "no allow list: everything not denied is allowed", true
	}
	for _, a := range sp.Allow {
		as, _ := splitQueue(a)
		if server.SubjectsCollide(as, pattern) && !denied(as) {
			return fmt.Sprintf("allow %q", a), true
		}
	}
	return "", false
}

// splitQueue splits a permission entry "subject [queue]".
func splitQueue(entry string) (subject, queue string) {
	f := strings.Fields(entry)
	switch len(f) {
	case 0:
		return "", ""
	case 1:
		return f[0], ""
	default:
		return f[0], f[1]
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// lowerKeys returns m with lower-cased keys: the server reads
// configuration keys case-insensitively.
func lowerKeys(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
