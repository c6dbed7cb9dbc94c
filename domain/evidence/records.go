package evidence

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Batch is one committed write: the events it stored, as Merkle leaves in
// write order, chained to the batch before it. A leaf is ZeroHash where the
// write's event was a duplicate and stored nothing.
type Batch struct {
	Seq       int64     // position in the chain, 1, 2, ...
	ID        int64     // the id its rows carry (audit_logs.seal_batch)
	Prev      Hash      // Hash of batch Seq-1; ZeroHash for the first
	SealedAt  time.Time // when it was sealed (UTC, microseconds)
	LeafCount int
	Leaves    []Hash // LeafCount leaves; nil when only the header was read
	Root      Hash   // MerkleRoot(Leaves)
	Hash      Hash   // BatchHash(Seq, Prev, BatchBody(...)) as stored
	// Signature is the writer's Ed25519 signature of BatchSigned(body):
	// a batch appended behind the writers' back has none that verifies.
	Signature []byte
}

// BatchSigned is what a batch's signature covers: the body, prefixed with
// "auditq batch body v1\n" (its chain position is covered by checkpoints).
func BatchSigned(body []byte) []byte {
	return append([]byte("auditq batch body v1\n"), body...)
}

// BatchBody returns the part of a batch's hashed text that the writer
// knows before it takes its place in the chain:
//
//	id <id>\nsealed <time>\nleaves <count>\nroot <hex>\n
func BatchBody(id int64, sealedAt time.Time, leafCount int, root Hash) []byte {
	b := make([]byte, 0, 160)
	b = append(b, "id "...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, "\nsealed "...)
	b = AppendTime(b, sealedAt)
	b = append(b, "\nleaves "...)
	b = strconv.AppendInt(b, int64(leafCount), 10)
	b = append(b, "\nroot "...)
	b = hex.AppendEncode(b, root[:])
	return append(b, '\n')
}

// BatchHeader is the chain-dependent start of a batch's hashed text.
const BatchHeader = "auditq batch v1\n"

// BatchHash returns SHA-256 of the batch text:
//
//	auditq batch v1\nseq <seq>\nprev <hex>\n + body
func BatchHash(seq int64, prev Hash, body []byte) Hash {
	h := sha256.New()
	b := make([]byte, 0, 100)
	b = append(b, BatchHeader...)
	b = append(b, "seq "...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, "\nprev "...)
	b = hex.AppendEncode(b, prev[:])
	b = append(b, '\n')
	h.Write(b)
	h.Write(body)
	var out Hash
	h.Sum(out[:0])
	return out
}

// ComputeHash recomputes the batch's hash from its fields.
func (b Batch) ComputeHash() Hash {
	return BatchHash(b.Seq, b.Prev, BatchBody(b.ID, b.SealedAt, b.LeafCount, b.Root))
}

// DeletedLeaf names one leaf removed by retention: batch id and leaf index.
type DeletedLeaf struct {
	Batch int64 `json:"batch"`
	Leaf  int   `json:"leaf"`
}

// Deletion records, signed, which leaves one retention step deleted, and
// under which cleanup criteria. Deletions form their own chain.
type Deletion struct {
	Seq        int64
	Prev       Hash
	RecordedAt time.Time
	Cutoff     time.Time
	Criteria   string        // RFC 8785 JSON of the cleanup's exclusions and holds
	Leaves     []DeletedLeaf // sorted by batch id, then leaf
	KeyID      string
	Signature  []byte
	Hash       Hash // as stored
}

// SortLeaves orders leaves by batch id, then leaf index.
func SortLeaves(leaves []DeletedLeaf) {
	slices.SortFunc(leaves, func(a, b DeletedLeaf) int {
		if a.Batch != b.Batch {
			if a.Batch < b.Batch {
				return -1
			}
			return 1
		}
		return a.Leaf - b.Leaf
	})
}

// EntriesDigest is SHA-256 over one line "<batch id> <leaf>\n" per deleted
// leaf, in order.
func EntriesDigest(leaves []DeletedLeaf) Hash {
	h := sha256.New()
	b := make([]byte, 0, 32)
	for _, l := range leaves {
		b = strconv.AppendInt(b[:0], l.Batch, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(l.Leaf), 10)
		b = append(b, '\n')
		h.Write(b)
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// Text returns the signed text of the deletion record:
//
//	auditq deletion v1
//	seq <seq>
//	prev <hex>
//	time <time>
//	cutoff <time>
//	criteria <json>
//	entries <count> <hex EntriesDigest>
//	key <key id>
func (d Deletion) Text() []byte {
	b := make([]byte, 0, 400+len(d.Criteria))
	b = append(b, "auditq deletion v1\nseq "...)
	b = strconv.AppendInt(b, d.Seq, 10)
	b = append(b, "\nprev "...)
	b = hex.AppendEncode(b, d.Prev[:])
	b = append(b, "\ntime "...)
	b = AppendTime(b, d.RecordedAt)
	b = append(b, "\ncutoff "...)
	b = AppendTime(b, d.Cutoff)
	b = append(b, "\ncriteria "...)
	b = append(b, d.Criteria...)
	b = append(b, "\nentries "...)
	b = strconv.AppendInt(b, int64(len(d.Leaves)), 10)
	b = append(b, ' ')
	dg := EntriesDigest(d.Leaves)
	b = hex.AppendEncode(b, dg[:])
	b = append(b, "\nkey "...)
	b = append(b, d.KeyID...)
	return append(b, '\n')
}

// ComputeHash returns SHA-256 of Text.
func (d Deletion) ComputeHash() Hash { return sha256.Sum256(d.Text()) }

// Checkpoint is a signed statement of the whole trail's state: the head of
// the batch chain, a Merkle root over the batches added since the previous
// checkpoint (for compact proofs), and the head of the deletion chain.
// Checkpoints form their own chain.
type Checkpoint struct {
	Seq          int64     `json:"seq"`
	Prev         Hash      `json:"prev"`
	Time         time.Time `json:"time"`
	Reason       string    `json:"reason"` // periodic, start, shutdown, cleanup, ...
	BatchSeq     int64     `json:"batchSeq"`
	BatchHash    Hash      `json:"batchHash"`
	RangeFrom    int64     `json:"rangeFrom"` // first batch of the range; BatchSeq+1 when empty
	RangeRoot    Hash      `json:"rangeRoot"` // MerkleRoot of batch hashes RangeFrom..BatchSeq
	DeletionSeq  int64     `json:"deletionSeq"`
	DeletionHash Hash      `json:"deletionHash"`
	KeyID        string    `json:"keyId"`
	Signature    []byte    `json:"signature"` // Ed25519 over Text(), base64 in JSON
}

// Text returns the signed text of the checkpoint:
//
//	auditq checkpoint v1
//	seq <seq>
//	prev <hex>
//	time <time>
//	reason <reason>
//	batches <batch seq> <hex batch hash>
//	range <from> <batch seq> <hex range root>
//	deletions <deletion seq> <hex deletion hash>
//	key <key id>
func (c Checkpoint) Text() []byte {
	b := make([]byte, 0, 512)
	b = append(b, "auditq checkpoint v1\nseq "...)
	b = strconv.AppendInt(b, c.Seq, 10)
	b = append(b, "\nprev "...)
	b = hex.AppendEncode(b, c.Prev[:])
	b = append(b, "\ntime "...)
	b = AppendTime(b, c.Time)
	b = append(b, "\nreason "...)
	b = append(b, c.Reason...)
	b = append(b, "\nbatches "...)
	b = strconv.AppendInt(b, c.BatchSeq, 10)
	b = append(b, ' ')
	b = hex.AppendEncode(b, c.BatchHash[:])
	b = append(b, "\nrange "...)
	b = strconv.AppendInt(b, c.RangeFrom, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, c.BatchSeq, 10)
	b = append(b, ' ')
	b = hex.AppendEncode(b, c.RangeRoot[:])
	b = append(b, "\ndeletions "...)
	b = strconv.AppendInt(b, c.DeletionSeq, 10)
	b = append(b, ' ')
	b = hex.AppendEncode(b, c.DeletionHash[:])
	b = append(b, "\nkey "...)
	b = append(b, c.KeyID...)
	return append(b, '\n')
}

// Hash returns SHA-256 of Text: the next checkpoint's Prev.
func (c Checkpoint) Hash() Hash { return sha256.Sum256(c.Text()) }

// Signer signs deletion records and checkpoints with an Ed25519 key that
// the database never holds.
type Signer struct {
	priv  ed25519.PrivateKey
	keyID string
}

// NewSigner returns a Signer for priv.
func NewSigner(priv ed25519.PrivateKey) *Signer {
	return &Signer{priv: priv, keyID: KeyID(priv.Public().(ed25519.PublicKey))}
}

// PublicKey returns the key that verifies the signer's signatures.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// KeyID returns the id of the signer's public key.
func (s *Signer) KeyID() string { return s.keyID }

// SignCheckpoint sets c's KeyID and Signature.
func (s *Signer) SignCheckpoint(c *Checkpoint) {
	c.KeyID = s.keyID
	c.Signature = ed25519.Sign(s.priv, c.Text())
}

// SignBatch returns the signature of a batch body (see BatchSigned).
func (s *Signer) SignBatch(body []byte) []byte {
	return ed25519.Sign(s.priv, BatchSigned(body))
}

// KeyRing is the set of public keys a verification trusts: the
// installation's signing key and, after a key rotation, the keys it signed
// with before.
type KeyRing []ed25519.PublicKey

// find returns the key named id.
func (r KeyRing) find(id string) (ed25519.PublicKey, bool) {
	for _, k := range r {
		if KeyID(k) == id {
			return k, true
		}
	}
	return nil, false
}

// String lists the key ids: "key 1a2b..." or "keys 1a2b..., 3c4d...".
func (r KeyRing) String() string {
	ids := make([]string, len(r))
	for i, k := range r {
		ids[i] = KeyID(k)
	}
	if len(ids) == 1 {
		return "key " + ids[0]
	}
	return "keys " + strings.Join(ids, ", ")
}

// VerifyBatch checks that a batch is signed by one of keys (batch records
// do not name their key); the error wraps ErrBadSignature.
func VerifyBatch(keys KeyRing, b BatchInfo) error {
	body := BatchSigned(BatchBody(b.ID, b.SealedAt, b.LeafCount, b.Root))
	if len(b.Signature) == ed25519.SignatureSize {
		for _, k := range keys {
			if ed25519.Verify(k, body, b.Signature) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: the batch is not signed by the trusted %s", ErrBadSignature, keys)
}

// SignDeletion sets d's KeyID, Signature and Hash.
func (s *Signer) SignDeletion(d *Deletion) {
	d.KeyID = s.keyID
	text := d.Text()
	d.Signature = ed25519.Sign(s.priv, text)
	d.Hash = sha256.Sum256(text)
}

// KeyID names a public key: the hex of the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// ErrBadSignature is wrapped by signature check failures.
var ErrBadSignature = errors.New("bad signature")

// VerifyCheckpoint checks c's signature with the key of keys it names;
// the error wraps ErrBadSignature.
func VerifyCheckpoint(keys KeyRing, c Checkpoint) error {
	return verifySig(keys, c.KeyID, c.Text(), c.Signature)
}

// VerifyDeletion checks d's signature with the key of keys it names; the
// error wraps ErrBadSignature.
func VerifyDeletion(keys KeyRing, d Deletion) error {
	return verifySig(keys, d.KeyID, d.Text(), d.Signature)
}

func verifySig(keys KeyRing, keyID string, text, sig []byte) error {
	pub, ok := keys.find(keyID)
	if !ok {
		return fmt.Errorf("%w: signed by key %s, not by the trusted %s", ErrBadSignature, keyID, keys)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, text, sig) {
		return fmt.Errorf("%w: Ed25519 verification failed (key %s)", ErrBadSignature, keyID)
	}
	return nil
}

// ParsePublicKey reads an Ed25519 public key given as base64 or hex of its
// 32 bytes, or as a PEM "PUBLIC KEY" (PKIX) text. It returns an error for
// anything else.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if block, _ := pem.Decode([]byte(s)); block != nil {
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub, ok := key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key: a %T, not Ed25519", key)
		}
		return pub, nil
	}
	for _, dec := range []func(string) ([]byte, error){base64.StdEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString} {
		if b, err := dec(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, errors.New("public key: want the 32-byte Ed25519 key as base64 or hex, or a PEM PUBLIC KEY")
}
