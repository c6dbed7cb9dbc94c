package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// Reasons a checkpoint is written.
const (
	CheckpointPeriodic = "periodic"
	CheckpointStart    = "start"
	CheckpointShutdown = "shutdown"
	CheckpointCleanup  = "cleanup"
	CheckpointRequest  = "request" // asked for (audit.checkpoint.write, "auditq checkpoint")
)

// CheckpointStore keeps checkpoints and reads the chain state they sign.
type CheckpointStore interface {
	// LockCheckpoints serialises checkpoint writers of all instances; the
	// returned function releases the lock.
	LockCheckpoints(ctx context.Context) (func(), error)
	LastCheckpoint(ctx context.Context) (*evidence.Checkpoint, error)
	Heads(ctx context.Context) (batches, deletions evidence.Head, err error)
	// BatchHashes returns the hashes of batches from..to, fewer when the
	// chain is shorter.
	BatchHashes(ctx context.Context, from, to int64) ([]evidence.Hash, error)
	InsertCheckpoint(ctx context.Context, c evidence.Checkpoint) error
	CheckpointsAfter(ctx context.Context, seq int64) ([]evidence.Checkpoint, error)
}

// CheckpointPublisher keeps checkpoints outside the database.
type CheckpointPublisher interface {
	// LastPublished returns the seq of the newest checkpoint published, 0
	// when none is.
	LastPublished(ctx context.Context) (int64, error)
	PublishCheckpoint(ctx context.Context, c evidence.Checkpoint) error
}

// SealWitness links committed batches into the chain and remembers the
// newest chain head this process saw.
type SealWitness interface {
	// Chain links every committed batch not yet in the chain.
	Chain(ctx context.Context) (evidence.Head, error)
	// LastSealed returns the newest head seen (or the one the chain
	// contradicted, with a description of how), false when none.
	LastSealed() (head evidence.Head, contradiction string, ok bool)
}

// CheckpointResult is a written checkpoint, with what the writer noticed.
type CheckpointResult struct {
	Checkpoint evidence.Checkpoint
	// Tampered, when not empty, says how the stored trail contradicts what
	// this process itself committed or the previous checkpoint signed. The
	// checkpoint then signs what the process knows, so verification fails.
	Tampered string
}

// WriteCheckpointHandler writes signed checkpoints: chained to the previous
// one, stored in the database and published outside it.
type WriteCheckpointHandler struct {
	store   CheckpointStore
	pub     CheckpointPublisher
	signer  *evidence.Signer
	witness SealWitness
	retired evidence.KeyRing
	now     func() time.Time
}

// WithRetiredKeys sets the keys the signing key replaced
// (AUDITQ_RETIRED_KEYS): a previous checkpoint signed by one of them is
// chained onto, as "auditq verify" trusts them too. It returns h.
func (h *WriteCheckpointHandler) WithRetiredKeys(keys evidence.KeyRing) *WriteCheckpointHandler {
	h.retired = keys
	return h
}

// NewWriteCheckpointHandler returns a WriteCheckpointHandler. witness may
// be nil.
func NewWriteCheckpointHandler(store CheckpointStore, pub CheckpointPublisher, signer *evidence.Signer, witness SealWitness) *WriteCheckpointHandler {
	return &WriteCheckpointHandler{store: store, pub: pub, signer: signer, witness: witness, now: time.Now}
}

// Handle writes the next checkpoint for reason. It holds the checkpoint
// lock throughout, so checkpoints of several instances never conflict, and
// publishes every stored checkpoint the stream lacks (a publish that failed
// before is made up for). It returns the checkpoint once stored; an error
// after that says it is stored but not (yet) published. It signs nothing,
// and returns a *ForeignKeyError, when the previous checkpoint is signed
// by a key neither the signer's nor retired (see WithRetiredKeys).
func (h *WriteCheckpointHandler) Handle(ctx context.Context, reason string) (CheckpointResult, error) {
	unlock, err := h.store.LockCheckpoints(ctx)
	if err != nil {
		return CheckpointResult{}, err
	}
	defer unlock()
	var res CheckpointResult
	if h.witness != nil {
		if _, err := h.witness.Chain(ctx); err != nil {
			return res, err
		}
	}
	prev, err := h.store.LastCheckpoint(ctx)
	if err != nil {
		return res, err
	}
	if err := h.checkPrevKey(prev); err != nil {
		return res, err
	}
	batches, deletions, err := h.store.Heads(ctx)
	if err != nil {
		return res, err
	}
	head := batches
	var problems []string
	if prev != nil {
		// The chain must still hold what the previous checkpoint signed.
		if prev.BatchSeq > batches.Seq {
			problems = append(problems, fmt.Sprintf("checkpoint %d signed %d batches but the chain now ends at %d", prev.Seq, prev.BatchSeq, batches.Seq))
		} else if prev.BatchSeq > 0 {
			hs, err := h.store.BatchHashes(ctx, prev.BatchSeq, prev.BatchSeq)
			if err != nil {
				return res, err
			}
			if len(hs) != 1 || hs[0] != prev.BatchHash {
				problems = append(problems, fmt.Sprintf("batch %d no longer has the hash checkpoint %d signed", prev.BatchSeq, prev.Seq))
			}
		}
	}
	if h.witness != nil {
		if own, why, ok := h.witness.LastSealed(); ok {
			// The chain must still hold what this process saw in it; if not,
			// sign what it saw, so that verification fails from now on.
			switch {
			case why != "":
				problems = append(problems, why)
				head = own
			case own.Seq > batches.Seq:
				problems = append(problems, fmt.Sprintf("this process saw batch %d in the chain but the chain ends at batch %d", own.Seq, batches.Seq))
				head = own
			default:
				hs, err := h.store.BatchHashes(ctx, own.Seq, own.Seq)
				if err != nil {
					return res, err
				}
				if len(hs) != 1 || hs[0] != own.Hash {
					problems = append(problems, fmt.Sprintf("batch %d no longer has the hash this process saw", own.Seq))
					head = own
				}
			}
		}
	}
	c := evidence.Checkpoint{
		Seq: 1, Time: audit.Normalize(h.now()), Reason: reason,
		BatchSeq: head.Seq, BatchHash: head.Hash, RangeFrom: 1,
		DeletionSeq: deletions.Seq, DeletionHash: deletions.Hash,
	}
	if prev != nil {
		c.Seq, c.Prev, c.RangeFrom = prev.Seq+1, prev.Hash(), prev.BatchSeq+1
		if c.BatchSeq < prev.BatchSeq {
			c.BatchSeq, c.BatchHash = prev.BatchSeq, prev.BatchHash // never sign a shorter chain
		}
	}
	hs, err := h.store.BatchHashes(ctx, c.RangeFrom, c.BatchSeq)
	if err != nil {
		return res, err
	}
	c.RangeRoot = evidence.MerkleRoot(hs)
	h.signer.SignCheckpoint(&c)
	if err := h.store.InsertCheckpoint(ctx, c); err != nil {
		return res, err
	}
	res.Checkpoint = c
	if len(problems) > 0 {
		res.Tampered = fmt.Sprint(problems)
	}
	return res, h.publishPending(ctx)
}

// checkPrevKey refuses to chain onto a checkpoint signed by a key that is
// neither the signer's nor a retired one: "auditq verify", which trusts
// the same keys, would reject the trail however many checkpoints follow.
func (h *WriteCheckpointHandler) checkPrevKey(prev *evidence.Checkpoint) error {
	if prev == nil || trusts(append(evidence.KeyRing{h.signer.PublicKey()}, h.retired...), prev.KeyID) {
		return nil
	}
	e := &ForeignKeyError{
		Record: fmt.Sprintf("newest checkpoint %d (%s)", prev.Seq, evidence.FormatTime(prev.Time)), KeyID: prev.KeyID,
		Current: h.signer.KeyID(), Refused: fmt.Sprintf("to sign checkpoint %d", prev.Seq+1),
	}
	for _, k := range h.retired {
		e.Retired = append(e.Retired, evidence.KeyID(k))
	}
	return e
}

// publishPending publishes, in order, the stored checkpoints the stream
// does not hold yet.
func (h *WriteCheckpointHandler) publishPending(ctx context.Context) error {
	if h.pub == nil {
		return nil
	}
	last, err := h.pub.LastPublished(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint stored, not yet published: %w", err)
	}
	pending, err := h.store.CheckpointsAfter(ctx, last)
	if err != nil {
		return fmt.Errorf("checkpoint stored, not yet published: %w", err)
	}
	for _, c := range pending {
		if err := h.pub.PublishCheckpoint(ctx, c); err != nil {
			return fmt.Errorf("checkpoint %d stored, not yet published (the next checkpoint retries): %w", c.Seq, err)
		}
	}
	return nil
}

// CheckpointingRetention is an audit.RetentionStore that writes a
// checkpoint after every cleanup that deleted rows, so that the signed
// deletion records are covered by a checkpoint at once.
type CheckpointingRetention struct {
	audit.RetentionStore
	checkpoints *WriteCheckpointHandler
}

// NewCheckpointingRetention wraps store; checkpoints nil returns store.
func NewCheckpointingRetention(store audit.RetentionStore, checkpoints *WriteCheckpointHandler) audit.RetentionStore {
	if checkpoints == nil {
		return store
	}
	return CheckpointingRetention{RetentionStore: store, checkpoints: checkpoints}
}

// DeleteExpired deletes as the wrapped store does, then writes a
// checkpoint (also after a partial failure that deleted rows). A failed
// checkpoint fails the cleanup, whose redelivery writes it again.
func (r CheckpointingRetention) DeleteExpired(ctx context.Context, c audit.Cleanup) (int64, error) {
	n, err := r.RetentionStore.DeleteExpired(ctx, c)
	if n == 0 && err != nil {
		return n, err
	}
	if _, cerr := r.checkpoints.Handle(context.WithoutCancel(ctx), CheckpointCleanup); cerr != nil {
		err = errors.Join(err, fmt.Errorf("checkpoint after cleanup: %w", cerr))
	}
	return n, err
}
