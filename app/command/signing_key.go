package command

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/auditq/auditq/domain/evidence"
)

// SignedTrail reads the newest signed records of the stored trail: what
// the next checkpoint chains onto.
type SignedTrail interface {
	// LastCheckpoint returns the newest checkpoint, nil when none.
	LastCheckpoint(ctx context.Context) (*evidence.Checkpoint, error)
	// LastDeletion returns the newest deletion record, nil when none.
	LastDeletion(ctx context.Context) (*evidence.Deletion, error)
	// LastBatch returns the newest chained batch, else the newest batch
	// not yet chained; nil when there is none.
	LastBatch(ctx context.Context) (*evidence.BatchInfo, error)
}

// SigningKey is the key a service is about to sign with, and where it
// came from.
type SigningKey struct {
	Public  ed25519.PublicKey
	Retired evidence.KeyRing // AUDITQ_RETIRED_KEYS
	// File is where the key was looked for (AUDITQ_SIGNING_KEY_FILE, or
	// signing-key.pem in AUDITQ_DATA_DIR).
	File string
	// New says File did not exist: the key is a new one.
	New bool
}

// ErrForeignKey is wrapped by the errors saying that the stored trail is
// signed by a key that neither the signing key nor a retired key is.
var ErrForeignKey = errors.New("the stored trail is signed by another key")

// ForeignKeyError says that a stored record is signed by a key the
// service does not trust: "auditq verify", which trusts the same keys,
// would reject the trail, and so every checkpoint chained onto it.
type ForeignKeyError struct {
	Record  string // "checkpoint 12 (2026-11-25T10:00:00Z)", "batch 7", ...
	KeyID   string // the key that signed Record; "" when unknown (batches name no key)
	Current string // the signing key's id
	Retired []string
	File    string // the key file; "" when unknown
	New     bool   // File did not exist
	// Refused is what was refused: "start", "checkpoint 13".
	Refused string
}

// Is makes errors.Is(err, ErrForeignKey) true.
func (e *ForeignKeyError) Is(target error) bool { return target == ErrForeignKey }

// Error names both keys, the key file and the two ways out.
func (e *ForeignKeyError) Error() string {
	var b strings.Builder
	old := "key " + e.KeyID
	if e.KeyID == "" {
		old = "a key that is not trusted (batches do not name their key)"
	}
	fmt.Fprintf(&b, "refusing %s: the stored trail's %s is signed by %s, but the signing key is key %s", e.Refused, e.Record, old, e.Current)
	switch {
	case e.File != "" && e.New:
		fmt.Fprintf(&b, " (a new key: there is no key file %s)", e.File)
	case e.File != "":
		fmt.Fprintf(&b, " (key file %s)", e.File)
	}
	switch len(e.Retired) {
	case 0:
		b.WriteString(" and AUDITQ_RETIRED_KEYS lists no key")
	case 1:
		fmt.Fprintf(&b, " and AUDITQ_RETIRED_KEYS lists only key %s", e.Retired[0])
	default:
		fmt.Fprintf(&b, " and AUDITQ_RETIRED_KEYS lists only keys %s", strings.Join(e.Retired, ", "))
	}
	b.WriteString(`; checkpoints signed now would fail "auditq verify" on every run. Either restore the key file holding ` + old)
	if e.File != "" {
		fmt.Fprintf(&b, " to %s (or point AUDITQ_SIGNING_KEY_FILE at it)", e.File)
	}
	fmt.Fprintf(&b, ", or accept key %s as the new signing key by adding the public key of %s to AUDITQ_RETIRED_KEYS"+
		" (auditq logs it as publicKey, with its keyId, at every start)", e.Current, old)
	return b.String()
}

// CheckSigningKey fails closed when the stored trail is signed by a key
// that is neither k.Public nor one of k.Retired: the newest checkpoint,
// the newest deletion record or the newest batch. It returns a
// *ForeignKeyError naming both keys, k.File and the two ways out, nil
// when the trail is empty or signed by a trusted key.
func CheckSigningKey(ctx context.Context, trail SignedTrail, k SigningKey) error {
	ring := append(evidence.KeyRing{k.Public}, k.Retired...)
	foreign := func(record, keyID string) error {
		e := &ForeignKeyError{Record: record, KeyID: keyID, Current: evidence.KeyID(k.Public), File: k.File, New: k.New, Refused: "to start"}
		for _, r := range k.Retired {
			e.Retired = append(e.Retired, evidence.KeyID(r))
		}
		return e
	}
	c, err := trail.LastCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("check the signing key: %w", err)
	}
	if c != nil && !trusts(ring, c.KeyID) {
		return foreign(fmt.Sprintf("newest checkpoint %d (%s)", c.Seq, evidence.FormatTime(c.Time)), c.KeyID)
	}
	d, err := trail.LastDeletion(ctx)
	if err != nil {
		return fmt.Errorf("check the signing key: %w", err)
	}
	if d != nil && !trusts(ring, d.KeyID) {
		return foreign(fmt.Sprintf("newest deletion record %d (%s)", d.Seq, evidence.FormatTime(d.RecordedAt)), d.KeyID)
	}
	b, err := trail.LastBatch(ctx)
	if err != nil {
		return fmt.Errorf("check the signing key: %w", err)
	}
	if b != nil && evidence.VerifyBatch(ring, *b) != nil {
		name := fmt.Sprintf("newest batch %d (%s)", b.Seq, evidence.FormatTime(b.SealedAt))
		if b.Seq == 0 {
			name = fmt.Sprintf("newest batch id %d, not yet chained (%s)", b.ID, evidence.FormatTime(b.SealedAt))
		}
		return foreign(name, "")
	}
	return nil
}

// trusts reports whether ring holds the key named id.
func trusts(ring evidence.KeyRing, id string) bool {
	for _, k := range ring {
		if evidence.KeyID(k) == id {
			return true
		}
	}
	return false
}
