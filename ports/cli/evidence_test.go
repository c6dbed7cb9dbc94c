package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/app"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/migrations"
	"github.com/auditq/auditq/ports"
)

// sealedService is the request service over a sealed trail on a fresh
// database and an in-process NATS server, wired as "auditq serve" wires
// them (checkpoints every hour).
type sealedService struct {
	db      *bun.DB
	sealer  *postgres.Sealer
	store   *postgres.EvidenceStore
	repo    *postgres.Repository
	signer  *evidence.Signer
	writer  *command.WriteCheckpointHandler
	connect Connector
	deps    VerifyDeps
}

func newSealedService(t *testing.T, writer func(*postgres.EvidenceStore, *postgres.Sealer, *evidence.Signer) *command.WriteCheckpointHandler) *sealedService {
	t.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.NewDatabase(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &sealedService{db: db, store: postgres.NewEvidenceStore(db), signer: evidence.NewSigner(priv)}
	s.sealer = postgres.NewSealer(db, s.signer)
	s.repo = postgres.NewRepository(db).WithSealer(s.sealer)
	if writer != nil {
		s.writer = writer(s.store, s.sealer, s.signer)
	}
	application := app.Application{
		Commands: app.Commands{WriteCheckpoint: s.writer},
		Queries: app.Queries{
			EventProof: query.NewEventProofHandler(s.store, query.NewReadAuditor(nil, query.ReadAuditorConfig{})).WithCheckpointInterval(time.Hour),
			PublicKey:  query.NewPublicKeyHandler(evidence.KeyRing{s.signer.PublicKey()}),
		},
	}
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.ClientURL())
	r, err := ports.NewRequests(nc, ports.RequestsConfig{Timeout: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)}, application)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	url := srv.ClientURL()
	s.connect = NewConnector(url, func() (*nats.Conn, error) { return nats.Connect(url) })
	s.deps = VerifyDeps{Connect: s.connect, TrustedKeys: func() (evidence.KeyRing, error) { return evidence.KeyRing{s.signer.PublicKey()}, nil }}
	return s
}

func (s *sealedService) write(t *testing.T, ids ...string) {
	t.Helper()
	at := audit.Normalize(time.Now())
	var evs []audit.Event
	for _, id := range ids {
		evs = append(evs, audit.Event{ID: id, UserID: "u1", Action: "user.login", ResourceType: "user", ResourceID: "1",
			Success: true, OccurredAt: at, ReceivedAt: at})
	}
	if _, err := s.repo.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func (s *sealedService) verifyEvent(t *testing.T, id string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Verify(context.Background(), s.deps, []string{"--event", id}, &out)
	return out.String(), err
}

// An event just stored is pending, not failed: exit code 3, with when the
// next checkpoint is due. "auditq checkpoint" writes one at once, after
// which the event verifies.
func TestVerifyEventPendingUntilACheckpointIsWritten(t *testing.T) {
	s := newSealedService(t, func(st *postgres.EvidenceStore, se *postgres.Sealer, sg *evidence.Signer) *command.WriteCheckpointHandler {
		return command.NewWriteCheckpointHandler(st, nil, sg, se)
	})
	ctx := context.Background()
	first, err := s.writer.Handle(ctx, command.CheckpointStart) // as at start, before any event
	if err != nil {
		t.Fatal(err)
	}
	s.write(t, "e1", "e2")

	out, err := s.verifyEvent(t, "e1") // committed, not yet chained
	if !errors.Is(err, ErrPending) || errors.Is(err, ErrVerifyFailed) || ExitCode(err) != ExitPending {
		t.Fatalf("verify --event of an unchained event: %v\n%s", err, out)
	}
	due := first.Checkpoint.Time.Add(time.Hour).UTC().Format(time.RFC3339)
	for _, want := range []string{`PENDING: event "e1" is sealed`, "being linked into the chain", "batch signature valid",
		"due by " + due, `"auditq checkpoint" writes one now`} {
		if !strings.Contains(out, want) {
			t.Errorf("the pending report does not say %q:\n%s", want, out)
		}
	}
	if _, err := s.writer.Handle(ctx, command.CheckpointPeriodic); err != nil { // chains e1's batch
		t.Fatal(err)
	}
	s.write(t, "e3")
	if _, err := s.sealer.Chain(ctx); err != nil { // as the chainer does every second
		t.Fatal(err)
	}
	out, err = s.verifyEvent(t, "e3")
	if ExitCode(err) != ExitPending || !strings.Contains(out, "of batch 2, sealed") {
		t.Fatalf("verify --event of a chained, uncovered event: %v\n%s", err, out)
	}

	var cp bytes.Buffer
	if err := Checkpoint(ctx, s.connect, nil, &cp); err != nil {
		t.Fatalf("auditq checkpoint: %v\n%s", err, cp.String())
	}
	for _, want := range []string{"checkpoint 3 written (request) at ", "signed by key " + s.signer.KeyID(), "batches    2, head ",
		"(new since checkpoint 2: 2..2)", "deletions  0"} {
		if !strings.Contains(cp.String(), want) {
			t.Errorf("auditq checkpoint does not say %q:\n%s", want, cp.String())
		}
	}
	if strings.Contains(cp.String(), "not yet published") {
		t.Errorf("reported unpublished:\n%s", cp.String())
	}
	out, err = s.verifyEvent(t, "e3")
	if err != nil || !strings.Contains(out, `OK: event "e3" is part of the signed trail`) || !strings.Contains(out, "checkpoint  3, ") {
		t.Fatalf("verify --event after auditq checkpoint: %v\n%s", err, out)
	}
	cp.Reset()
	if err := Checkpoint(ctx, s.connect, []string{"--json"}, &cp); err != nil || !strings.Contains(cp.String(), `"reason":"request"`) ||
		!strings.Contains(cp.String(), `"published":true`) {
		t.Fatalf("auditq checkpoint --json: %v\n%s", err, cp.String())
	}

	// A modified event still fails, with exit code 1.
	if _, err := s.db.DB.ExecContext(ctx, `UPDATE audit_logs SET action = 'user.logout' WHERE id = 'e2'`); err != nil {
		t.Fatal(err)
	}
	if out, err := s.verifyEvent(t, "e2"); !errors.Is(err, ErrVerifyFailed) || ExitCode(err) != ExitFailed ||
		!strings.Contains(err.Error(), "the event was modified") {
		t.Fatalf("verify --event of a modified event: %v\n%s", err, out)
	}
}

// With tamper evidence off, the service says so (501); a writer that would
// chain onto a checkpoint of an untrusted key refuses (409) and says why.
func TestCheckpointCommandErrors(t *testing.T) {
	ctx := context.Background()
	off := newSealedService(t, nil)
	var out bytes.Buffer
	err := Checkpoint(ctx, off.connect, nil, &out)
	var se *ServiceError
	if !errors.As(err, &se) || se.Code != ports.CodeDisabled || !strings.Contains(err.Error(), "tamper evidence is off") {
		t.Fatalf("tamper evidence off: %v", err)
	}

	var other *evidence.Signer
	s := newSealedService(t, func(st *postgres.EvidenceStore, se *postgres.Sealer, sg *evidence.Signer) *command.WriteCheckpointHandler {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		other = evidence.NewSigner(priv)
		if _, err := command.NewWriteCheckpointHandler(st, nil, other, nil).Handle(ctx, command.CheckpointStart); err != nil {
			t.Fatal(err)
		}
		return command.NewWriteCheckpointHandler(st, nil, sg, se)
	})
	err = Checkpoint(ctx, s.connect, nil, &out)
	if !errors.As(err, &se) || se.Code != ports.CodeConflict || !strings.Contains(err.Error(), "refusing to sign checkpoint 2") ||
		!strings.Contains(err.Error(), "signed by key "+other.KeyID()) || !strings.Contains(err.Error(), "AUDITQ_RETIRED_KEYS") {
		t.Fatalf("checkpoint onto a foreign key's: %v", err)
	}
}
