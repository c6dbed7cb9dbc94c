package query

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// ErrTamperEvidenceOff is returned by the evidence queries when the
// service runs with AUDITQ_TAMPER_EVIDENCE off.
var ErrTamperEvidenceOff = errors.New("tamper evidence is off (AUDITQ_TAMPER_EVIDENCE)")

// TrailReader reads the stored trail for verification, all from one
// snapshot.
type TrailReader interface {
	Heads(ctx context.Context) (batches, deletions evidence.Head, err error)
	Batches(ctx context.Context, fn func(evidence.Batch) error) error
	// PendingBatches lists batches committed but not yet chained.
	PendingBatches(ctx context.Context, fn func(evidence.Batch) error) error
	Deletions(ctx context.Context, fn func(evidence.Deletion) error) error
	Checkpoints(ctx context.Context, fn func(evidence.Checkpoint) error) error
	// Rows streams every stored row in chunks; fn may keep a chunk.
	Rows(ctx context.Context, fn func([]evidence.SealedRow) error) error
	// CheckRollups compares what reports read from the rollups with the
	// rows, calls mismatch for each disagreement and returns how many
	// current hours and spans it compared.
	CheckRollups(ctx context.Context, mismatch func(subject, reason string)) (hours, spans int64, err error)
	// ErasedEvents counts the rows whose personal fields were erased
	// (their subject key destroyed, docs/personal-data.md).
	ErasedEvents(ctx context.Context) (int64, error)
}

// CheckpointSource lists checkpoints kept outside the database.
type CheckpointSource interface {
	Checkpoints(ctx context.Context, fn func(evidence.Checkpoint) error) error
}

// VerifyProgress is reported while the rows are checked.
type VerifyProgress struct {
	Phase   string // "records", "rows", "reports", "done"
	Rows    int64
	Elapsed time.Duration
}

// VerifyOptions configures one verification.
type VerifyOptions struct {
	// Keys verify the signatures of batches, deletion records and
	// checkpoints: the signing key and the keys it replaced. They must come
	// from a trusted place (the key file, the configuration or the
	// operator), never from the database.
	Keys evidence.KeyRing
	// External, if set, also checks the table against these checkpoints
	// (the JetStream stream AUDIT_CHECKPOINTS).
	External CheckpointSource
	// Reports also checks the report rollups against the rows.
	Reports bool
	// Workers hash rows in parallel; 0 means one per CPU.
	Workers int
	// Progress, if set, is called about every ProgressEvery while rows
	// are checked, and once at the end.
	Progress      func(VerifyProgress)
	ProgressEvery time.Duration
}

// VerifyTrailHandler verifies the whole trail: every row's hash, every
// batch's Merkle root, the batch chain, the deletion records, and the
// checkpoints' signatures and chain; optionally the report rollups. With
// a recorder it records each finished verification's result.
type VerifyTrailHandler struct {
	snapshot func(ctx context.Context, fn func(TrailReader) error) error
	recorder VerifyRecorder
	trigger  string
}

// VerifyRun is the result of one finished verification of the whole
// trail, as recorded for audit.admin.status.
type VerifyRun struct {
	StartedAt, FinishedAt time.Time
	OK                    bool
	Events                int64 // rows checked
	Batches               int64
	BatchSeq              int64 // the newest batch of the chain checked (its position)
	Checkpoints           int64
	CheckpointSeq         int64 // the newest checkpoint checked; 0 when none
	Uncovered             int64 // batches after the newest checkpoint
	FailureCount          int64
	FirstFailure          string // the first failure in trail order; "" when OK
	Trigger               string // who ran it: "auditq verify"
}

// VerifyRecorder keeps verification results.
type VerifyRecorder interface {
	RecordVerify(ctx context.Context, run VerifyRun) error
}

// WithRecorder returns h recording every finished verification's result
// through rec, with trigger naming who ran it.
func (h VerifyTrailHandler) WithRecorder(rec VerifyRecorder, trigger string) VerifyTrailHandler {
	h.recorder, h.trigger = rec, trigger
	return h
}

// NewVerifyTrailHandler returns a VerifyTrailHandler reading through
// snapshot, which runs fn with a reader over one consistent snapshot.
func NewVerifyTrailHandler(snapshot func(ctx context.Context, fn func(TrailReader) error) error) VerifyTrailHandler {
	return VerifyTrailHandler{snapshot: snapshot}
}

// Handle verifies the trail and returns the report; the error is for
// failures to read (the database or the stream), not for what the report
// finds.
func (h VerifyTrailHandler) Handle(ctx context.Context, opts VerifyOptions) (evidence.Report, error) {
	if len(opts.Keys) == 0 {
		return evidence.Report{}, errors.New("verify: a trusted Ed25519 public key is required")
	}
	for _, k := range opts.Keys {
		if len(k) != ed25519.PublicKeySize {
			return evidence.Report{}, fmt.Errorf("verify: a trusted key of %d bytes is not an Ed25519 public key", len(k))
		}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	every := opts.ProgressEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	start := time.Now()
	progress := func(phase string, rows int64) {
		if opts.Progress != nil {
			opts.Progress(VerifyProgress{Phase: phase, Rows: rows, Elapsed: time.Since(start)})
		}
	}
	a := evidence.NewAuditor(opts.Keys)
	var rep evidence.Report
	var newestCheckpoint, headSeq int64
	err := h.snapshot(ctx, func(r TrailReader) error {
		progress("records", 0)
		if err := r.Batches(ctx, func(b evidence.Batch) error { a.AddBatch(b); return nil }); err != nil {
			return err
		}
		if err := r.PendingBatches(ctx, func(b evidence.Batch) error { a.AddPendingBatch(b); return nil }); err != nil {
			return err
		}
		a.EndBatches()
		if err := r.Deletions(ctx, func(d evidence.Deletion) error { a.AddDeletion(d); return nil }); err != nil {
			return err
		}
		if err := r.Checkpoints(ctx, func(c evidence.Checkpoint) error {
			newestCheckpoint = max(newestCheckpoint, c.Seq)
			a.AddCheckpoint(c)
			return nil
		}); err != nil {
			return err
		}
		if opts.External != nil {
			if err := opts.External.Checkpoints(ctx, func(c evidence.Checkpoint) error { a.AddExternalCheckpoint(c); return nil }); err != nil {
				return fmt.Errorf("read external checkpoints: %w", err)
			}
		}
		bh, dh, err := r.Heads(ctx)
		if err != nil {
			return err
		}
		a.CheckHeads(bh, dh)
		headSeq = bh.Seq

		var rows atomic.Int64
		chunks := make(chan []evidence.SealedRow, workers*2)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				var hasher evidence.EventHasher
				for chunk := range chunks {
					for _, row := range chunk {
						a.CheckRow(&hasher, row)
					}
					rows.Add(int64(len(chunk)))
				}
			})
		}
		stop := make(chan struct{})
		var pwg sync.WaitGroup
		pwg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					progress("rows", rows.Load())
				case <-stop:
					return
				}
			}
		})
		err = r.Rows(ctx, func(chunk []evidence.SealedRow) error {
			select {
			case chunks <- chunk:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(chunks)
		wg.Wait()
		close(stop)
		pwg.Wait()
		if err != nil {
			return err
		}
		if opts.Reports {
			progress("reports", rows.Load())
			hours, spans, err := r.CheckRollups(ctx, a.AddRollupMismatch)
			if err != nil {
				return err
			}
			a.RollupsChecked(hours, spans)
		}
		erased, err := r.ErasedEvents(ctx)
		if err != nil {
			return err
		}
		rep = a.Finish()
		rep.Erased = erased
		progress("done", rows.Load())
		return nil
	})
	if err != nil || h.recorder == nil {
		return rep, err
	}
	run := VerifyRun{
		StartedAt: audit.Normalize(start), FinishedAt: audit.Normalize(time.Now()), OK: rep.OK(),
		Events: rep.Events, Batches: rep.Batches, BatchSeq: headSeq, Checkpoints: rep.Checkpoints, CheckpointSeq: newestCheckpoint,
		Uncovered: rep.Uncovered, FailureCount: rep.FailureCount, Trigger: h.trigger,
	}
	if len(rep.Failures) > 0 {
		run.FirstFailure = rep.Failures[0].String()
	}
	if err := h.recorder.RecordVerify(ctx, run); err != nil {
		return rep, fmt.Errorf("record the verification's result: %w", err)
	}
	return rep, nil
}

// ProofReader reads what an event's proof is made of.
type ProofReader interface {
	// SealedEvent returns the event of tenant with id and its seal
	// position, or audit.ErrNotFound.
	SealedEvent(ctx context.Context, tenant, id string) (ev audit.Event, batchID int64, leaf int, sealed bool, err error)
	BatchByID(ctx context.Context, id int64) (evidence.Batch, error)
	CheckpointCovering(ctx context.Context, batchSeq int64) (*evidence.Checkpoint, error)
	BatchHashes(ctx context.Context, from, to int64) ([]evidence.Hash, error)
	// LastCheckpoint returns the newest checkpoint, nil when none.
	LastCheckpoint(ctx context.Context) (*evidence.Checkpoint, error)
}

// EventProofRequest is an audit.event.proof request.
type EventProofRequest struct {
	ID string `json:"id"`
	// Tenant names the event's tenant as in GetEventRequest.
	Tenant *string `json:"tenant,omitempty"`
}

// EventProofResult is the answer of audit.event.proof: the proof and,
// while no checkpoint covers the event yet, when the next one is due.
type EventProofResult struct {
	evidence.EventProof
	// NextCheckpointDue is, while Checkpoint is nil, when the next
	// periodic checkpoint is due at the latest: the newest checkpoint's
	// time plus AUDITQ_CHECKPOINT_INTERVAL (instances write one every
	// interval). Nil when a checkpoint covers the event, or when the
	// interval or the newest checkpoint is unknown.
	NextCheckpointDue *time.Time `json:"nextCheckpointDue,omitempty"`
}

// EventProofHandler builds the proof that one event is part of the signed
// trail (see evidence.EventProof).
type EventProofHandler struct {
	store    ProofReader
	reads    ReadAuditor
	interval time.Duration
}

// WithCheckpointInterval sets the interval of the periodic checkpoints
// (AUDITQ_CHECKPOINT_INTERVAL), from which a proof not yet covered by a
// checkpoint says when the next one is due.
func (h EventProofHandler) WithCheckpointInterval(d time.Duration) EventProofHandler {
	h.interval = d
	return h
}

// NewEventProofHandler returns an EventProofHandler; a nil store means
// tamper evidence is off. The read is recorded through reads like any
// other read of the trail.
func NewEventProofHandler(store ProofReader, reads ReadAuditor) EventProofHandler {
	return EventProofHandler{store: store, reads: reads}
}

// Handle returns the proof of event req.ID of the tenant the caller reads
// (see audit.TenantScope.ResolveOne). The proof is built from what is
// stored, without judging it: the client verifies. It returns a
// *audit.ValidationError for a missing id or a malformed tenant, a
// *audit.ForbiddenError for a bound caller naming another tenant, an
// error wrapping audit.ErrNotFound for an unknown event or an unsealed
// row, and ErrTamperEvidenceOff when sealing is off.
func (h EventProofHandler) Handle(ctx context.Context, req EventProofRequest, who Requester) (EventProofResult, error) {
	if h.store == nil {
		return EventProofResult{}, ErrTamperEvidenceOff
	}
	if req.ID == "" {
		return EventProofResult{}, audit.Invalid("id", "is required: the event id")
	}
	var res EventProofResult
	tenant, err := who.Scope.ResolveOne("tenant", req.Tenant)
	if err == nil {
		res.EventProof, err = h.proof(ctx, tenant, req.ID)
	}
	if err == nil && res.Checkpoint == nil {
		res.NextCheckpointDue, err = h.nextCheckpoint(ctx)
	}
	rec := read{action: ActionEventProof, endpoint: ActionEventProof, request: req, who: who}
	if err == nil {
		rec.of = &tenant
	}
	if err := h.reads.record(ctx, rec, err); err != nil {
		return EventProofResult{}, err
	}
	return res, nil
}

// nextCheckpoint returns when the next periodic checkpoint is due at the
// latest, nil when that is unknown.
func (h EventProofHandler) nextCheckpoint(ctx context.Context) (*time.Time, error) {
	if h.interval <= 0 {
		return nil, nil
	}
	last, err := h.store.LastCheckpoint(ctx)
	if err != nil || last == nil {
		return nil, err
	}
	due := last.Time.Add(h.interval).UTC()
	return &due, nil
}

// ActionEventProof is the action of the event recording an
// audit.event.proof read.
const ActionEventProof = "audit.event.proof"

// proof builds the proof of event id of tenant, the one tenant the
// caller reads: another tenant's event of the same id is another event.
// The proof's sibling hashes and batch hashes are hashes only: they
// reveal no other event's content (docs/tenants.md).
func (h EventProofHandler) proof(ctx context.Context, tenant, id string) (evidence.EventProof, error) {
	ev, batchID, leaf, sealed, err := h.store.SealedEvent(ctx, tenant, id)
	if err != nil {
		return evidence.EventProof{}, err
	}
	if !sealed {
		return evidence.EventProof{}, fmt.Errorf("event %q is not sealed in any batch: %w", id, audit.ErrNotFound)
	}
	b, err := h.store.BatchByID(ctx, batchID)
	if err != nil {
		return evidence.EventProof{}, err
	}
	if leaf < 0 || leaf >= len(b.Leaves) {
		return evidence.EventProof{}, fmt.Errorf("event %q claims leaf %d of batch %d, which has %d: %w", id, leaf, b.Seq, len(b.Leaves), audit.ErrNotFound)
	}
	canon, err := evidence.AppendCanonicalEvent(nil, ev)
	if err != nil {
		canon = fmt.Appendf(nil, "not canonicalisable: %v", err)
	}
	p := evidence.EventProof{
		EventID: id, Canonical: string(canon), LeafHash: b.Leaves[leaf], LeafIndex: leaf,
		LeafProof: evidence.InclusionProof(b.Leaves, leaf), Batch: b.Info(),
	}
	if b.Seq == 0 {
		return p, nil // not yet chained: no checkpoint can cover it
	}
	cp, err := h.store.CheckpointCovering(ctx, b.Seq)
	if err != nil || cp == nil {
		return p, err
	}
	hs, err := h.store.BatchHashes(ctx, cp.RangeFrom, cp.BatchSeq)
	if err != nil {
		return p, err
	}
	idx := int(b.Seq - cp.RangeFrom)
	if idx < 0 || idx >= len(hs) {
		return p, fmt.Errorf("checkpoint %d does not cover batch %d as stored", cp.Seq, b.Seq)
	}
	p.Checkpoint, p.BatchIndex, p.RangeSize, p.BatchProof = cp, idx, len(hs), evidence.InclusionProof(hs, idx)
	return p, nil
}

// PublicKey is the answer of audit.pubkey: the key checkpoints and
// deletion records are signed with, and the keys it replaced, which signed
// the older ones.
type PublicKey struct {
	Algorithm string `json:"algorithm"` // "Ed25519"
	PublicKey []byte `json:"publicKey"` // 32 bytes, base64 in JSON
	KeyID     string `json:"keyId"`
	// Retired are the keys of earlier rotations (AUDITQ_RETIRED_KEYS).
	Retired []RetiredKey `json:"retired"`
}

// RetiredKey is a public key the signing key replaced.
type RetiredKey struct {
	PublicKey []byte `json:"publicKey"`
	KeyID     string `json:"keyId"`
}

// Keys returns the current key followed by the retired ones.
func (k PublicKey) Keys() evidence.KeyRing {
	keys := evidence.KeyRing{k.PublicKey}
	for _, r := range k.Retired {
		keys = append(keys, r.PublicKey)
	}
	return keys
}

// PublicKeyHandler answers audit.pubkey.
type PublicKeyHandler struct {
	keys evidence.KeyRing
}

// NewPublicKeyHandler returns a PublicKeyHandler for the signing key
// followed by the keys it replaced (empty: tamper evidence off).
func NewPublicKeyHandler(keys evidence.KeyRing) PublicKeyHandler { return PublicKeyHandler{keys: keys} }

// PublicKeyRequest is an audit.pubkey request (no fields).
type PublicKeyRequest struct{}

// Handle returns the public keys, or ErrTamperEvidenceOff.
func (h PublicKeyHandler) Handle(context.Context, PublicKeyRequest, Requester) (PublicKey, error) {
	if len(h.keys) == 0 {
		return PublicKey{}, ErrTamperEvidenceOff
	}
	pk := PublicKey{Algorithm: "Ed25519", PublicKey: h.keys[0], KeyID: evidence.KeyID(h.keys[0]), Retired: []RetiredKey{}}
	for _, k := range h.keys[1:] {
		pk.Retired = append(pk.Retired, RetiredKey{PublicKey: k, KeyID: evidence.KeyID(k)})
	}
	return pk, nil
}
