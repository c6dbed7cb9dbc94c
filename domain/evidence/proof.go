package evidence

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// BatchInfo is a batch record without its leaves: what a client needs to
// recompute the batch's hash.
type BatchInfo struct {
	Seq       int64     `json:"seq"`
	ID        int64     `json:"id"`
	Prev      Hash      `json:"prev"`
	SealedAt  time.Time `json:"sealedAt"`
	LeafCount int       `json:"leafCount"`
	Root      Hash      `json:"root"`
	Hash      Hash      `json:"hash"`
	Signature []byte    `json:"signature"` // base64
}

// Info returns b without its leaves.
func (b Batch) Info() BatchInfo {
	return BatchInfo{Seq: b.Seq, ID: b.ID, Prev: b.Prev, SealedAt: b.SealedAt, LeafCount: b.LeafCount, Root: b.Root, Hash: b.Hash, Signature: b.Signature}
}

// ComputeHash recomputes the batch hash from the fields.
func (b BatchInfo) ComputeHash() Hash {
	return BatchHash(b.Seq, b.Prev, BatchBody(b.ID, b.SealedAt, b.LeafCount, b.Root))
}

// EventProof shows that one event is part of the signed trail: its
// canonical encoding, the Merkle path from its leaf to its batch's root,
// the batch record, the Merkle path from the batch's hash to the root of
// the batch range of the first checkpoint covering it, and that signed
// checkpoint (nil while no checkpoint covers the batch yet).
type EventProof struct {
	EventID    string      `json:"eventId"`
	Canonical  string      `json:"canonical"` // the leaf data (RFC 8785 JSON of the event as stored)
	LeafHash   Hash        `json:"leafHash"`  // the leaf sealed in the batch
	LeafIndex  int         `json:"leafIndex"`
	LeafProof  []Hash      `json:"leafProof"`
	Batch      BatchInfo   `json:"batch"`
	BatchIndex int         `json:"batchIndex"` // Batch.Seq - Checkpoint.RangeFrom
	BatchProof []Hash      `json:"batchProof"`
	RangeSize  int         `json:"rangeSize"`
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// ErrNotCheckpointed is returned by EventProof.Verify when the proof is
// valid up to the batch but no checkpoint covers that batch yet.
var ErrNotCheckpointed = errors.New("the event's batch is not yet covered by a signed checkpoint")

// Verify checks the proof with the trusted keys, recomputing
// every hash from the canonical event. It returns nil when the event is
// proven part of the signed trail, an error wrapping ErrNotCheckpointed
// when only the checkpoint is missing, or an error saying which step
// failed.
func (p EventProof) Verify(keys KeyRing) error {
	var fields struct {
		ID *string `json:"id"`
	}
	if err := json.Unmarshal([]byte(p.Canonical), &fields); err != nil || fields.ID == nil {
		return fmt.Errorf("the canonical event is not a JSON object with an id: %v", err)
	}
	if *fields.ID != p.EventID {
		return fmt.Errorf("the canonical event has id %q, not %q", *fields.ID, p.EventID)
	}
	leaf := LeafHash([]byte(p.Canonical))
	if leaf != p.LeafHash {
		return fmt.Errorf("event %q: its stored content hashes to %s, but its batch sealed %s: the event was modified", p.EventID, short(leaf), short(p.LeafHash))
	}
	if !VerifyInclusion(leaf, p.LeafIndex, p.Batch.LeafCount, p.LeafProof, p.Batch.Root) {
		return fmt.Errorf("event %q: the inclusion proof does not lead to the Merkle root of batch %d", p.EventID, p.Batch.Seq)
	}
	if err := VerifyBatch(keys, p.Batch); err != nil {
		return fmt.Errorf("batch id %d: %w", p.Batch.ID, err)
	}
	if p.Batch.Seq == 0 {
		return fmt.Errorf("event %q in batch id %d, not yet linked into the chain: %w", p.EventID, p.Batch.ID, ErrNotCheckpointed)
	}
	bh := p.Batch.ComputeHash()
	if bh != p.Batch.Hash {
		return fmt.Errorf("batch %d: its record does not hash to its stored hash", p.Batch.Seq)
	}
	if p.Checkpoint == nil {
		return fmt.Errorf("event %q in batch %d: %w", p.EventID, p.Batch.Seq, ErrNotCheckpointed)
	}
	c := *p.Checkpoint
	if err := VerifyCheckpoint(keys, c); err != nil {
		return fmt.Errorf("checkpoint %d: %w", c.Seq, err)
	}
	if p.Batch.Seq < c.RangeFrom || p.Batch.Seq > c.BatchSeq || p.BatchIndex != int(p.Batch.Seq-c.RangeFrom) ||
		p.RangeSize != int(c.BatchSeq-c.RangeFrom+1) {
		return fmt.Errorf("batch %d is not in the range %d..%d of checkpoint %d", p.Batch.Seq, c.RangeFrom, c.BatchSeq, c.Seq)
	}
	if !VerifyInclusion(bh, p.BatchIndex, p.RangeSize, p.BatchProof, c.RangeRoot) {
		return fmt.Errorf("batch %d: the inclusion proof does not lead to the range root signed by checkpoint %d", p.Batch.Seq, c.Seq)
	}
	return nil
}
