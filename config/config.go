// Package config loads auditq's settings from AUDITQ_* environment
// variables (and whether GOGC is set). It is the only package that reads
// them; everything else takes its settings as arguments.
package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of auditq serve and the client commands.
type Config struct {
	DatabaseURL    string
	DatabaseConns  int
	NATSURL        string // empty: start the embedded server
	NATSListen     string // embedded server's client address
	NATSMaxPayload int32
	NATSUser       string
	NATSPassword   string
	NATSToken      string
	NATSCredsFile  string
	NATSTLSCA      string
	NATSTLSCert    string
	NATSTLSKey     string
	NATSReplicas   int // replicas of every stream and consumer: 1, 3 or 5
	DataDir        string
	HTTPAddr       string
	Pprof          bool // serve runtime profiles at /debug/pprof/ on HTTPAddr
	LogLevel       string
	LogFormat      string // json, text, or auto (json unless stderr is a terminal)

	BatchMaxEvents  int           // group commit: flush at this many events
	BatchMaxDelay   time.Duration // group commit: or this long after the first
	BatchFlushers   int           // group commit: batches written at once
	Concurrency     int           // messages handled at once per job subject
	InFlightBytes   int64         // bytes of messages in flight; 0 = auto (derived from the memory limit)
	MemoryLimit     int64         // the Go runtime's soft memory limit; 0 = auto, -1 = off
	GOGCSet         bool          // GOGC is set in the environment: the collector's pacing is left to it
	Attempts        int           // tries of a transient failure before redelivery
	RetryBackoff    time.Duration // wait before the second try; doubles after
	HandlerTimeout  time.Duration
	AckWait         time.Duration
	MaxAckPending   int
	DuplicateWindow time.Duration
	ShutdownTimeout time.Duration
	BulkMaxEvents   int
	FutureSkew      time.Duration
	PoisonMaxMsgs   int64
	PoisonMaxBytes  int64
	ResultsMaxMsgs  int64

	// Retention cleanup (audit.cleanup) and the JetStream schedules.
	RetentionDays    int           // the scheduled cleanup keeps this many days
	RetentionMinDays int           // no cleanup may cut newer than this many days
	HoldUsers        []string      // legal hold: user ids never deleted
	HoldResources    []string      // legal hold: "type:id" resources never deleted
	CleanupCron      string        // schedule of the cleanup, or "off"
	CleanupTimeZone  string        // IANA zone of CleanupCron
	CleanupExclude   []string      // actions the scheduled cleanup keeps
	CleanupTimeout   time.Duration // deadline of one cleanup attempt
	ReportCron       string        // schedule of the daily report (UTC), or "off"

	// Reports and search (NATS request-reply).
	RequestTimeout time.Duration // deadline of one request
	ReportMaxDays  int           // longest custom report period
	RollupInterval time.Duration // how often stale report rollup hours are rolled
	AuditReads     bool          // record every read of the trail (reports, searches, events, proofs) as an audit event

	// Concurrent serving of requests (AUDITQ_REQUEST_*); 0 is auto, see
	// RequestPools.
	RequestConcurrency       int           // requests handled at once, reports apart
	RequestReportConcurrency int           // audit.report and cleanup dry runs handled at once
	RequestQueueWait         time.Duration // wait for a free slot before answering 429

	// Tamper evidence (docs/tamper-evidence.md).
	TamperEvidence     bool          // seal every write into the hash chain
	SigningKeyFile     string        // Ed25519 key of checkpoints; "" = DataDir/signing-key.pem
	RetiredKeys        []string      // public keys the signing key replaced (verify trusts them)
	CheckpointInterval time.Duration // how often a signed checkpoint is written

	// Personal data (docs/personal-data.md).
	PersonalData       string   // off, pseudonymise or encrypt
	PersonalDetailKeys []string // details keys encrypted with the personal fields
	KEKFile            string   // key-encryption key file; "" = none
	PseudonymKeyFile   string   // key of the pseudonym key, never replaced; "" = KEKFile + ".pseudonym"
	// Exports (audit.export, docs/export.md).
	ExportPageEvents int           // events read by one query of an export
	ExportChunkBytes int           // bytes of one chunk message
	ExportWindow     int           // chunks sent ahead of the client's acknowledgement
	ExportAckTimeout time.Duration // an export whose client acknowledges nothing this long ends
	ExportMaxRunning int           // exports running at once per instance
	// Log streams (docs/streams.md).
	StreamsFile string   // AUDITQ_STREAMS_FILE
	Streams     []Stream // read from StreamsFile
	// The admin console (docs/console.md) and its WebSocket listener.
	Console              bool   // serve the console at / on AUDITQ_HTTP_ADDR
	NATSWebsocket        string // embedded server's WebSocket listener (host:port), or "off"
	NATSWebsocketTLSCert string // its certificate file; required beyond loopback
	NATSWebsocketTLSKey  string
	ConsoleWebsocketURL  string // the WebSocket URL the console connects to; "" = the embedded listener's
	ConsoleInboxPrefix   string // inbox prefix the console's connection uses; "" = nats.js's _INBOX
	// Access control (docs/security.md).
	NATSConfigFile string // nats-server configuration: authorization, accounts, websocket; "" = none
	NATSAccount    string // the service's own account in NATSConfigFile
	// NATSServiceNkey is the nkey seed file of the service's own user on
	// an external server; "" = AUDITQ_NATS_AUTH_* / AUDITQ_NATS_CREDS.
	NATSServiceNkey string
	// NATSInboxPrefix is the inbox prefix of the client commands'
	// connections; "" = nats.go's _INBOX.
	NATSInboxPrefix string
	// Tenants (docs/tenants.md).
	Tenants               bool     // store events of audit.t.<tenant>.*; bind readers to their account's tenant
	TenantUnboundAccounts []string // accounts whose readers may read every tenant
	TenantRetentionDays   []string // tenant:days entries, a retention per tenant (see TenantRetention)
	TenantHoldUsers       []string // legal hold in one tenant: tenant:userId entries
	TenantHoldResources   []string // legal hold in one tenant: tenant:type:id entries
	TenantPersonalData    []string // tenant:mode entries, a personal data mode per tenant (see TenantPersonalModes)
}

// Var documents one environment variable: its name, default and meaning.
// Vars is the single table docs/configuration.md and --help are checked against.
type Var struct {
	Name, Default, Help string
}

// Vars lists every variable Load reads, in the order --help prints them.
var Vars = []Var{
	{"AUDITQ_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/auditq?sslmode=disable", "PostgreSQL connection URL; the database is created if missing and allowed"},
	{"AUDITQ_DATABASE_MAX_CONNS", "8", "maximum open database connections"},
	{"AUDITQ_NATS_URL", "", "external NATS server URL(s), comma-separated; empty starts the embedded server"},
	{"AUDITQ_NATS_LISTEN", "127.0.0.1:4223", "embedded server: address NATS clients connect to"},
	{"AUDITQ_NATS_MAX_PAYLOAD", "8388608", "embedded server: largest message in bytes"},
	{"AUDITQ_NATS_AUTH_USER", "", "user name: required by the embedded server, sent to an external one"},
	{"AUDITQ_NATS_AUTH_PASSWORD", "", "password for AUDITQ_NATS_AUTH_USER"},
	{"AUDITQ_NATS_AUTH_TOKEN", "", "token: required by the embedded server, sent to an external one"},
	{"AUDITQ_NATS_CREDS", "", "external NATS: credentials file (JWT and NKey seed)"},
	{"AUDITQ_NATS_TLS_CA", "", "external NATS: CA certificate file to verify the server"},
	{"AUDITQ_NATS_TLS_CERT", "", "external NATS: client certificate file"},
	{"AUDITQ_NATS_TLS_KEY", "", "external NATS: client key file"},
	{"AUDITQ_NATS_CONFIG", "", "a nats-server configuration file whose authorization, accounts and websocket blocks apply to the embedded server (docs/security.md); auditq refuses to start when it lets anyone else publish its results, poison, checkpoints, schedules or cleanup and report jobs or answer its requests. With AUDITQ_NATS_URL: the external server's own file, checked the same way with auditq's nkey (AUDITQ_NATS_SERVICE_NKEY) as the one user of its account, and the running server asked who auditq is and whether it admits clients without credentials into that account. Empty: loopback only, AUDITQ_NATS_AUTH_* if set"},
	{"AUDITQ_NATS_ACCOUNT", "AUDITQ", "with AUDITQ_NATS_CONFIG: auditq's own account in it, which holds the streams and exports the subjects other accounts import"},
	{"AUDITQ_NATS_SERVICE_NKEY", "", "external NATS: file holding the nkey seed (SU...) of auditq's own user, the only user of AUDITQ_NATS_ACCOUNT; \"auditq serve\" connects with it, and AUDITQ_NATS_AUTH_* and AUDITQ_NATS_CREDS are then only what the client commands log in with. Required with AUDITQ_NATS_URL and AUDITQ_NATS_CONFIG"},
	{"AUDITQ_NATS_INBOX_PREFIX", "", "inbox prefix of the client commands' connections (auditq cleanup, report, ...), for users whose permissions allow only a private inbox, e.g. _INBOX_operator; empty: _INBOX"},
	{"AUDITQ_TENANTS", "false", "tenants (docs/tenants.md): store the events of audit.t.<tenant>.log and audit.t.<tenant>.bulk under that tenant, and bind each reader to the tenant named as its NATS account; needs AUDITQ_NATS_CONFIG"},
	{"AUDITQ_TENANT_UNBOUND_ACCOUNTS", "", "with AUDITQ_TENANTS: comma-separated NATS accounts whose readers are bound to no tenant and may read any tenant or all (operators); auditq's own account always is"},
	{"AUDITQ_TENANT_RETENTION_DAYS", "", "with AUDITQ_TENANTS: comma-separated tenant:days (acme:90,globex:400): a retentionDays cleanup, the scheduled one included, keeps this many days of that tenant's events instead of its own; at least AUDITQ_RETENTION_MIN_DAYS"},
	{"AUDITQ_TENANT_HOLD_USERS", "", "with AUDITQ_TENANTS: legal hold in one tenant: comma-separated tenant:userId (acme:u-1): that tenant's events of the user are never deleted, and the user's erasure in that tenant is refused; the same user id in another tenant is not held (AUDITQ_RETENTION_HOLD_USERS holds in every tenant)"},
	{"AUDITQ_TENANT_HOLD_RESOURCES", "", "with AUDITQ_TENANTS: legal hold in one tenant: comma-separated tenant:type:id (acme:document:42): that tenant's events about the resource are never deleted (AUDITQ_RETENTION_HOLD_RESOURCES holds in every tenant)"},
	{"AUDITQ_TENANT_PERSONAL_DATA", "", "with AUDITQ_TENANTS: comma-separated tenant:mode (acme:encrypt,globex:off): the personal data mode (off, pseudonymise or encrypt) of that tenant's events instead of AUDITQ_PERSONAL_DATA, which every other tenant keeps"},
	{"AUDITQ_NATS_REPLICAS", "1", "replicas of every stream and consumer auditq creates (1, 3 or 5); existing ones are brought to it at start; above 1 needs an external JetStream cluster of at least that many servers"},
	{"AUDITQ_DATA_DIR", "./data", "embedded server: JetStream storage lives under DIR/jetstream; also where the signing key lives unless AUDITQ_SIGNING_KEY_FILE is set"},
	{"AUDITQ_HTTP_ADDR", "127.0.0.1:8080", "address of /healthz, /readyz, /metrics, /schema/ and the admin console (/); \"off\" disables"},
	{"AUDITQ_PPROF", "off", "serve Go's runtime profiles (heap, CPU, goroutines) at /debug/pprof/ on AUDITQ_HTTP_ADDR, for finding where memory or CPU goes: on or off; a profile shows stacks and sizes, never message contents, but keep AUDITQ_HTTP_ADDR on loopback while it is on"},
	{"AUDITQ_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"AUDITQ_LOG_FORMAT", "auto", "json, text, or auto (json unless stderr is a terminal)"},
	{"AUDITQ_BATCH_MAX_EVENTS", "1000", "group commit of audit.log events: flush a batch at this many events"},
	{"AUDITQ_BATCH_MAX_DELAY", "0s", "group commit: hold a batch this long for more events even when the database is free (0: commit as soon as a flusher is free)"},
	{"AUDITQ_BATCH_FLUSHERS", "2", "group commit: batches written to the database at once"},
	{"AUDITQ_CONCURRENCY", "2048", "audit.log messages handled at once per process: the most a group-commit batch can gather (fewer: smaller batches, lower throughput); audit.bulk at most AUDITQ_DATABASE_MAX_CONNS minus AUDITQ_BATCH_FLUSHERS, cleanup and report jobs at most 2"},
	{"AUDITQ_INFLIGHT_BYTES", "auto", "bytes of messages pulled ahead or being handled at once, all job subjects together (it bounds memory whatever the message sizes); auto: 1/8 of the soft memory limit (AUDITQ_MEMORY_LIMIT), at least 16 MiB; with AUDITQ_MEMORY_LIMIT off, 1/32 of the memory limit (cgroup, else physical memory), between 16 MiB and 64 MiB"},
	{"AUDITQ_MEMORY_LIMIT", "auto", "soft memory limit of the process in bytes (the Go runtime collects garbage more often as it nears it; it never refuses memory), or off; auto: a quarter of the memory limit (cgroup, else physical memory), between 64 MiB and 144 MiB; a GOMEMLIMIT in the environment wins; while a soft limit is in effect and GOGC is not set, the collector runs with GOGC 200, so that during a flood the limit, not twice the live heap, sets when it collects"},
	{"AUDITQ_RETRY_ATTEMPTS", "3", "attempts of a transient failure before the message goes back to JetStream for later redelivery"},
	{"AUDITQ_RETRY_BACKOFF", "2s", "wait before the second attempt; doubles for each further one"},
	{"AUDITQ_HANDLER_TIMEOUT", "10s", "deadline of one attempt"},
	{"AUDITQ_ACK_WAIT", "30s", "JetStream ack wait of the job consumers"},
	{"AUDITQ_MAX_ACK_PENDING", "4096", "unacknowledged messages per job consumer, all instances together (at least AUDITQ_CONCURRENCY; instances times AUDITQ_CONCURRENCY keeps each one busy)"},
	{"AUDITQ_DUPLICATE_WINDOW", "10s", "how long stream AUDIT remembers Nats-Msg-Id values to drop re-publishes (events are stored once whatever it is; the NATS server holds about 120 bytes per id of the window)"},
	{"AUDITQ_SHUTDOWN_TIMEOUT", "30s", "how long SIGTERM waits for in-flight messages"},
	{"AUDITQ_BULK_MAX_EVENTS", "1000", "most events in one audit.bulk message"},
	{"AUDITQ_MAX_FUTURE_SKEW", "1h", "how far after receipt an event timestamp may lie"},
	{"AUDITQ_POISON_MAX_MSGS", "100000", "messages kept in AUDIT_POISON (at least 100)"},
	{"AUDITQ_POISON_MAX_BYTES", "1073741824", "bytes kept in AUDIT_POISON"},
	{"AUDITQ_RESULTS_MAX_MSGS", "50", "messages kept in AUDIT_RESULTS"},
	{"AUDITQ_RETENTION_DAYS", "365", "the scheduled cleanup deletes events older than this many days"},
	{"AUDITQ_RETENTION_MIN_DAYS", "30", "no cleanup may delete events newer than this many days (a guard rail)"},
	{"AUDITQ_RETENTION_HOLD_USERS", "", "legal hold: comma-separated user ids whose events are never deleted, in every tenant"},
	{"AUDITQ_RETENTION_HOLD_RESOURCES", "", "legal hold: comma-separated type:id resources (e.g. document:42) whose events are never deleted, in every tenant"},
	{"AUDITQ_CLEANUP_CRON", "0 0 3 * * *", "when the cleanup runs: six-field cron \"sec min hour dom mon dow\", @every <duration>, @daily..., or \"off\" (removes the schedule)"},
	{"AUDITQ_CLEANUP_TIMEZONE", "UTC", "IANA time zone of AUDITQ_CLEANUP_CRON"},
	{"AUDITQ_CLEANUP_EXCLUDE_ACTIONS", "", "comma-separated actions the scheduled cleanup never deletes"},
	{"AUDITQ_CLEANUP_TIMEOUT", "30m", "deadline of one cleanup attempt"},
	{"AUDITQ_REPORT_CRON", "0 15 0 * * *", "when the daily report is generated (UTC), same syntax; \"off\" removes the schedule"},
	{"AUDITQ_REQUEST_TIMEOUT", "10s", "deadline of one report or search request (audit.report, audit.query, ...)"},
	{"AUDITQ_REQUEST_CONCURRENCY", "auto", "requests to the micro service handled at once by one instance, all endpoints but audit.report and audit.admin.cleanup.dryrun together; auto: half of AUDITQ_DATABASE_MAX_CONNS, at least 1"},
	{"AUDITQ_REQUEST_REPORT_CONCURRENCY", "auto", "audit.report and audit.admin.cleanup.dryrun requests handled at once by one instance, apart from AUDITQ_REQUEST_CONCURRENCY so that long reports never hold up searches; auto: a quarter of AUDITQ_DATABASE_MAX_CONNS, at least 1"},
	{"AUDITQ_REQUEST_QUEUE_WAIT", "2s", "how long a request waits for a free slot of its pool before it is answered 429 (busy), within its AUDITQ_REQUEST_TIMEOUT; at most 16 requests per slot wait, more are answered 429 at once"},
	{"AUDITQ_REPORT_MAX_DAYS", "366", "longest period of a custom report, in days"},
	{"AUDITQ_ROLLUP_INTERVAL", "1m", "how often the hourly report rollups of changed hours are recomputed (reports are exact either way; rolled hours make them fast)"},
	{"AUDITQ_AUDIT_READS", "true", "record every read of the trail as an audit event (reports, report jobs, stored reports, searches, events, proofs: actions audit.report, audit.query, audit.event.proof): true or false"},
	{"AUDITQ_TAMPER_EVIDENCE", "on", "seal every write into a hash chain and write signed checkpoints (docs/tamper-evidence.md): on or off"},
	{"AUDITQ_SIGNING_KEY_FILE", "", "Ed25519 key (PKCS#8 PEM) signing the checkpoints, batch records and deletion records; created (mode 0600) if missing; empty: AUDITQ_DATA_DIR/signing-key.pem"},
	{"AUDITQ_RETIRED_KEYS", "", "comma-separated Ed25519 public keys (base64 or hex) of signing keys replaced by a key rotation; auditq verify trusts them too, audit.pubkey lists them, and the service starts on a trail they signed (it refuses one signed by another key)"},
	{"AUDITQ_CHECKPOINT_INTERVAL", "1h", "how often a signed checkpoint is written, also when no events arrived"},
	{"AUDITQ_PERSONAL_DATA", "off", "personal data (docs/personal-data.md): off stores events as sent; pseudonymise stores a keyed pseudonym instead of the user id; encrypt also encrypts userId, ipAddress, userAgent, sessionId and AUDITQ_PERSONAL_DETAILS_KEYS under a key per user, so that auditq erase can erase them"},
	{"AUDITQ_PERSONAL_DETAILS_KEYS", "", "comma-separated top-level keys of details encrypted with the personal fields (AUDITQ_PERSONAL_DATA=encrypt)"},
	{"AUDITQ_KEK_FILE", "", "key-encryption key (32 bytes as 64 hex digits, openssl rand -hex 32) wrapping the per-user keys; required unless AUDITQ_PERSONAL_DATA is off (with off, it still decrypts events encrypted earlier); with encrypt, every erasure replaces it (its directory must be writable by auditq and shared by every instance); keep it outside the database and its backups"},
	{"AUDITQ_PSEUDONYM_KEY_FILE", "", "key (64 hex digits) wrapping the pseudonym key; erasures never replace it, so a database restored from before an erasure keeps its pseudonyms (searches by user id still find the old events); created (mode 0600) if missing; empty: AUDITQ_KEK_FILE with .pseudonym appended; unlike the KEK file it may be backed up"},
	{"AUDITQ_EXPORT_PAGE_EVENTS", "1000", "exports (audit.export): events read by one database query (1 to 10000); each page is its own short read"},
	{"AUDITQ_EXPORT_CHUNK_BYTES", "262144", "exports: bytes of one chunk message (4096 to 4194304; at most half the NATS max payload is used)"},
	{"AUDITQ_EXPORT_WINDOW", "8", "exports: chunks sent ahead of the client's last acknowledgement (1 to 1024)"},
	{"AUDITQ_EXPORT_ACK_TIMEOUT", "30s", "exports: an export whose client acknowledges nothing for this long ends (its end is recorded with the count delivered)"},
	{"AUDITQ_EXPORT_MAX_RUNNING", "4", "exports running at once per instance (1 to 256): the slots of the request pool exports; one more waits up to AUDITQ_REQUEST_QUEUE_WAIT, then is answered 429"},
	{"AUDITQ_STREAMS_FILE", "", "JSON file of the log streams (webhook, splunk, elasticsearch, file, nats) that get every committed event (docs/streams.md); empty: none"},
	{"AUDITQ_CONSOLE", "on", "serve the admin console at / on AUDITQ_HTTP_ADDR (docs/console.md): on or off"},
	{"AUDITQ_NATS_WEBSOCKET", DefaultNATSWebsocket, "embedded server: address of the NATS WebSocket listener the console connects to; \"off\" disables; beyond loopback only with TLS"},
	{"AUDITQ_NATS_WEBSOCKET_TLS_CERT", "", "embedded server: certificate file (PEM) of the WebSocket listener (wss://); required beyond loopback"},
	{"AUDITQ_NATS_WEBSOCKET_TLS_KEY", "", "key file (PEM) for AUDITQ_NATS_WEBSOCKET_TLS_CERT"},
	{"AUDITQ_CONSOLE_WEBSOCKET_URL", "", "the ws:// or wss:// URL the console's browser connects to; empty: the embedded server's WebSocket listener (set it for an external NATS server)"},
	{"AUDITQ_CONSOLE_INBOX_PREFIX", "", "inbox prefix of the console's NATS connection, for console users whose permissions allow only a private inbox; {user} stands for the logged-in user (_INBOX_{user}); empty: _INBOX"},
}

// Load reads the configuration through getenv (os.Getenv in production) and
// validates it. The error lists every problem, one per line, and never
// includes a secret's value.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		DatabaseURL:     p.str("AUDITQ_DATABASE_URL"),
		DatabaseConns:   p.int("AUDITQ_DATABASE_MAX_CONNS"),
		NATSURL:         p.str("AUDITQ_NATS_URL"),
		NATSListen:      p.str("AUDITQ_NATS_LISTEN"),
		NATSMaxPayload:  int32(p.int("AUDITQ_NATS_MAX_PAYLOAD")),
		NATSUser:        p.str("AUDITQ_NATS_AUTH_USER"),
		NATSPassword:    p.str("AUDITQ_NATS_AUTH_PASSWORD"),
		NATSToken:       p.str("AUDITQ_NATS_AUTH_TOKEN"),
		NATSCredsFile:   p.str("AUDITQ_NATS_CREDS"),
		NATSTLSCA:       p.str("AUDITQ_NATS_TLS_CA"),
		NATSTLSCert:     p.str("AUDITQ_NATS_TLS_CERT"),
		NATSTLSKey:      p.str("AUDITQ_NATS_TLS_KEY"),
		NATSReplicas:    p.int("AUDITQ_NATS_REPLICAS"),
		DataDir:         p.str("AUDITQ_DATA_DIR"),
		HTTPAddr:        p.str("AUDITQ_HTTP_ADDR"),
		Pprof:           p.onOff("AUDITQ_PPROF"),
		LogLevel:        p.str("AUDITQ_LOG_LEVEL"),
		LogFormat:       p.str("AUDITQ_LOG_FORMAT"),
		BatchMaxEvents:  p.int("AUDITQ_BATCH_MAX_EVENTS"),
		BatchMaxDelay:   p.dur("AUDITQ_BATCH_MAX_DELAY"),
		BatchFlushers:   p.int("AUDITQ_BATCH_FLUSHERS"),
		Concurrency:     p.int("AUDITQ_CONCURRENCY"),
		InFlightBytes:   p.bytesOrAuto("AUDITQ_INFLIGHT_BYTES"),
		MemoryLimit:     p.memoryLimit("AUDITQ_MEMORY_LIMIT"),
		GOGCSet:         getenv("GOGC") != "",
		Attempts:        p.int("AUDITQ_RETRY_ATTEMPTS"),
		RetryBackoff:    p.dur("AUDITQ_RETRY_BACKOFF"),
		HandlerTimeout:  p.dur("AUDITQ_HANDLER_TIMEOUT"),
		AckWait:         p.dur("AUDITQ_ACK_WAIT"),
		MaxAckPending:   p.int("AUDITQ_MAX_ACK_PENDING"),
		DuplicateWindow: p.dur("AUDITQ_DUPLICATE_WINDOW"),
		ShutdownTimeout: p.dur("AUDITQ_SHUTDOWN_TIMEOUT"),
		BulkMaxEvents:   p.int("AUDITQ_BULK_MAX_EVENTS"),
		FutureSkew:      p.dur("AUDITQ_MAX_FUTURE_SKEW"),
		PoisonMaxMsgs:   int64(p.int("AUDITQ_POISON_MAX_MSGS")),
		PoisonMaxBytes:  int64(p.int("AUDITQ_POISON_MAX_BYTES")),
		ResultsMaxMsgs:  int64(p.int("AUDITQ_RESULTS_MAX_MSGS")),

		RetentionDays:    p.int("AUDITQ_RETENTION_DAYS"),
		RetentionMinDays: p.int("AUDITQ_RETENTION_MIN_DAYS"),
		HoldUsers:        p.list("AUDITQ_RETENTION_HOLD_USERS"),
		HoldResources:    p.list("AUDITQ_RETENTION_HOLD_RESOURCES"),
		CleanupCron:      p.str("AUDITQ_CLEANUP_CRON"),
		CleanupTimeZone:  p.str("AUDITQ_CLEANUP_TIMEZONE"),
		CleanupExclude:   p.list("AUDITQ_CLEANUP_EXCLUDE_ACTIONS"),
		CleanupTimeout:   p.dur("AUDITQ_CLEANUP_TIMEOUT"),
		ReportCron:       p.str("AUDITQ_REPORT_CRON"),

		RequestTimeout: p.dur("AUDITQ_REQUEST_TIMEOUT"),
		ReportMaxDays:  p.int("AUDITQ_REPORT_MAX_DAYS"),
		RollupInterval: p.dur("AUDITQ_ROLLUP_INTERVAL"),
		AuditReads:     p.boolean("AUDITQ_AUDIT_READS"),

		RequestConcurrency:       p.intOrAuto("AUDITQ_REQUEST_CONCURRENCY"),
		RequestReportConcurrency: p.intOrAuto("AUDITQ_REQUEST_REPORT_CONCURRENCY"),
		RequestQueueWait:         p.dur("AUDITQ_REQUEST_QUEUE_WAIT"),

		TamperEvidence:     p.onOff("AUDITQ_TAMPER_EVIDENCE"),
		SigningKeyFile:     p.str("AUDITQ_SIGNING_KEY_FILE"),
		RetiredKeys:        p.list("AUDITQ_RETIRED_KEYS"),
		CheckpointInterval: p.dur("AUDITQ_CHECKPOINT_INTERVAL"),

		PersonalData:          p.str("AUDITQ_PERSONAL_DATA"),
		PersonalDetailKeys:    p.list("AUDITQ_PERSONAL_DETAILS_KEYS"),
		KEKFile:               p.str("AUDITQ_KEK_FILE"),
		PseudonymKeyFile:      p.str("AUDITQ_PSEUDONYM_KEY_FILE"),
		ExportPageEvents:      p.int("AUDITQ_EXPORT_PAGE_EVENTS"),
		ExportChunkBytes:      p.int("AUDITQ_EXPORT_CHUNK_BYTES"),
		ExportWindow:          p.int("AUDITQ_EXPORT_WINDOW"),
		ExportAckTimeout:      p.dur("AUDITQ_EXPORT_ACK_TIMEOUT"),
		ExportMaxRunning:      p.int("AUDITQ_EXPORT_MAX_RUNNING"),
		StreamsFile:           p.str("AUDITQ_STREAMS_FILE"),
		Console:               p.onOff("AUDITQ_CONSOLE"),
		NATSWebsocket:         p.str("AUDITQ_NATS_WEBSOCKET"),
		NATSWebsocketTLSCert:  p.str("AUDITQ_NATS_WEBSOCKET_TLS_CERT"),
		NATSWebsocketTLSKey:   p.str("AUDITQ_NATS_WEBSOCKET_TLS_KEY"),
		ConsoleWebsocketURL:   p.str("AUDITQ_CONSOLE_WEBSOCKET_URL"),
		ConsoleInboxPrefix:    p.str("AUDITQ_CONSOLE_INBOX_PREFIX"),
		NATSConfigFile:        p.str("AUDITQ_NATS_CONFIG"),
		NATSAccount:           p.str("AUDITQ_NATS_ACCOUNT"),
		NATSServiceNkey:       p.str("AUDITQ_NATS_SERVICE_NKEY"),
		NATSInboxPrefix:       p.str("AUDITQ_NATS_INBOX_PREFIX"),
		Tenants:               p.boolean("AUDITQ_TENANTS"),
		TenantUnboundAccounts: p.list("AUDITQ_TENANT_UNBOUND_ACCOUNTS"),
		TenantRetentionDays:   p.list("AUDITQ_TENANT_RETENTION_DAYS"),
		TenantHoldUsers:       p.list("AUDITQ_TENANT_HOLD_USERS"),
		TenantHoldResources:   p.list("AUDITQ_TENANT_HOLD_RESOURCES"),
		TenantPersonalData:    p.list("AUDITQ_TENANT_PERSONAL_DATA"),
	}
	var err error
	if c.Streams, err = loadStreams(c.StreamsFile, getenv); err != nil {
		p.errs = append(p.errs, err)
	}
	errs := append(p.errs, c.Validate())
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// Validate checks ranges and combinations; it returns every problem found.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DatabaseURL == "" {
		bad("AUDITQ_DATABASE_URL: must not be empty")
	}
	if c.DatabaseConns < 1 {
		bad("AUDITQ_DATABASE_MAX_CONNS: must be at least 1")
	}
	if c.NATSURL == "" {
		if _, _, err := net.SplitHostPort(c.NATSListen); err != nil {
			bad("AUDITQ_NATS_LISTEN: must be host:port, got %q", c.NATSListen)
		}
		if c.DataDir == "" {
			bad("AUDITQ_DATA_DIR: must not be empty when the embedded server is used")
		}
	}
	switch {
	case c.NATSReplicas != 1 && c.NATSReplicas != 3 && c.NATSReplicas != 5:
		bad("AUDITQ_NATS_REPLICAS: must be 1, 3 or 5, got %d", c.NATSReplicas)
	case c.NATSReplicas > 1 && c.NATSURL == "":
		bad("AUDITQ_NATS_REPLICAS=%d needs an external JetStream cluster (AUDITQ_NATS_URL): the embedded server is a single node and keeps one replica", c.NATSReplicas)
	}
	if c.NATSMaxPayload < 1024 || c.NATSMaxPayload > 64<<20 {
		bad("AUDITQ_NATS_MAX_PAYLOAD: must be between 1024 and 67108864")
	}
	if c.NATSUser != "" && c.NATSToken != "" {
		bad("AUDITQ_NATS_AUTH_USER and AUDITQ_NATS_AUTH_TOKEN: set one, not both")
	}
	if (c.NATSUser == "") != (c.NATSPassword == "") {
		bad("AUDITQ_NATS_AUTH_USER and AUDITQ_NATS_AUTH_PASSWORD: set both or neither")
	}
	if c.NATSConfigFile != "" && c.NATSAccount == "" {
		bad("AUDITQ_NATS_ACCOUNT: must not be empty with AUDITQ_NATS_CONFIG")
	}
	// Required with AUDITQ_NATS_URL and AUDITQ_NATS_CONFIG, by "auditq
	// serve" only (service.Run says so): client commands do without.
	if c.NATSServiceNkey != "" && c.NATSURL == "" {
		bad("AUDITQ_NATS_SERVICE_NKEY: only with AUDITQ_NATS_URL; the embedded server makes the service's key itself, in memory")
	}
	if p := c.NATSInboxPrefix; p != "" && (strings.ContainsAny(p, " \t*>") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".")) {
		bad("AUDITQ_NATS_INBOX_PREFIX: must be a subject prefix without wildcards, spaces or a leading or trailing dot, got %q", p)
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		bad("AUDITQ_NATS_TLS_CERT and AUDITQ_NATS_TLS_KEY: set both or neither")
	}
	if c.HTTPAddr != "off" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			bad("AUDITQ_HTTP_ADDR: must be host:port or \"off\", got %q", c.HTTPAddr)
		}
	}
	if c.Pprof && c.HTTPAddr == "off" {
		bad("AUDITQ_PPROF: on needs AUDITQ_HTTP_ADDR, which is off")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("AUDITQ_LOG_LEVEL: must be debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text", "auto":
	default:
		bad("AUDITQ_LOG_FORMAT: must be json, text or auto, got %q", c.LogFormat)
	}
	if c.BatchMaxEvents < 1 || c.BatchMaxEvents > 100000 {
		bad("AUDITQ_BATCH_MAX_EVENTS: must be between 1 and 100000")
	}
	if c.BatchMaxDelay < 0 || c.BatchMaxDelay > time.Second {
		bad("AUDITQ_BATCH_MAX_DELAY: must be between 0s and 1s")
	}
	if c.BatchFlushers < 1 || c.BatchFlushers > 64 {
		bad("AUDITQ_BATCH_FLUSHERS: must be between 1 and 64")
	}
	if c.BatchFlushers >= c.DatabaseConns {
		bad("AUDITQ_BATCH_FLUSHERS: must be below AUDITQ_DATABASE_MAX_CONNS (%d), leaving connections for bulk jobs and reads", c.DatabaseConns)
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		bad("AUDITQ_CONCURRENCY: must be between 1 and 10000")
	}
	if c.Attempts < 1 || c.Attempts > 20 {
		bad("AUDITQ_RETRY_ATTEMPTS: must be between 1 and 20")
	}
	if c.RetryBackoff < 0 {
		bad("AUDITQ_RETRY_BACKOFF: must not be negative")
	}
	if c.HandlerTimeout <= 0 {
		bad("AUDITQ_HANDLER_TIMEOUT: must be positive")
	}
	if c.AckWait < time.Second {
		bad("AUDITQ_ACK_WAIT: must be at least 1s")
	}
	if c.InFlightBytes != 0 && (c.InFlightBytes < 1<<20 || c.InFlightBytes > 1<<40) {
		bad("AUDITQ_INFLIGHT_BYTES: must be auto or between 1048576 (1 MiB) and 1099511627776 (1 TiB), got %d", c.InFlightBytes)
	}
	if c.MemoryLimit != 0 && c.MemoryLimit != -1 && (c.MemoryLimit < 32<<20 || c.MemoryLimit > 1<<40) {
		bad("AUDITQ_MEMORY_LIMIT: must be auto, off, or between 33554432 (32 MiB) and 1099511627776 (1 TiB), got %d", c.MemoryLimit)
	}
	if c.MaxAckPending < c.Concurrency {
		bad("AUDITQ_MAX_ACK_PENDING: must be at least AUDITQ_CONCURRENCY (%d)", c.Concurrency)
	}
	if c.DuplicateWindow < time.Second {
		bad("AUDITQ_DUPLICATE_WINDOW: must be at least 1s")
	}
	if c.ShutdownTimeout <= 0 {
		bad("AUDITQ_SHUTDOWN_TIMEOUT: must be positive")
	}
	if c.BulkMaxEvents < 1 || c.BulkMaxEvents > 100000 {
		bad("AUDITQ_BULK_MAX_EVENTS: must be between 1 and 100000")
	}
	if c.FutureSkew < 0 {
		bad("AUDITQ_MAX_FUTURE_SKEW: must not be negative")
	}
	if c.PoisonMaxMsgs < 100 {
		bad("AUDITQ_POISON_MAX_MSGS: must be at least 100 (the last 100 failed jobs are always kept)")
	}
	if c.PoisonMaxBytes < 1<<20 {
		bad("AUDITQ_POISON_MAX_BYTES: must be at least 1048576")
	}
	if c.ResultsMaxMsgs < 1 {
		bad("AUDITQ_RESULTS_MAX_MSGS: must be at least 1")
	}
	errs = append(errs, c.validateRetention()...)
	errs = append(errs, c.validateReads()...)
	errs = append(errs, c.validateEvidence()...)
	errs = append(errs, c.validatePersonal()...)
	errs = append(errs, c.validateExport()...)
	errs = append(errs, c.validateStreams()...)
	errs = append(errs, c.validateConsole()...)
	errs = append(errs, c.validateTenants()...)
	return errors.Join(errs...)
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) str(name string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	for _, v := range Vars {
		if v.Name == name {
			return v.Default
		}
	}
	panic("config: undocumented variable " + name)
}

func (p *parser) int(name string) int {
	s := p.str(name)
	n, err := strconv.Atoi(s)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: must be an integer, got %q", name, s))
	}
	return n
}

// bytesOrAuto reads a byte count, or "auto" as 0.
func (p *parser) bytesOrAuto(name string) int64 {
	s := p.str(name)
	if s == "auto" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		p.errs = append(p.errs, fmt.Errorf("%s: must be auto or a positive number of bytes, got %q", name, s))
	}
	return n
}

// memoryLimit reads a byte count, "auto" as 0 or "off" as -1.
func (p *parser) memoryLimit(name string) int64 {
	s := p.str(name)
	switch s {
	case "auto":
		return 0
	case "off":
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		p.errs = append(p.errs, fmt.Errorf("%s: must be auto, off or a positive number of bytes, got %q", name, s))
	}
	return n
}

func (p *parser) dur(name string) time.Duration {
	s := p.str(name)
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: must be a duration such as 2s or 5m, got %q", name, s))
	}
	return d
}
