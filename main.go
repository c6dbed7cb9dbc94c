// Command auditq records audit events published on NATS JetStream into
// PostgreSQL exactly once. Run "auditq help" for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // report time zones work where the system has no zoneinfo (e.g. scratch containers)

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"
	"golang.org/x/term"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/app"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/migrations"
	"github.com/auditq/auditq/ports"
	"github.com/auditq/auditq/ports/bench"
	"github.com/auditq/auditq/ports/cli"
)

const usage = `auditq records audit events from NATS JetStream into PostgreSQL, exactly once.

Usage:
  auditq serve               run the service (embedded NATS unless AUDITQ_NATS_URL is set)
  auditq publish [flags]     publish a test event, or a JSON file of events, and wait for the acks
  auditq cleanup [flags]     run a retention cleanup now and wait for its result, e.g.
                             auditq cleanup --retention-days 90 --exclude security.breach,admin.access [--dry-run]
  auditq schedule show       print the installed JetStream schedules and their next firing
  auditq bench [flags]       end-to-end benchmark on a scratch database (see "auditq bench -h")
  auditq report [flags]      ask the running service for a compliance report, e.g.
                             auditq report --type weekly [--date 2026-11-24] [--tz Europe/Berlin] [--json]
  auditq query [flags]       search the audit trail, newest first, e.g.
                             auditq query --action 'guild.*' --user u1 --limit 50 [--json]
  auditq verify [flags]      check the stored trail for tampering, e.g.
                             auditq verify [--checkpoints-from nats] [--reports] | auditq verify --event EVENT_ID
  auditq help                show this help and the configuration variables

Run "auditq publish -h" or "auditq cleanup -h" for their flags. Configuration comes from the environment:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "auditq:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "help"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "help", "-h", "--help":
		printHelp(stdout)
		return nil
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	switch cmd {
	case "serve":
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			printHelp(stdout)
			return nil
		}
		return serve(ctx, cfg, newLogger(cfg, stderr))
	case "publish":
		return cli.Publish(ctx, connector(cfg), args, stdout)
	case "bench":
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		return bench.Run(ctx, exe, args, stdout)
	case "cleanup":
		return cli.Cleanup(ctx, connector(cfg), args, stdout)
	case "report":
		return cli.Report(ctx, connector(cfg), args, stdout)
	case "query":
		return cli.Query(ctx, connector(cfg), args, stdout)
	case "schedule":
		return cli.ScheduleCmd(ctx, scheduleLister(cfg), args, stdout)
	case "verify":
		return verifyCmd(ctx, cfg, args, stdout)
	default:
		printHelp(stderr)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, v := range config.Vars {
		def := v.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(w, "  %-28s %s\n  %-28s default: %s\n", v.Name, v.Help, "", def)
	}
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// clientConn says how client commands reach NATS: the configured URL, or the
// embedded server's listen address of a local "auditq serve".
func clientConn(cfg config.Config) natsjs.ConnConfig {
	url := cfg.NATSURL
	if url == "" {
		url = "nats://" + cfg.NATSListen
	}
	return natsjs.ConnConfig{
		URL: url, User: cfg.NATSUser, Password: cfg.NATSPassword, Token: cfg.NATSToken,
		CredsFile: cfg.NATSCredsFile, TLSCA: cfg.NATSTLSCA, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey,
	}
}

// connector opens a client connection for the CLI commands.
func connector(cfg config.Config) cli.Connector {
	return func() (*nats.Conn, error) { return natsjs.Connect(clientConn(cfg), "auditq-cli") }
}

// serve runs the service until ctx ends, then stops it gracefully.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	svc, err := start(ctx, cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return svc.Close()
}

// service is a running auditq: what start opened, closed in reverse by Close.
type service struct {
	log      *slog.Logger
	embedded *server.Server
	conns    []*nats.Conn
	db       *bun.DB
	router   *message.Router
	batcher  *postgres.Batcher
	requests *ports.Requests
	sub      *natsjs.Subscriber
	pub      message.Publisher
	http     *http.Server
	httpAddr string
	natsURL  string
	done     chan struct{}
	cancel   context.CancelFunc

	// checkpoints writes the signed tamper-evidence checkpoints and
	// stopChaining stops linking committed batches into the chain (nil: off).
	checkpoints  *ports.Checkpoints
	stopChaining func()

	// stopRoller stops rolling up report hours (nil: not started).
	stopRoller func()
}

// start opens the database (migrating it), NATS (embedded unless a URL is
// configured), the streams and consumers, the router and the HTTP server. It
// returns once the router is running.
func start(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *service, err error) {
	// s is not the named result: "return nil, err" would set that to nil
	// before the deferred clean-up ran, which then panicked on every
	// failed start (found by TestSecretsNeverInLogsOrReplies).
	s := &service{log: log, done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()

	s.db, err = postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseConns)
	if err != nil {
		return nil, err
	}
	if err := migrations.Up(ctx, s.db); err != nil {
		return nil, err
	}

	conn := clientConn(cfg)
	conn.Logger = log
	if cfg.NATSURL == "" {
		s.embedded, err = natsjs.StartEmbedded(natsjs.EmbeddedConfig{
			Listen: cfg.NATSListen, DataDir: cfg.DataDir, MaxPayload: cfg.NATSMaxPayload,
			User: cfg.NATSUser, Password: cfg.NATSPassword, Token: cfg.NATSToken,
		})
		if err != nil {
			return nil, err
		}
		conn.Embedded = s.embedded
		s.natsURL = s.embedded.ClientURL()
		log.Info("embedded NATS started", "url", s.natsURL, "store", cfg.DataDir)
	} else {
		s.natsURL = cfg.NATSURL
	}
	// Separate connections: the publisher closes its own on Close, and the
	// subscriber's pulls do not queue behind publishes.
	subConn, err := s.connect(conn, "auditq-subscriber")
	if err != nil {
		return nil, err
	}
	pubConn, err := s.connect(conn, "auditq-publisher")
	if err != nil {
		return nil, err
	}
	if err := checkScheduleServer(cfg, subConn.ConnectedServerVersion()); err != nil {
		return nil, err
	}
	js, err := jetstream.New(subConn)
	if err != nil {
		return nil, err
	}
	topo := natsjs.Topology{
		JobSubjects:     ports.JobSubjects(),
		PoisonSubjects:  ports.PoisonSubjects,
		ResultSubjects:  ports.ResultSubjects,
		PoisonMaxMsgs:   cfg.PoisonMaxMsgs,
		PoisonMaxBytes:  cfg.PoisonMaxBytes,
		ResultsMaxMsgs:  cfg.ResultsMaxMsgs,
		DuplicateWindow: cfg.DuplicateWindow,
		AckWait:         cfg.AckWait,
		MaxAckPending:   cfg.MaxAckPending,
		Replicas:        cfg.NATSReplicas,

		AllowMsgSchedules: cfg.SchedulesEnabled(),
	}
	if cfg.TamperEvidence {
		topo.CheckpointSubject = ports.SubjectCheckpoints
	}
	if err := natsjs.Ensure(ctx, js, topo); err != nil {
		return nil, err
	}
	if err := installSchedules(ctx, js, cfg, log); err != nil {
		return nil, err
	}

	s.pub, err = natsjs.NewPublisher(pubConn, ports.WatermillLogger(log.With("component", "publisher")))
	if err != nil {
		return nil, err
	}
	s.sub, err = natsjs.NewSubscriber(js, natsjs.SubscriberConfig{
		Stream:   natsjs.StreamAudit,
		Consumer: natsjs.ConsumerName,
		InFlight: cfg.Concurrency,
		// A bulk job is written by its own handler on its own connection:
		// more of them in flight than free connections only holds their
		// (large) payloads in memory. Cleanups and reports are rare, long
		// jobs: two at a time, as the system we replaced ran them (each
		// in-flight slot is a goroutine and a pulled message).
		InFlightFor: map[string]int{
			ports.SubjectBulk:           max(cfg.DatabaseConns-cfg.BatchFlushers, 1),
			ports.SubjectCleanup:        2,
			ports.SubjectReportGenerate: 2,
		},
		AckWait:      cfg.AckWait,
		CloseTimeout: cfg.ShutdownTimeout,
		Logger:       log.With("component", "subscriber"),
	})
	if err != nil {
		return nil, err
	}

	te, err := setupEvidence(cfg, s.db, js, log)
	if err != nil {
		return nil, err
	}
	repo := postgres.NewRepository(s.db).WithSealer(te.sealer)
	metrics := ports.NewMetrics()
	s.batcher = postgres.NewBatcher(repo, postgres.BatcherConfig{
		MaxEvents: cfg.BatchMaxEvents, MaxDelay: cfg.BatchMaxDelay, Flushers: cfg.BatchFlushers,
		FlushTimeout: cfg.HandlerTimeout,
		Observe:      func(n int) { metrics.ObserveBatch("group-commit", n) },
	})
	reporter := natsjs.NewReporter(s.pub, ports.PoisonPrefix+"bulk", ports.SubjectBulkResults)
	policy, err := retentionPolicy(cfg)
	if err != nil {
		return nil, err
	}
	application := app.Application{
		Commands: app.Commands{
			RecordEvents: command.NewRecordEventsHandler(s.batcher),
			RecordBulk:   command.NewRecordBulkHandler(repo, reporter),
			RunCleanup: command.NewRunCleanupHandler(te.retention(postgres.NewRetention(s.db, 0, 0)), repo, repo,
				natsjs.NewCleanupReporter(s.pub, ports.SubjectCleanupResults), policy),
		},
	}
	// Reports and search. Each read is recorded through RecordEvents like
	// any other event, unless AUDITQ_AUDIT_READS=false.
	var readRecorder query.EventRecorder
	if cfg.AuditReads {
		readRecorder = application.Commands.RecordEvents
	}
	reads := query.NewReadAuditor(readRecorder, nil)
	application.Queries = app.Queries{
		Report:      query.NewReportHandler(repo, repo, reads, cfg.ReportMaxDays, nil),
		GetReport:   query.NewGetReportHandler(repo, reads),
		ListReports: query.NewListReportsHandler(repo, reads),
		Search:      query.NewSearchHandler(repo, reads),
		GetEvent:    query.NewGetEventHandler(repo, reads),
	}
	application.Queries.EventProof = query.NewEventProofHandler(te.proofs(), reads)
	application.Queries.PublicKey = query.NewPublicKeyHandler(te.publicKeys())
	application.Commands.GenerateReport = command.NewGenerateReportHandler(application.Queries.Report,
		natsjs.NewReportResults(s.pub, ports.SubjectReportResults))
	s.router, err = ports.NewRouter(ports.RouterConfig{
		Subscriber:     s.sub,
		Poison:         s.pub,
		Attempts:       cfg.Attempts,
		Backoff:        cfg.RetryBackoff,
		HandlerTimeout: cfg.HandlerTimeout,
		CleanupTimeout: cfg.CleanupTimeout,
		CloseTimeout:   cfg.ShutdownTimeout,
		BulkMaxEvents:  cfg.BulkMaxEvents,
		FutureSkew:     cfg.FutureSkew,
		Metrics:        metrics,
		Logger:         log,
	}, application)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go func() {
		defer close(s.done)
		if err := s.router.Run(runCtx); err != nil {
			log.Error("router stopped", "err", err)
		}
	}()
	select {
	case <-s.router.Running():
	case <-s.done:
		return nil, errors.New("router stopped during start-up")
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	// Request-reply endpoints (micro service "auditq") on their own
	// connection, once the router runs.
	reqConn, err := s.connect(conn, "auditq-requests")
	if err != nil {
		return nil, err
	}
	s.requests, err = ports.NewRequests(reqConn, ports.RequestsConfig{
		Timeout: cfg.RequestTimeout, StopTimeout: cfg.ShutdownTimeout, Logger: log.With("component", "requests"),
	}, application)
	if err != nil {
		return nil, err
	}

	if cfg.HTTPAddr != "off" {
		checks := map[string]ports.Check{
			"database": func(ctx context.Context) error { return postgres.Ping(ctx, s.db) },
			"nats": func(ctx context.Context) error {
				if !subConn.IsConnected() {
					return errors.New("not connected")
				}
				return natsjs.Ready(ctx, js, topo.JobSubjects)
			},
			"router": func(context.Context) error {
				if !s.router.IsRunning() || s.router.IsClosed() {
					return errors.New("not running")
				}
				return nil
			},
		}
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on AUDITQ_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
		s.httpAddr = ln.Addr().String()
		s.http = &http.Server{
			Handler:           lagCollector(ports.NewHTTPHandler(metrics, checks), metrics, js, topo.JobSubjects),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go func() {
			if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server stopped", "err", err)
			}
		}()
	}
	if te.writer != nil {
		s.stopChaining = te.sealer.StartChaining(time.Second, log.With("component", "chainer"))
		s.checkpoints = ports.StartCheckpoints(te.writer, cfg.CheckpointInterval, log.With("component", "checkpoints"))
	}
	// Report rollups: every AUDITQ_ROLLUP_INTERVAL, recompute the hours
	// changed since their last roll (see postgres.Roller).
	s.stopRoller = postgres.NewRoller(s.db, postgres.DefaultRollupLag, 0).Start(cfg.RollupInterval, log.With("component", "rollups"))
	// The redacted URL: a configured one may hold user:password@ (it did
	// reach this log line, found by TestSecretsNeverInLogsOrReplies).
	log.Info("auditq running", "nats", subConn.ConnectedUrlRedacted(), "http", s.httpAddr, "concurrency", cfg.Concurrency,
		"subjects", strings.Join(topo.JobSubjects, ","))
	return s, nil
}

// lagCollector refreshes the consumer backlog gauge before each scrape.
func lagCollector(next http.Handler, m *ports.Metrics, js jetstream.JetStream, subjects []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			pending, _ := natsjs.Pending(ctx, js, subjects)
			cancel()
			m.SetPending(pending)
		}
		next.ServeHTTP(w, r)
	})
}

func (s *service) connect(cfg natsjs.ConnConfig, name string) (*nats.Conn, error) {
	nc, err := natsjs.Connect(cfg, name)
	if err != nil {
		return nil, err
	}
	s.conns = append(s.conns, nc)
	return nc, nil
}

// Close stops taking messages, lets in-flight ones finish (or leaves them
// unacked for redelivery), then closes everything in reverse order.
func (s *service) Close() error {
	var errs []error
	if s.requests != nil {
		if err := s.requests.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("requests: %w", err))
		}
	}
	if s.router != nil {
		if err := s.router.Close(); err != nil {
			errs = append(errs, fmt.Errorf("router: %w", err))
		}
		<-s.done
	}
	if s.checkpoints != nil {
		if s.batcher != nil {
			_ = s.batcher.Close() // the last writes commit before the shutdown checkpoint
		}
		s.stopChaining()
		s.checkpoints.Stop() // chains what is left, then signs
	}
	s.closeAll()
	if len(errs) > 0 {
		s.log.Warn("shutdown incomplete; unacked messages will be redelivered", "err", errors.Join(errs...))
	}
	s.log.Info("stopped")
	return nil
}

func (s *service) closeAll() {
	if s.requests != nil {
		_ = s.requests.Stop()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	if s.sub != nil {
		_ = s.sub.Close()
	}
	if s.batcher != nil {
		_ = s.batcher.Close()
	}
	if s.pub != nil {
		_ = s.pub.Close()
	}
	for i := len(s.conns) - 1; i >= 0; i-- {
		s.conns[i].Close()
	}
	if s.embedded != nil {
		s.embedded.Shutdown()
		s.embedded.WaitForShutdown()
	}
	if s.stopRoller != nil {
		s.stopRoller()
	}
	if s.db != nil {
		_ = s.db.Close()
	}
}
