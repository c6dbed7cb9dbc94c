package service

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/ports/cli"
	"github.com/auditq/auditq/ports/contract"
)

// This file wires the client commands of the CLI (ports/cli): what they
// connect to and read, from the same configuration "auditq serve" uses.

// clientConn says how clients reach NATS: the configured URL, or the
// embedded server's listen address of a local "auditq serve".
func clientConn(cfg config.Config) natsjs.ConnConfig {
	url := cfg.NATSURL
	if url == "" {
		url = "nats://" + cfg.NATSListen
	}
	return natsjs.ConnConfig{
		URL: url, User: cfg.NATSUser, Password: cfg.NATSPassword, Token: cfg.NATSToken,
		CredsFile: cfg.NATSCredsFile, TLSCA: cfg.NATSTLSCA, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey,
		InboxPrefix: cfg.NATSInboxPrefix,
	}
}

// CLIDeps returns what the CLI's client commands reach, configured by cfg.
func CLIDeps(cfg config.Config) cli.Deps {
	return cli.Deps{Connect: Connector(cfg), Schedules: ScheduleLister(cfg), Verify: VerifyDeps(cfg), Poison: PoisonOpener(cfg),
		Publish: cli.PublishLimits{BulkMaxEvents: cfg.BulkMaxEvents, FutureSkew: cfg.FutureSkew},
	}
}

// Connector returns how the CLI's client commands open their connection
// to the service's NATS server.
func Connector(cfg config.Config) cli.Connector {
	conn := clientConn(cfg)
	return cli.NewConnector(conn.URL, func() (*nats.Conn, error) { return natsjs.Connect(conn, "auditq-cli") })
}

// ScheduleLister returns the lister of the installed schedules for
// "auditq schedule show": the service's audit.admin.schedules request.
func ScheduleLister(cfg config.Config) cli.ScheduleLister {
	return cli.RequestSchedules(Connector(cfg))
}

// VerifyDeps returns what "auditq verify" reads: the configured database
// (the whole trail), the trusted keys (the key file and
// AUDITQ_RETIRED_KEYS), and the checkpoints published on NATS.
func VerifyDeps(cfg config.Config) cli.VerifyDeps {
	return cli.VerifyDeps{
		Connect:     Connector(cfg),
		TrustedKeys: func() (evidence.KeyRing, error) { return trustedKeys(cfg) },
		Trail: func(ctx context.Context, opts query.VerifyOptions) (evidence.Report, error) {
			db, err := postgres.Open(ctx, cfg.DatabaseURL, 2)
			if err != nil {
				return evidence.Report{}, err
			}
			defer func() { _ = db.Close() }()
			store := postgres.NewEvidenceStore(db)
			h := query.NewVerifyTrailHandler(func(ctx context.Context, fn func(query.TrailReader) error) error {
				return store.Snapshot(ctx, func(s *postgres.EvidenceStore) error { return fn(s) })
			}).WithRecorder(postgres.NewVerifyRuns(db), "auditq verify")
			return h.Handle(ctx, opts)
		},
		External: func(context.Context) (query.CheckpointSource, func(), error) {
			nc, err := Connector(cfg)()
			if err != nil {
				return nil, nil, err
			}
			js, err := jetstream.New(nc)
			if err != nil {
				nc.Close()
				return nil, nil, fmt.Errorf("jetstream: %w", err)
			}
			return natsjs.NewCheckpoints(js, contract.SubjectCheckpoints), nc.Close, nil
		},
	}
}
