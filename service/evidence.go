package service

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/keyfile"
	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/ports/contract"
)

// tamperEvidence is the wiring of tamper evidence; its zero value (all
// nil) is tamper evidence off.
type tamperEvidence struct {
	retired   evidence.KeyRing // AUDITQ_RETIRED_KEYS
	sealer    *postgres.Sealer
	signer    *evidence.Signer
	store     *postgres.EvidenceStore
	deletions *postgres.DeletionRecorder
	writer    *command.WriteCheckpointHandler
}

// setupEvidence loads (or creates) the signing key and wires sealing,
// deletion records and checkpoints, unless AUDITQ_TAMPER_EVIDENCE is off.
func setupEvidence(ctx context.Context, cfg config.Config, db *bun.DB, js jetstream.JetStream, log *slog.Logger) (tamperEvidence, error) {
	if !cfg.TamperEvidence {
		log.Warn("tamper evidence is off (AUDITQ_TAMPER_EVIDENCE): writes are not sealed and no checkpoints are written")
		return tamperEvidence{}, nil
	}
	retired, err := retiredKeys(cfg)
	if err != nil {
		return tamperEvidence{}, err
	}
	path := cfg.SigningKeyPath()
	// Fail closed on a key that did not sign the stored trail (a new data
	// directory beside an old database); a refused new key is not written.
	priv, created, err := keyfile.LoadOrCreateChecked(path, func(pub ed25519.PublicKey, created bool) error {
		return command.CheckSigningKey(ctx, postgres.NewEvidenceStore(db),
			command.SigningKey{Public: pub, Retired: retired, File: path, New: created})
	})
	if err != nil {
		return tamperEvidence{}, err
	}
	signer := evidence.NewSigner(priv)
	te := tamperEvidence{
		retired: retired,
		sealer:  postgres.NewSealer(db, signer),
		signer:  signer,
		store:   postgres.NewEvidenceStore(db),
	}
	te.deletions = postgres.NewDeletionRecorder(te.signer)
	te.writer = command.NewWriteCheckpointHandler(te.store, natsjs.NewCheckpoints(js, contract.SubjectCheckpoints), te.signer, te.sealer).
		WithRetiredKeys(retired)
	log.Info("tamper evidence on: checkpoints are signed with this Ed25519 public key",
		"publicKey", keyfile.EncodePublicKey(te.signer.PublicKey()), "keyId", te.signer.KeyID(), "keyFile", path, "created", created)
	return te, nil
}

// retention wraps the retention store: deletions recorded and signed, a
// checkpoint after each cleanup.
func (te tamperEvidence) retention(r *postgres.Retention) audit.RetentionStore {
	if te.signer == nil {
		return r
	}
	return command.NewCheckpointingRetention(r.RecordingDeletions(te.deletions), te.writer)
}

// proofs returns the proof reader, nil when tamper evidence is off.
func (te tamperEvidence) proofs() query.ProofReader {
	if te.store == nil {
		return nil
	}
	return te.store
}

// lastCheckpoints returns the reader of the newest checkpoint, nil when
// tamper evidence is off.
func (te tamperEvidence) lastCheckpoints() query.LastCheckpointReader {
	if te.store == nil {
		return nil
	}
	return te.store
}

// publicKeys returns the signing key's public half followed by the
// retired keys; nil when off.
func (te tamperEvidence) publicKeys() evidence.KeyRing {
	if te.signer == nil {
		return nil
	}
	return append(evidence.KeyRing{te.signer.PublicKey()}, te.retired...)
}

// trustedKeys returns the public key of the signing key file followed by
// the retired keys of AUDITQ_RETIRED_KEYS.
func trustedKeys(cfg config.Config) (evidence.KeyRing, error) {
	priv, err := keyfile.Load(cfg.SigningKeyPath())
	if err != nil {
		return nil, err
	}
	retired, err := retiredKeys(cfg)
	if err != nil {
		return nil, err
	}
	return append(evidence.KeyRing{priv.Public().(ed25519.PublicKey)}, retired...), nil
}

// retiredKeys parses AUDITQ_RETIRED_KEYS.
func retiredKeys(cfg config.Config) (evidence.KeyRing, error) {
	var keys evidence.KeyRing
	for _, s := range cfg.RetiredKeys {
		k, err := evidence.ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("AUDITQ_RETIRED_KEYS: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
