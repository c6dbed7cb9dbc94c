package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// Sealer makes every write of a Repository tamper-evident. Inside the
// write's transaction it stores the rows with their batch id and leaf
// index and the batch record: the leaves' hashes, their Merkle root and
// the writer's signature. After the commit, the chainer links committed
// batches into the one hash chain (auditq_chain_batches, under the
// chain-head row lock), many at a time and off the write path, so writers
// never wait on each other. The chain order is the one order of all
// writers of all instances. A Sealer also remembers the newest chain head
// it saw and checks, each time it chains, that the chain still holds it,
// so a checkpoint can tell when the chain's tail was cut (see LastSealed).
type Sealer struct {
	db     *bun.DB
	signer *evidence.Signer
	now    func() time.Time
	nudge  chan struct{}

	// streams, when set, gets the rows of every batch this Sealer commits
	// (see TapCommits).
	streams *StreamStore

	mu         sync.Mutex
	last       evidence.Head
	broken     string        // first contradiction found, sticky
	brokenHead evidence.Head // the head it contradicted
}

// NewSealer returns a Sealer over db signing each batch with signer.
func NewSealer(db *bun.DB, signer *evidence.Signer) *Sealer {
	return &Sealer{db: db, signer: signer, now: time.Now, nudge: make(chan struct{}, 1)}
}

// TapCommits makes the Sealer hand the rows of every batch it commits to
// streams (StreamStore's cache), so that the log streams of this instance
// read from PostgreSQL only the positions of those batches. Call it before
// the first write.
func (s *Sealer) TapCommits(streams *StreamStore) { s.streams = streams }

// LastSealed returns the newest chain head this process linked or saw, or,
// once the chain contradicted it, that head; false when it has seen none.
// The string says what contradicted it ("" when nothing did).
func (s *Sealer) LastSealed() (evidence.Head, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != "" {
		return s.brokenHead, s.broken, true
	}
	return s.last, "", s.last.Seq > 0
}

// chainBatches is how many batches one chaining statement links at most.
const chainBatches = 5000

// Chain links every committed, unchained batch into the chain and returns
// the new head. Before that it checks that the chain still holds the
// newest head this process saw; a contradiction is remembered for
// LastSealed.
func (s *Sealer) Chain(ctx context.Context) (evidence.Head, error) {
	s.mu.Lock()
	last, broken := s.last, s.broken
	s.mu.Unlock()
	if last.Seq > 0 && broken == "" {
		var h []byte
		err := s.db.DB.QueryRowContext(ctx, `SELECT hash FROM audit_batches WHERE seq = $1`, last.Seq).Scan(&h)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			s.contradicted(last, fmt.Sprintf("batch %d, which this process saw in the chain, is gone", last.Seq))
		case err != nil:
			return evidence.Head{}, fmt.Errorf("chain batches: %w", err)
		case string(h) != string(last.Hash[:]):
			s.contradicted(last, fmt.Sprintf("batch %d no longer has the hash this process saw", last.Seq))
		}
	}
	for {
		var head evidence.Head
		var hash []byte
		var linked int
		if err := s.db.DB.QueryRowContext(ctx, `SELECT head_seq, head_hash, linked FROM auditq_chain_batches($1)`, chainBatches).
			Scan(&head.Seq, &hash, &linked); err != nil {
			return evidence.Head{}, fmt.Errorf("chain batches: %w", err)
		}
		copy(head.Hash[:], hash)
		s.mu.Lock()
		if head.Seq > s.last.Seq {
			s.last = head
		}
		s.mu.Unlock()
		if linked < chainBatches {
			return head, nil
		}
	}
}

func (s *Sealer) contradicted(h evidence.Head, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == "" {
		s.broken, s.brokenHead = why, h
	}
}

// chainGap is the least time between two chainings. Each chaining is a
// transaction with its own WAL flush; under load writes commit hundreds of
// times a second, and one chaining per commit would add as many flushes.
// At most one per chainGap links the same batches in fewer, larger steps,
// each batch still within about chainGap of its commit.
const chainGap = 100 * time.Millisecond

// StartChaining links batches soon after each write commits (many writes
// share one chaining, at most one per chainGap) and every interval (batches
// of instances that stopped), until the returned stop function is called,
// which chains a last time. Failures are logged and retried at the next
// turn.
func (s *Sealer) StartChaining(interval time.Duration, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	quit := make(chan struct{})
	chain := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.Chain(ctx); err != nil {
			log.Warn("chaining batches failed; retried at the next write", "err", err)
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.nudge:
			case <-t.C:
			case <-quit:
				chain()
				return
			}
			chain()
			select {
			case <-time.After(chainGap):
			case <-quit:
				chain()
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}

// sealJob is the sealing of one write: leaf hashes computed concurrently
// with the COPY, and the batch id its rows carry.
type sealJob struct {
	sealer   *Sealer
	events   []audit.Event
	leaves   []evidence.Hash
	err      error
	done     chan struct{}
	id       int64
	inserted []int // set by prepare
}

// begin hashes events: in the background for large writes, so that the
// hashing overlaps the COPY.
func (s *Sealer) begin(events []audit.Event) *sealJob {
	j := &sealJob{sealer: s, events: events, leaves: make([]evidence.Hash, len(events)), done: make(chan struct{})}
	hash := func() {
		defer close(j.done)
		var h evidence.EventHasher
		for i, e := range events {
			leaf, _, err := h.Leaf(e)
			if err != nil {
				j.err = fmt.Errorf("event %d (%s): %w: cannot seal: %v", i, e.ID, audit.ErrPermanent, err)
				return
			}
			j.leaves[i] = leaf
		}
	}
	if len(events) < 256 {
		hash() // microseconds: not worth a goroutine's scheduling delay
	} else {
		go hash()
	}
	return j
}

// allocate draws the batch id the rows will carry without a round trip:
// the time in microseconds and 10 random bits, so ids grow with time (the
// primary key is appended to, not written all over). Should two batches
// ever draw the same id, the insert's unique violation sends the write
// through the staging path, which draws again.
func (j *sealJob) allocate(context.Context, pgx.Tx) error {
	j.id = j.sealer.now().UnixMicro()<<10 | int64(rand.IntN(1<<10))
	return nil
}

// committed tells the chainer a batch waits.
func (s *Sealer) committed() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// batchSQL inserts the batch record. It is sent with COMMIT in one round
// trip, its leaves as binary bytea: as hex literals in simple-protocol SQL
// they would cost PostgreSQL's parser far more CPU time.
const batchSQL = `INSERT INTO audit_batches (id, sealed_at, leaf_count, leaves, root, signature)
VALUES ($1, $2, $3, $4, $5, $6)`

// prepare records which events (indexes, in order) the write stored: the
// batch to seal when the transaction commits (see sealedTx).
func (j *sealJob) prepare(inserted []int) {
	j.inserted = inserted
}

// sealedTx runs fn in a transaction and commits it, as pgx.BeginFunc
// does. When fn returns a seal job, fn must have called its prepare; the
// batch record is then inserted and the transaction committed in one
// round trip.
func sealedTx(ctx context.Context, c *pgx.Conn, fn func(pgx.Tx) (*sealJob, error)) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	seal, err := fn(tx)
	if err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if seal == nil {
		return tx.Commit(ctx)
	}
	if err := seal.commit(ctx, c); err != nil {
		_ = tx.Rollback(ctx) // a no-op when the failed COMMIT already ended it
		return err
	}
	return nil
}

// commit inserts the prepared batch and commits, in one round trip; with
// nothing stored it only commits.
func (j *sealJob) commit(ctx context.Context, c *pgx.Conn) error {
	s := j.sealer
	<-j.done
	if j.err != nil {
		return j.err
	}
	if len(j.inserted) == 0 {
		_, err := c.Exec(ctx, "COMMIT")
		return err
	}
	leaves := j.leaves
	if len(j.inserted) < len(leaves) {
		leaves = make([]evidence.Hash, len(j.leaves))
		for _, i := range j.inserted {
			leaves[i] = j.leaves[i]
		}
	}
	flat := make([]byte, 0, 32*len(leaves))
	for _, l := range leaves {
		flat = append(flat, l[:]...)
	}
	root := evidence.MerkleRoot(leaves)
	at := audit.Normalize(s.now())
	body := evidence.BatchBody(j.id, at, len(leaves), root)
	b := &pgx.Batch{}
	b.Queue(batchSQL, j.id, at, len(leaves), flat, root[:], s.signer.SignBatch(body))
	b.Queue("COMMIT")
	res := c.SendBatch(ctx, b)
	// The rows for the streams' cache are made while PostgreSQL commits,
	// and enter it only once the commit is confirmed.
	var rows []audit.SealedEvent
	tap := s.streams != nil
	if tap {
		rows, tap = storedRows(j.id, j.events, j.inserted)
	}
	_, err := res.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = res.Exec()
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seal batch %d: %w", j.id, err)
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("seal batch %d: the commit did not happen (%s)", j.id, tag)
	}
	if tap {
		s.streams.committed(j.id, rows)
	}
	s.committed()
	return nil
}

// DeletionRecorder records, in the transaction that deletes them, which
// sealed rows retention deleted: a signed record appended to the deletion
// chain, so that verification accounts for them and for nothing else.
type DeletionRecorder struct {
	signer *evidence.Signer
	now    func() time.Time
}

// NewDeletionRecorder returns a DeletionRecorder signing with signer.
func NewDeletionRecorder(signer *evidence.Signer) *DeletionRecorder {
	return &DeletionRecorder{signer: signer, now: time.Now}
}

// cleanupCriteria is the signed description of a cleanup: what it kept.
type cleanupCriteria struct {
	ExcludeActions []string `json:"excludeActions"`
	HoldUsers      []string `json:"holdUsers"`
	HoldResources  []string `json:"holdResources"`
	// TenantCutoffs are the cutoffs of tenants with a retention of their
	// own, by tenant (docs/tenants.md); absent without.
	TenantCutoffs map[string]string `json:"tenantCutoffs,omitempty"`
	// TenantHoldUsers and TenantHoldResources ("type:id") are the legal
	// holds of one tenant, by tenant; absent without.
	TenantHoldUsers     map[string][]string `json:"tenantHoldUsers,omitempty"`
	TenantHoldResources map[string][]string `json:"tenantHoldResources,omitempty"`
}

// Record appends to the deletion chain, within tx, a signed record of the
// deleted rows' seal positions (batch ids and leaf indexes, pairwise; rows
// without a seal are left out). It does nothing when no sealed row was
// deleted. It takes the deletion chain's head row lock until tx ends.
func (d *DeletionRecorder) Record(ctx context.Context, tx *sql.Tx, c audit.Cleanup, batchIDs []int64, leafIdx []int32) error {
	if d == nil || len(batchIDs) == 0 {
		return nil
	}
	if len(batchIDs) != len(leafIdx) {
		return fmt.Errorf("record deletions: %d batch ids but %d leaf indexes", len(batchIDs), len(leafIdx))
	}
	leaves := make([]evidence.DeletedLeaf, len(batchIDs))
	for i := range batchIDs {
		leaves[i] = evidence.DeletedLeaf{Batch: batchIDs[i], Leaf: int(leafIdx[i])}
	}
	evidence.SortLeaves(leaves)
	holds := make([]string, len(c.HoldResources))
	for i, r := range c.HoldResources {
		holds[i] = r.String()
	}
	criteria := cleanupCriteria{
		ExcludeActions: orEmpty(c.ExcludeActions), HoldUsers: orEmpty(c.HoldUsers), HoldResources: holds,
	}
	for _, t := range c.TenantCutoffs {
		if criteria.TenantCutoffs == nil {
			criteria.TenantCutoffs = map[string]string{}
		}
		criteria.TenantCutoffs[t.Tenant] = evidence.FormatTime(t.Cutoff)
	}
	for _, h := range c.TenantHoldUsers {
		if criteria.TenantHoldUsers == nil {
			criteria.TenantHoldUsers = map[string][]string{}
		}
		criteria.TenantHoldUsers[h.Tenant] = append(criteria.TenantHoldUsers[h.Tenant], h.UserID)
	}
	for _, h := range c.TenantHoldResources {
		if criteria.TenantHoldResources == nil {
			criteria.TenantHoldResources = map[string][]string{}
		}
		criteria.TenantHoldResources[h.Tenant] = append(criteria.TenantHoldResources[h.Tenant], h.Resource.String())
	}
	crit, err := json.Marshal(criteria)
	if err != nil {
		return fmt.Errorf("record deletions: %w", err)
	}
	canon, err := audit.AppendCanonicalJSON(nil, crit)
	if err != nil {
		return fmt.Errorf("record deletions: %w", err)
	}
	var seq int64
	var prev []byte
	if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_chain_heads WHERE chain = 'deletions' FOR UPDATE`).Scan(&seq, &prev); err != nil {
		return fmt.Errorf("record deletions: lock the deletion chain: %w", err)
	}
	rec := evidence.Deletion{Seq: seq + 1, RecordedAt: audit.Normalize(d.now()), Cutoff: audit.Normalize(c.Cutoff),
		Criteria: string(canon), Leaves: leaves}
	copy(rec.Prev[:], prev)
	d.signer.SignDeletion(&rec)
	ids := make([]int64, len(leaves))
	idx := make([]int32, len(leaves))
	for i, l := range leaves {
		ids[i], idx[i] = l.Batch, int32(l.Leaf)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_deletions
		(seq, recorded_at, cutoff, criteria, batch_ids, leaf_idx, key_id, prev_hash, hash, signature)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		rec.Seq, rec.RecordedAt, rec.Cutoff, rec.Criteria, ids, idx, rec.KeyID, rec.Prev[:], rec.Hash[:], rec.Signature); err != nil {
		return fmt.Errorf("record deletions: insert record %d: %w", rec.Seq, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_chain_heads SET seq = $1, prev_hash = hash, hash = $2 WHERE chain = 'deletions'`,
		rec.Seq, rec.Hash[:]); err != nil {
		return fmt.Errorf("record deletions: advance the deletion chain: %w", err)
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
