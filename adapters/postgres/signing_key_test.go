package postgres_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/keyfile"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// startUp does what the service does at start with tamper evidence on:
// load the key in path, or create one, refusing a key the stored trail is
// not signed by.
func startUp(tr *trail, path string, retired evidence.KeyRing) (ed25519.PrivateKey, error) {
	priv, _, err := keyfile.LoadOrCreateChecked(path, func(pub ed25519.PublicKey, created bool) error {
		return command.CheckSigningKey(context.Background(), tr.store,
			command.SigningKey{Public: pub, Retired: retired, File: path, New: created})
	})
	return priv, err
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// wantForeign asserts that err is a *ForeignKeyError saying each of want.
func wantForeign(t *testing.T, err error, want ...string) {
	t.Helper()
	var fe *command.ForeignKeyError
	if !errors.As(err, &fe) || !errors.Is(err, command.ErrForeignKey) {
		t.Fatalf("got %v, want a *ForeignKeyError", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error does not say %q:\n%s", w, err)
		}
	}
}

// A new data directory (no key file) beside a database whose trail is
// signed by key A: the service refuses to start, naming both keys, the key
// file and the two ways out, and leaves no key file behind; with A listed
// as retired, it starts with the new key, which then signs checkpoints the
// trail's verifier accepts.
func TestStartRefusesAKeyTheStoredTrailIsNotSignedBy(t *testing.T) {
	tr := newTrail(t)
	tr.write(t, "a", 3)
	tr.checkpoint(t, command.CheckpointPeriodic)
	keyA := tr.signer.PublicKey()
	idA := evidence.KeyID(keyA)

	path := filepath.Join(t.TempDir(), "data", "signing-key.pem")
	_, err := startUp(tr, path, nil)
	wantForeign(t, err, "refusing to start", "newest checkpoint 1", "signed by key "+idA,
		"a new key: there is no key file "+path, "AUDITQ_RETIRED_KEYS lists no key",
		"restore the key file holding key "+idA+" to "+path, "AUDITQ_SIGNING_KEY_FILE",
		"by adding the public key of key "+idA+" to AUDITQ_RETIRED_KEYS")
	var fe *command.ForeignKeyError
	if !errors.As(err, &fe) || fe.Current == idA || !strings.Contains(err.Error(), "the signing key is key "+fe.Current) ||
		!strings.Contains(err.Error(), "accept key "+fe.Current) {
		t.Fatalf("the error does not name the new key %s: %v", fe.Current, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused new key was written to %s: %v", path, err)
	}

	// A key file of another key: named as such.
	other := filepath.Join(t.TempDir(), "other.pem")
	if _, _, err := keyfile.LoadOrCreate(other); err != nil {
		t.Fatal(err)
	}
	_, err = startUp(tr, other, evidence.KeyRing{newKey(t).Public().(ed25519.PublicKey)})
	wantForeign(t, err, "(key file "+other+")", "AUDITQ_RETIRED_KEYS lists only key ")

	// Accepting the new key: A listed as retired.
	priv, err := startUp(tr, path, evidence.KeyRing{keyA})
	if err != nil {
		t.Fatalf("start with the old key retired: %v", err)
	}
	if loaded, err := keyfile.Load(path); err != nil || !loaded.Equal(priv) {
		t.Fatalf("the accepted new key is not in %s: %v", path, err)
	}
	signer := evidence.NewSigner(priv)
	sealer := postgres.NewSealer(tr.db, signer)
	tr.repo = postgres.NewRepository(tr.db).WithSealer(sealer)
	tr.write(t, "b", 2)
	res, err := command.NewWriteCheckpointHandler(tr.store, nil, signer, sealer).WithRetiredKeys(evidence.KeyRing{keyA}).
		Handle(context.Background(), command.CheckpointStart)
	if err != nil || res.Checkpoint.KeyID != signer.KeyID() {
		t.Fatalf("checkpoint with the new key: %+v, %v", res, err)
	}
	wantClean(t, tr.verifyWith(t, query.VerifyOptions{Keys: evidence.KeyRing{signer.PublicKey(), keyA}}))

	// The next start finds the key file and the trail signed by it.
	if again, err := startUp(tr, path, nil); err != nil || !again.Equal(priv) {
		t.Fatalf("restart with the accepted key: %v", err)
	}
	// The old key file restored: its key signed what came before, but the
	// newest checkpoint is the new key's, and the old one must list it.
	restored := filepath.Join(t.TempDir(), "restored.pem")
	if _, _, err := keyfile.LoadOrCreateChecked(restored, nil); err != nil {
		t.Fatal(err)
	}
	_, err = startUp(tr, restored, evidence.KeyRing{keyA})
	wantForeign(t, err, "signed by key "+signer.KeyID())
}

// The checkpoint writer never chains onto a checkpoint signed by a key it
// does not trust: it signs and stores nothing and says why; trusting the
// old key as retired, it goes on, and the trail verifies with both keys.
func TestCheckpointWriterRefusesToChainOntoAForeignKey(t *testing.T) {
	tr := newTrail(t)
	tr.write(t, "a", 3)
	tr.checkpoint(t, command.CheckpointPeriodic)
	keyA := tr.signer.PublicKey()

	signer := evidence.NewSigner(newKey(t))
	sealer := postgres.NewSealer(tr.db, signer)
	tr.repo = postgres.NewRepository(tr.db).WithSealer(sealer)
	tr.write(t, "b", 2)
	cp := command.NewWriteCheckpointHandler(tr.store, nil, signer, sealer)
	_, err := cp.Handle(context.Background(), command.CheckpointPeriodic)
	wantForeign(t, err, "refusing to sign checkpoint 2", "newest checkpoint 1", "signed by key "+evidence.KeyID(keyA),
		"the signing key is key "+signer.KeyID(), "AUDITQ_RETIRED_KEYS")
	if last, err := tr.store.LastCheckpoint(context.Background()); err != nil || last.Seq != 1 {
		t.Fatalf("a checkpoint was stored after the refusal: %+v, %v", last, err)
	}

	res, err := cp.WithRetiredKeys(evidence.KeyRing{keyA}).Handle(context.Background(), command.CheckpointPeriodic)
	if err != nil || res.Checkpoint.Seq != 2 || res.Tampered != "" {
		t.Fatalf("checkpoint with the old key retired: %+v, %v", res, err)
	}
	rep := tr.verifyWith(t, query.VerifyOptions{Keys: evidence.KeyRing{signer.PublicKey(), keyA}})
	wantClean(t, rep)
	if rep.Uncovered != 0 || rep.Checkpoints != 2 {
		t.Fatalf("report: %+v", rep)
	}
}

// Without a checkpoint, the newest deletion record and the newest batch
// (chained or not) tell which key signed the trail.
func TestSigningKeyCheckReadsBatchesAndDeletionRecords(t *testing.T) {
	ctx := context.Background()
	tr := newTrail(t)
	keyA := tr.signer.PublicKey()
	keyB := newKey(t).Public().(ed25519.PublicKey)
	check := func(k ed25519.PublicKey, retired ...ed25519.PublicKey) error {
		return command.CheckSigningKey(ctx, tr.store, command.SigningKey{Public: k, Retired: retired, File: "/data/signing-key.pem"})
	}
	if err := check(keyB); err != nil {
		t.Fatalf("an empty trail refused a key: %v", err)
	}

	tr.writeOld(t, 3, nil) // committed, not yet chained
	wantForeign(t, check(keyB), "newest batch id ", "not yet chained", "signed by a key that is not trusted", "key file /data/signing-key.pem")
	if _, err := tr.sealer.Chain(ctx); err != nil {
		t.Fatal(err)
	}
	wantForeign(t, check(keyB), "newest batch 1 (")
	if err := check(keyA); err != nil {
		t.Fatalf("the trail's own key refused: %v", err)
	}
	if err := check(keyB, keyA); err != nil {
		t.Fatalf("the trail's key retired refused: %v", err)
	}

	// A cleanup signed by A, no checkpoint after it.
	ret := mustRetention(t, tr.db, postgres.RetentionConfig{Chunk: 2}).RecordingDeletions(postgres.NewDeletionRecorder(tr.signer))
	if n, err := ret.DeleteExpired(ctx, audit.Cleanup{Cutoff: oldTime.Add(time.Hour)}); err != nil || n != 3 {
		t.Fatalf("cleanup: %d, %v", n, err)
	}
	wantForeign(t, check(keyB), "newest deletion record ", "signed by key "+evidence.KeyID(keyA))
	if err := check(keyA); err != nil {
		t.Fatalf("the trail's own key refused: %v", err)
	}
}
