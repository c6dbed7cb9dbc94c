package client

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The formats in this file are auditq's tamper evidence
// (docs/tamper-evidence.md; domain/evidence in the auditq module):
// RFC 6962 Merkle trees over SHA-256, batch and checkpoint texts signed
// with Ed25519. TestClientProofMatchesService (service, auditq module)
// holds VerifyProof to the service's own verifier on real proofs.

// Hash is a SHA-256 digest; in JSON, 64 lower-case hex digits.
type Hash [32]byte

// String returns h in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes h as lower-case hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 hex digits; anything else is an error.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("hash %q: want 64 hex digits", b)
	}
	if _, err := hex.Decode(h[:], b); err != nil {
		return fmt.Errorf("hash %q: %w", b, err)
	}
	return nil
}

// Batch is the record of the batch (one committed write) that sealed an
// event.
type Batch struct {
	Seq       int64     `json:"seq"` // position in the chain; 0 while not yet linked
	ID        int64     `json:"id"`
	Prev      Hash      `json:"prev"`
	SealedAt  time.Time `json:"sealedAt"`
	LeafCount int       `json:"leafCount"`
	Root      Hash      `json:"root"`
	Hash      Hash      `json:"hash"`
	Signature []byte    `json:"signature"`
}

// Checkpoint is a signed statement of the whole trail's state
// (docs/tamper-evidence.md, "Checkpoint").
type Checkpoint struct {
	Seq          int64     `json:"seq"`
	Prev         Hash      `json:"prev"`
	Time         time.Time `json:"time"`
	Reason       string    `json:"reason"`
	BatchSeq     int64     `json:"batchSeq"`
	BatchHash    Hash      `json:"batchHash"`
	RangeFrom    int64     `json:"rangeFrom"`
	RangeRoot    Hash      `json:"rangeRoot"`
	DeletionSeq  int64     `json:"deletionSeq"`
	DeletionHash Hash      `json:"deletionHash"`
	KeyID        string    `json:"keyId"`
	Signature    []byte    `json:"signature"`
}

// Proof shows that one event is part of the signed trail: its canonical
// form (the Merkle leaf data), the path to its batch's root, the batch,
// the path from the batch to the range root of the first checkpoint
// covering it, and that checkpoint (nil until one covers the batch;
// NextCheckpointDue then says by when one is due).
type Proof struct {
	EventID           string      `json:"eventId"`
	Canonical         string      `json:"canonical"`
	LeafHash          Hash        `json:"leafHash"`
	LeafIndex         int         `json:"leafIndex"`
	LeafProof         []Hash      `json:"leafProof"`
	Batch             Batch       `json:"batch"`
	BatchIndex        int         `json:"batchIndex"`
	BatchProof        []Hash      `json:"batchProof"`
	RangeSize         int         `json:"rangeSize"`
	Checkpoint        *Checkpoint `json:"checkpoint"`
	NextCheckpointDue *time.Time  `json:"nextCheckpointDue,omitempty"`
}

// ErrNotCheckpointed is wrapped by VerifyProof's error when the proof
// holds up to the batch but no signed checkpoint covers the batch yet:
// ask again after NextCheckpointDue, or after WriteCheckpoint.
var ErrNotCheckpointed = errors.New("the event's batch is not yet covered by a signed checkpoint")

// ErrInvalidProof is wrapped by VerifyProof's error when a step of the
// proof fails: the event, its batch or its checkpoint is not what was
// signed (tampering, or a key that is not trusted).
var ErrInvalidProof = errors.New("invalid proof")

// VerifyProof checks p locally against keys, recomputing every hash from
// the canonical event: the leaf, the path to the batch's Merkle root, the
// batch's signature and hash, the path to the checkpoint's range root and
// the checkpoint's signature. It returns nil when the event is proven
// part of the signed trail, an error wrapping ErrNotCheckpointed when
// only the checkpoint is missing yet, else an error wrapping
// ErrInvalidProof that names the step that failed.
func VerifyProof(p Proof, keys PublicKeys) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidProof, fmt.Sprintf(format, args...))
	}
	var fields struct {
		ID *string `json:"id"`
	}
	if err := json.Unmarshal([]byte(p.Canonical), &fields); err != nil || fields.ID == nil {
		return bad("the canonical event is not a JSON object with an id")
	}
	if *fields.ID != p.EventID {
		return bad("the canonical event has id %q, not %q", *fields.ID, p.EventID)
	}
	leaf := leafHash([]byte(p.Canonical))
	if leaf != p.LeafHash {
		return bad("event %q: its stored content hashes to %s, but its batch sealed %s: the event was modified", p.EventID, short(leaf), short(p.LeafHash))
	}
	if !verifyInclusion(leaf, p.LeafIndex, p.Batch.LeafCount, p.LeafProof, p.Batch.Root) {
		return bad("event %q: the inclusion proof does not lead to the Merkle root of batch %d", p.EventID, p.Batch.Seq)
	}
	body := batchBody(p.Batch)
	if !signedBy(keys.all(), append([]byte("auditq batch body v1\n"), body...), p.Batch.Signature) {
		return bad("batch id %d: not signed by a trusted key", p.Batch.ID)
	}
	if p.Batch.Seq == 0 {
		return fmt.Errorf("event %q in batch id %d, not yet linked into the chain: %w", p.EventID, p.Batch.ID, ErrNotCheckpointed)
	}
	bh := batchHash(p.Batch, body)
	if bh != p.Batch.Hash {
		return bad("batch %d: its record does not hash to its stored hash", p.Batch.Seq)
	}
	c := p.Checkpoint
	if c == nil {
		return fmt.Errorf("event %q in batch %d: %w", p.EventID, p.Batch.Seq, ErrNotCheckpointed)
	}
	var key ed25519.PublicKey
	for _, k := range keys.all() {
		if keyID(k) == c.KeyID {
			key = k
		}
	}
	if key == nil {
		return bad("checkpoint %d: signed by key %s, which is not trusted", c.Seq, c.KeyID)
	}
	if len(c.Signature) != ed25519.SignatureSize || !ed25519.Verify(key, checkpointText(*c), c.Signature) {
		return bad("checkpoint %d: Ed25519 verification failed (key %s)", c.Seq, c.KeyID)
	}
	if p.Batch.Seq < c.RangeFrom || p.Batch.Seq > c.BatchSeq || p.BatchIndex != int(p.Batch.Seq-c.RangeFrom) ||
		p.RangeSize != int(c.BatchSeq-c.RangeFrom+1) {
		return bad("batch %d is not in the range %d..%d of checkpoint %d", p.Batch.Seq, c.RangeFrom, c.BatchSeq, c.Seq)
	}
	if !verifyInclusion(bh, p.BatchIndex, p.RangeSize, p.BatchProof, c.RangeRoot) {
		return bad("batch %d: the inclusion proof does not lead to the range root signed by checkpoint %d", p.Batch.Seq, c.Seq)
	}
	return nil
}

func (k PublicKeys) all() []ed25519.PublicKey {
	return append([]ed25519.PublicKey{k.Current}, k.Retired...)
}

func signedBy(keys []ed25519.PublicKey, text, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, text, sig) {
			return true
		}
	}
	return false
}

// keyID names a public key: the hex of the first 8 bytes of its SHA-256.
func keyID(pub []byte) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

func short(h Hash) string { return h.String()[:16] }

// leafHash is the Merkle leaf of canonical event data: SHA-256(0x00 || data).
func leafHash(data []byte) Hash {
	return sha256.Sum256(append([]byte{0}, data...))
}

// nodeHash is an interior Merkle node: SHA-256(0x01 || left || right).
func nodeHash(l, r Hash) Hash {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// verifyInclusion reports whether proof shows that leaf is at index in a
// tree of size leaves with the given root (RFC 9162, section 2.1.3.2).
func verifyInclusion(leaf Hash, index, size int, proof []Hash, root Hash) bool {
	if index < 0 || index >= size {
		return false
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}

// timeText is a time in the signed texts: UTC, exactly six fractional
// digits.
func timeText(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
}

// batchBody is the signed part of a batch's text:
//
//	id <id>\nsealed <time>\nleaves <count>\nroot <hex>\n
func batchBody(b Batch) []byte {
	return fmt.Appendf(nil, "id %d\nsealed %s\nleaves %d\nroot %s\n", b.ID, timeText(b.SealedAt), b.LeafCount, b.Root)
}

// batchHash is SHA-256 of "auditq batch v1\nseq <seq>\nprev <hex>\n" + body.
func batchHash(b Batch, body []byte) Hash {
	text := fmt.Appendf(nil, "auditq batch v1\nseq %d\nprev %s\n", b.Seq, b.Prev)
	return sha256.Sum256(append(text, body...))
}

// checkpointText is the signed text of a checkpoint.
func checkpointText(c Checkpoint) []byte {
	b := []byte("auditq checkpoint v1\nseq ")
	b = strconv.AppendInt(b, c.Seq, 10)
	b = fmt.Appendf(b, "\nprev %s\ntime %s\nreason %s\nbatches %d %s\nrange %d %d %s\ndeletions %d %s\nkey %s\n",
		c.Prev, timeText(c.Time), c.Reason, c.BatchSeq, c.BatchHash, c.RangeFrom, c.BatchSeq, c.RangeRoot,
		c.DeletionSeq, c.DeletionHash, c.KeyID)
	return b
}
