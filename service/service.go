// Package service is the bootable auditq: New builds it from a
// config.Config, Run starts it in named steps (store, NATS and topology,
// application, driving side), and Close stops it in the reverse order.
// "auditq serve", the tests and the benchmark all boot it this way. It is
// the composition root: the only package besides main that sees every
// layer.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/app"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/migrations"
	"github.com/auditq/auditq/ports"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/ports/streams"
)

// Service is one auditq instance. Its zero value is not usable: call New.
type Service struct {
	cfg config.Config
	log *slog.Logger

	// closers run in reverse order of registration: each start-up step
	// registers what it opened, so shutdown mirrors start-up.
	closers   []closer
	closeOnce sync.Once

	// Set by the steps, read by later steps and by the accessors.
	db       *bun.DB
	embedded *server.Server
	natsURL  string
	conn     natsjs.ConnConfig // how the service's own connections reach NATS
	identity ports.Identity    // whether Nats-Request-Info names who asked
	subConn  *nats.Conn
	pubConn  *nats.Conn
	js       jetstream.JetStream
	topo     natsjs.Topology
	pub      message.Publisher
	sub      *natsjs.Subscriber
	results  *natsjs.Results
	metrics  *ports.Metrics
	app      app.Application
	router   *message.Router
	httpAddr string
	streams  *streams.Runner
	// streamStore is the log streams' store, which the sealer fills with
	// the rows of the batches it commits while a stream is active.
	streamStore *postgres.StreamStore
	wsURL       string // the embedded server's WebSocket listener, "" when none
	memLimit    int64  // the soft memory limit in effect, 0 when none

	// personal reveals personal fields to the log streams; nil when
	// personal data is off and no key-encryption key is configured.
	personal *postgres.Personal
}

// closer is one registered shutdown action, named for the log.
type closer struct {
	name string
	fn   func() error
}

// New returns a service for cfg (as config.Load returns it, validated)
// that logs to log. It opens nothing; Run does.
func New(cfg config.Config, log *slog.Logger) *Service {
	return &Service{cfg: cfg, log: log}
}

// Run starts the service and returns once it consumes jobs and answers
// requests; ctx bounds the start-up only. On failure it closes what it had
// opened and returns the first step's error. Call Close to stop it.
func (s *Service) Run(ctx context.Context) error {
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"store", s.startStore},
		{"nats", s.startNATS},
		{"application", s.startApplication},
		{"log streams", s.startStreams},
		{"driving side", s.startDriving},
	}
	s.memLimit = applyMemoryLimit(softMemoryLimit(s.cfg.MemoryLimit))
	applyGCPercent(s.memLimit, s.cfg.GOGCSet)
	// Bad stream settings fail before anything is opened.
	if err := streams.ValidateStreams(streamConfigs(s.cfg)); err != nil {
		return fmt.Errorf("AUDITQ_STREAMS_FILE: %w", err)
	}
	for _, step := range steps {
		if err := step.fn(ctx); err != nil {
			s.closeAll()
			return err
		}
		s.log.Debug("start-up step done", "step", step.name)
	}
	// The redacted URL: a configured one may hold user:password@.
	s.log.Info("auditq running", "nats", s.subConn.ConnectedUrlRedacted(), "http", s.httpAddr,
		"concurrency", s.cfg.Concurrency, "memory_limit_mib", s.memLimit>>20, "subjects", strings.Join(s.topo.JobSubjects, ","))
	return nil
}

// NATSURL returns the URL of the NATS server the service uses: the
// embedded server's client URL, or AUDITQ_NATS_URL.
func (s *Service) NATSURL() string { return s.natsURL }

// WebsocketURL returns the URL of the embedded server's WebSocket
// listener (the console's), "" when there is none.
func (s *Service) WebsocketURL() string { return s.wsURL }

// HTTPAddr returns the address the health and metrics endpoints listen on,
// "" when AUDITQ_HTTP_ADDR is off.
func (s *Service) HTTPAddr() string { return s.httpAddr }

// Close stops taking messages, lets in-flight ones finish (or leaves them
// unacked for redelivery), writes the shutdown checkpoint, then closes
// everything in the reverse order of start-up. It is idempotent and
// always returns nil: a step that fails to close is logged, and what it
// left unacked is redelivered.
func (s *Service) Close() error {
	s.closeAll()
	return nil
}

func (s *Service) closeAll() {
	s.closeOnce.Do(func() {
		var errs []error
		for i := len(s.closers) - 1; i >= 0; i-- {
			c := s.closers[i]
			if err := c.fn(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			}
		}
		s.closers = nil
		if len(errs) > 0 {
			s.log.Warn("shutdown incomplete; unacked messages will be redelivered", "err", errors.Join(errs...))
		}
		s.log.Info("stopped")
	})
}

// onClose registers fn to run at Close, before everything registered
// earlier.
func (s *Service) onClose(name string, fn func() error) {
	s.closers = append(s.closers, closer{name: name, fn: fn})
}

// startStore opens PostgreSQL, migrates it, and starts rolling up report
// hours.
func (s *Service) startStore(ctx context.Context) error {
	db, err := postgres.Open(ctx, s.cfg.DatabaseURL, s.cfg.DatabaseConns)
	if err != nil {
		return err
	}
	s.db = db
	s.onClose("database", db.Close)
	if err := migrations.Up(ctx, db); err != nil {
		return err
	}
	// Every AUDITQ_ROLLUP_INTERVAL, recompute the report hours changed
	// since their last roll (see postgres.Roller).
	roller, err := postgres.NewRoller(db, postgres.RollerConfig{Lag: postgres.DefaultRollupLag})
	if err != nil {
		return err
	}
	stop := roller.Start(s.cfg.RollupInterval, s.log.With("component", "rollups"))
	s.onClose("rollups", func() error { stop(); return nil })
	return nil
}

// startNATS starts the embedded server unless AUDITQ_NATS_URL is set,
// opens the subscriber's and the publisher's connections, creates or
// updates the streams and consumers, and installs the schedules.
func (s *Service) startNATS(ctx context.Context) error {
	conn := clientConn(s.cfg)
	conn.Logger = s.log
	if s.cfg.NATSURL == "" {
		ec, serviceKey, err := embeddedConfig(s.cfg)
		if err != nil {
			return err
		}
		if err := websocketConfig(s.cfg, &ec); err != nil {
			return err
		}
		srv, err := natsjs.StartEmbedded(ec)
		if err != nil {
			return err
		}
		if ec.Websocket != "" {
			s.wsURL = srv.WebsocketURL()
			s.log.Info("NATS WebSocket listener started", "url", s.wsURL)
		}
		s.embedded = srv
		s.onClose("embedded NATS", func() error { srv.Shutdown(); srv.WaitForShutdown(); return nil })
		conn.Embedded = srv
		if serviceKey != nil {
			// The service's own user, in its own account: every request
			// from elsewhere crosses an account boundary, so the server
			// stamps Nats-Request-Info and nobody else can.
			conn = natsjs.ConnConfig{Embedded: srv, Nkey: serviceKey, Logger: s.log}
			s.identity = ports.Identity{Trusted: true, Account: s.cfg.NATSAccount}
		}
		s.natsURL = srv.ClientURL()
		s.log.Info("embedded NATS started", "url", s.natsURL, "store", s.cfg.DataDir)
	} else {
		s.natsURL = s.cfg.NATSURL
		var err error
		if conn, s.identity, err = externalConfig(s.cfg, conn); err != nil {
			return err
		}
	}
	s.conn = conn
	// Separate connections: the publisher closes its own on Close, and the
	// subscriber's pulls do not queue behind publishes.
	var err error
	if s.subConn, err = s.connect(conn, "auditq-subscriber"); err != nil {
		return err
	}
	if s.pubConn, err = s.connect(conn, "auditq-publisher"); err != nil {
		return err
	}
	if s.embedded == nil && s.identity.Trusted {
		if err := probeExternal(s.cfg, s.subConn, conn); err != nil {
			return err
		}
	}
	if err := checkScheduleServer(s.cfg, s.subConn.ConnectedServerVersion()); err != nil {
		return err
	}
	if s.js, err = jetstream.New(s.subConn); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	s.topo = natsjs.Topology{
		JobSubjects:     contract.JobSubjects(),
		PoisonSubjects:  contract.PoisonSubjects,
		ResultSubjects:  contract.ResultSubjects,
		PoisonMaxMsgs:   s.cfg.PoisonMaxMsgs,
		PoisonMaxBytes:  s.cfg.PoisonMaxBytes,
		ResultsMaxMsgs:  s.cfg.ResultsMaxMsgs,
		DuplicateWindow: s.cfg.DuplicateWindow,
		AckWait:         s.cfg.AckWait,
		MaxAckPending:   s.cfg.MaxAckPending,
		Replicas:        s.cfg.NATSReplicas,

		AllowMsgSchedules: s.cfg.SchedulesEnabled(),
	}
	if s.cfg.TamperEvidence {
		s.topo.CheckpointSubject = contract.SubjectCheckpoints
	}
	if s.cfg.Tenants {
		s.topo.AlsoFor = map[string][]string{
			contract.SubjectLog:  {contract.TenantLogSubjects},
			contract.SubjectBulk: {contract.TenantBulkSubjects},
		}
		s.topo.MoreResultSubjects = []string{contract.TenantBulkResults}
	}
	if err := natsjs.Ensure(ctx, s.js, s.topo); err != nil {
		return err
	}
	return installSchedules(ctx, s.js, s.cfg, s.log)
}

// connect opens a NATS connection closed at Close.
func (s *Service) connect(cfg natsjs.ConnConfig, name string) (*nats.Conn, error) {
	nc, err := natsjs.Connect(cfg, name)
	if err != nil {
		return nil, err
	}
	s.onClose("connection "+name, func() error { nc.Close(); return nil })
	return nc, nil
}

// startApplication wires the use cases: the result publisher, the
// subscriber, tamper evidence (sealing, chaining and checkpoints), the
// repository with its group-commit batcher, and the commands and queries.
func (s *Service) startApplication(ctx context.Context) error {
	pub, err := natsjs.NewPublisher(s.pubConn, ports.WatermillLogger(s.log.With("component", "publisher")), contract.TenantOf)
	if err != nil {
		return err
	}
	s.pub = pub
	s.onClose("publisher", pub.Close)

	sub, err := natsjs.NewSubscriber(s.js, natsjs.SubscriberConfig{
		Stream:   natsjs.StreamAudit,
		Consumer: natsjs.ConsumerName,
		InFlight: s.cfg.Concurrency,
		// A bulk job is written by its own handler on its own connection:
		// more of them in flight than free connections only holds their
		// (large) payloads in memory. Cleanups and reports are rare, long
		// jobs: two at a time (each in-flight slot is a goroutine and a
		// pulled message).
		InFlightFor: map[string]int{
			contract.SubjectBulk:           max(s.cfg.DatabaseConns-s.cfg.BatchFlushers, 1),
			contract.SubjectCleanup:        2,
			contract.SubjectReportGenerate: 2,
		},
		// audit.log messages reach the router in batches, one Watermill
		// message (one handler run) per batch instead of per event; the
		// handler commits each event on its own through the group commit.
		BatchFor:      map[string]int{contract.SubjectLog: min(s.cfg.BatchMaxEvents, logBatchMax)},
		InFlightBytes: inFlightBytes(s.cfg.InFlightBytes, s.memLimit),
		AckWait:       s.cfg.AckWait,
		CloseTimeout:  s.cfg.ShutdownTimeout,
		Logger:        s.log.With("component", "subscriber"),
	})
	if err != nil {
		return err
	}
	s.sub = sub
	s.onClose("subscriber", sub.Close)

	s.metrics = ports.NewMetrics()
	te, err := setupEvidence(ctx, s.cfg, s.db, s.js, s.log)
	if err != nil {
		return err
	}
	// The chainer and the checkpoint writer start before the batcher, so
	// that Close flushes the batcher's last writes first and the shutdown
	// checkpoint covers them.
	if te.writer != nil {
		stopChaining := te.sealer.StartChaining(time.Second, s.log.With("component", "chainer"))
		checkpoints, err := ports.StartCheckpoints(te.writer, ports.CheckpointsConfig{
			Interval: s.cfg.CheckpointInterval, Logger: s.log.With("component", "checkpoints"), Metrics: s.metrics,
		})
		if err != nil {
			return err
		}
		s.onClose("checkpoints", func() error {
			stopChaining()
			checkpoints.Stop() // chains what is left, then signs
			return nil
		})
	}

	personal, err := openPersonal(ctx, s.cfg, s.db)
	if err != nil {
		return err
	}
	s.personal = personal
	s.streamStore = postgres.NewStreamStore(s.db)
	s.streamStore.SetReaders(activeStreams(s.cfg)) // a cached batch leaves the cache once each of them read it
	if te.sealer != nil && activeStreams(s.cfg) > 0 {
		te.sealer.TapCommits(s.streamStore) // the streams read this instance's writes from memory
	}
	repo := postgres.NewRepository(s.db).WithSealer(te.sealer).WithPersonal(personal)
	batcher, err := postgres.NewBatcher(repo, postgres.BatcherConfig{
		MaxEvents: s.cfg.BatchMaxEvents, MaxDelay: s.cfg.BatchMaxDelay, Flushers: s.cfg.BatchFlushers,
		FlushTimeout: s.cfg.HandlerTimeout,
		Observe: func(events []audit.Event) {
			s.metrics.ObserveBatch("group-commit", len(events))
			s.metrics.ObserveCommitted(events, time.Now())
		},
	})
	if err != nil {
		return err
	}
	s.onClose("batcher", batcher.Close)

	policy, err := retentionPolicy(s.cfg)
	if err != nil {
		return err
	}
	retention, err := postgres.NewRetention(s.db, postgres.RetentionConfig{})
	if err != nil {
		return err
	}
	retention = retention.WithPersonal(personal)
	s.results, err = natsjs.NewResults(s.pub, natsjs.ResultsConfig{
		BulkPoison: contract.PoisonPrefix + "bulk", BulkResults: contract.SubjectBulkResults,
		CleanupResults: contract.SubjectCleanupResults, ReportResults: contract.SubjectReportResults,
		TenantBulkResults: contract.TenantBulkResultSubject,
	})
	if err != nil {
		return err
	}
	// Each read is recorded as an event through the batcher, as any other
	// event, unless AUDITQ_AUDIT_READS=false.
	var readWriter audit.Writer
	if s.cfg.AuditReads {
		readWriter = batcher
	}
	reads := query.NewReadAuditor(readWriter, query.ReadAuditorConfig{})
	// Refused requests are counted and written once a minute, and at
	// Close, after the requests have stopped and before the batcher.
	denials := query.NewDenialAuditor(reads, 0)
	denials.Start()
	s.onClose("denied requests", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		denials.Close(ctx)
		return nil
	})
	report, err := query.NewReportHandler(repo, repo, reads, query.ReportConfig{MaxDays: s.cfg.ReportMaxDays})
	if err != nil {
		return err
	}
	// The operator's requests (audit.admin.*) reach the poison stream and
	// the schedules as "auditq poison" and "auditq schedule" do.
	poison, err := NewPoison(s.js)
	if err != nil {
		return err
	}
	adminPoison := appPoison{p: poison}
	backlog := pendingReader(func(ctx context.Context) (map[string]uint64, error) {
		return natsjs.Pending(ctx, s.js, s.topo.JobSubjects)
	})
	export, err := query.NewExportHandler(repo, reads, query.ExportConfig{PageEvents: s.cfg.ExportPageEvents})
	if err != nil {
		return err
	}
	jobs, err := natsjs.NewJobQueue(s.js, natsjs.JobQueueConfig{
		Stream:          natsjs.StreamAudit,
		Subjects:        map[string]string{command.JobCleanup: contract.SubjectCleanup, command.JobReport: contract.SubjectReportGenerate},
		StartedByHeader: ports.HeaderStartedBy,
	})
	if err != nil {
		return err
	}
	s.app = app.Application{
		Commands: app.Commands{
			RecordEvents: command.NewRecordEventsHandler(batcher),
			RecordBulk:   command.NewRecordBulkHandler(repo, s.results),
			RunCleanup: command.NewRunCleanupHandler(te.retention(retention), repo, repo,
				s.results, policy),
			StartJob:        command.NewStartJobHandler(jobs, policy, s.cfg.ReportMaxDays),
			WriteCheckpoint: te.writer,
			Erase:           command.NewEraseHandler(erasureStore(personal), batcher, command.EraseConfig{HoldUsers: s.cfg.HoldUsers, TenantHoldUsers: policy.TenantHoldUsers, Tenants: s.cfg.Tenants}),
			PoisonActions:   command.NewPoisonActionsHandler(adminPoison, batcher),
		},
		Queries: app.Queries{
			Report:      report,
			GetReport:   query.NewGetReportHandler(repo, reads),
			ListReports: query.NewListReportsHandler(repo, reads),
			Search:      query.NewSearchHandler(repo, reads),
			GetEvent:    query.NewGetEventHandler(repo, reads),
			Export:      export,
			EventProof:  query.NewEventProofHandler(te.proofs(), reads).WithCheckpointInterval(s.cfg.CheckpointInterval),
			PublicKey:   query.NewPublicKeyHandler(te.publicKeys()),

			PoisonList:    query.NewPoisonListHandler(adminPoison, reads),
			PoisonGet:     query.NewPoisonGetHandler(adminPoison, reads),
			Schedules:     query.NewSchedulesHandler(scheduleSource{sc: natsjs.NewScheduler(s.js, natsjs.StreamAudit, contract.SchedulePrefix)}),
			Cleanups:      query.NewCleanupsHandler(repo, reads),
			CleanupDryRun: query.NewCleanupDryRunHandler(retention, policy, scheduledCleanup(s.cfg), reads),
			Status:        query.NewStatusHandler(te.lastCheckpoints(), s.cfg.CheckpointInterval, adminPoison, backlog, postgres.NewVerifyRuns(s.db)),
			Denials:       denials,
		},
	}
	// Erasures a crash interrupted are completed before anything is served.
	n, err := s.app.Commands.Erase.CompletePending(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("completed erasures interrupted by a stop", "erasures", n)
	}
	return nil
}

// logBatchMax is the most audit.log messages handed to the router as one
// batch: a quarter of a default group-commit batch, so that batches keep
// arriving while the flushers write.
const logBatchMax = 256

// pendingReader is a function as query.BacklogReader.
type pendingReader func(ctx context.Context) (map[string]uint64, error)

func (f pendingReader) Pending(ctx context.Context) (map[string]uint64, error) { return f(ctx) }

// startDriving starts the Watermill router on the job subjects, then the
// request-reply endpoints and the HTTP server (health, readiness,
// metrics).
func (s *Service) startDriving(ctx context.Context) error {
	router, err := ports.NewRouter(ports.RouterConfig{
		Subscriber:     s.sub,
		Poison:         s.pub,
		Reports:        s.results,
		Unbatch:        natsjs.Unbatch,
		Attempts:       s.cfg.Attempts,
		Backoff:        s.cfg.RetryBackoff,
		HandlerTimeout: s.cfg.HandlerTimeout,
		CleanupTimeout: s.cfg.CleanupTimeout,
		CloseTimeout:   s.cfg.ShutdownTimeout,
		BulkMaxEvents:  s.cfg.BulkMaxEvents,
		FutureSkew:     s.cfg.FutureSkew,
		Identity:       s.identity,
		Metrics:        s.metrics,
		Logger:         s.log,
	}, s.app)
	if err != nil {
		return err
	}
	s.router = router
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := router.Run(runCtx); err != nil {
			s.log.Error("router stopped", "err", err)
		}
	}()
	s.onClose("router", func() error {
		defer cancel()
		err := router.Close()
		<-done
		return err
	})
	select {
	case <-router.Running():
	case <-done:
		return errors.New("router stopped during start-up")
	case <-ctx.Done():
		return ctx.Err()
	}

	// Request-reply endpoints (micro service "auditq") on their own
	// connection, once the router runs.
	reqConn, err := s.connect(s.conn, "auditq-requests")
	if err != nil {
		return err
	}
	concurrency, reportConcurrency := s.cfg.RequestPools()
	requests, err := ports.NewRequests(reqConn, ports.RequestsConfig{
		Timeout: s.cfg.RequestTimeout, StopTimeout: s.cfg.ShutdownTimeout, Logger: s.log.With("component", "requests"),
		Metrics: s.metrics, Streams: s.streams, Identity: s.identity,
		Tenants:     ports.TenantPolicy{Enabled: s.cfg.Tenants, Unbound: s.cfg.TenantUnboundAccounts},
		Concurrency: concurrency, ReportConcurrency: reportConcurrency, QueueWait: s.cfg.RequestQueueWait,
		Export: ports.ExportConfig{
			ChunkBytes: s.cfg.ExportChunkBytes, Window: s.cfg.ExportWindow,
			AckTimeout: s.cfg.ExportAckTimeout, MaxRunning: s.cfg.ExportMaxRunning,
		},
	}, s.app)
	if err != nil {
		return err
	}
	s.onClose("requests", requests.Stop)

	if s.cfg.HTTPAddr == config.Off {
		return nil
	}
	return s.startHTTP()
}

// startHTTP serves /healthz, /readyz and /metrics on AUDITQ_HTTP_ADDR.
func (s *Service) startHTTP() error {
	checks := map[string]ports.Check{
		"database": func(ctx context.Context) error { return postgres.Ping(ctx, s.db) },
		"nats": func(ctx context.Context) error {
			if !s.subConn.IsConnected() {
				return errors.New("not connected")
			}
			return natsjs.Ready(ctx, s.js, s.topo.JobSubjects)
		},
		"router": func(context.Context) error {
			if !s.router.IsRunning() || s.router.IsClosed() {
				return errors.New("not running")
			}
			return nil
		},
	}
	pending := func(ctx context.Context) (map[string]uint64, error) {
		return natsjs.Pending(ctx, s.js, s.topo.JobSubjects)
	}
	poison, err := NewPoison(s.js)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on AUDITQ_HTTP_ADDR %s: %w", s.cfg.HTTPAddr, err)
	}
	s.httpAddr = ln.Addr().String()
	consoleHandler, err := s.console()
	if err != nil {
		_ = ln.Close()
		return err
	}
	handler := ports.NewHTTPHandler(s.metrics, checks, pending, poisonBacklog(poison), consoleHandler)
	if s.cfg.Pprof {
		handler = ports.WithProfiles(handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("HTTP server stopped", "err", err)
		}
	}()
	if consoleHandler != nil {
		s.log.Info("admin console", "url", "http://"+s.httpAddr+"/")
	}
	s.onClose("http", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	})
	return nil
}
