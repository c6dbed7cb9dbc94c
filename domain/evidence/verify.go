package evidence

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// SealedRow is a stored event with the seal position its row claims.
type SealedRow struct {
	Event  audit.Event
	Sealed bool  // false when the row carries no seal position
	Batch  int64 // batch id
	Leaf   int
	// Err, when set, says why the row could not be read as an event (a
	// stored value no event can have); the row then fails verification.
	Err error
}

// Head is the head of a chain as the database records it.
type Head struct {
	Seq  int64
	Hash Hash
}

// Failure is one verification failure. Failures are ordered by where they
// sit in the trail: batch position, then leaf.
type Failure struct {
	BatchSeq int64  // position in the batch chain; math.MaxInt64 when none
	Leaf     int    // leaf within the batch; -1 for the batch itself
	Subject  string // what failed: "event e1", "batch 17", "checkpoint 3", ...
	Reason   string
}

// String returns "subject: reason".
func (f Failure) String() string { return f.Subject + ": " + f.Reason }

// Report is the outcome of a verification.
type Report struct {
	Events        int64 // rows checked
	Batches       int64
	Leaves        int64 // events ever sealed (rows plus deleted leaves)
	Deletions     int64 // deletion records
	DeletedLeaves int64
	Checkpoints   int64 // checkpoints checked (database and external)
	External      int64 // of which from outside the database
	Uncovered     int64 // batches after the newest checkpoint (not yet signed)
	Pending       int64 // batches committed but not yet linked into the chain
	// Erased is how many rows hold personal fields whose subject key an
	// erasure destroyed: still verified, no longer readable.
	Erased int64
	// Whether the report rollups were checked against the rows, and how
	// many current hours and spans (days, months) were compared.
	RollupsChecked bool
	RollupHours    int64
	RollupSpans    int64
	Failures       []Failure // sorted, at most MaxFailures
	FailureCount   int64
}

// OK reports whether nothing failed.
func (r Report) OK() bool { return r.FailureCount == 0 }

// MaxFailures bounds the failures a Report lists (all are counted).
const MaxFailures = 1000

// Auditor verifies a whole trail. Feed it, in this order: every batch in
// chain order (AddBatch), every unchained batch (AddPendingBatch), then
// EndBatches; every deletion record in chain
// order (AddDeletion); every checkpoint of the database in chain order
// (AddCheckpoint); optionally checkpoints from outside the database
// (AddExternalCheckpoint); the chain heads (CheckHeads); every row, from
// any number of goroutines (CheckRow); then Finish.
type Auditor struct {
	keys KeyRing

	batches  []batchState // chained, by position
	all      []batchState // chained, then pending: what batch ids index
	pending  []batchState
	leaves   []Hash
	idIndex  []int32 // batch id - minID -> index into batches, -1 none
	minID    int64
	idMap    map[int64]int32
	seen     []atomic.Uint64 // per leaf: a row claimed it
	deleted  []uint64        // per leaf: a deletion record removed it
	prevHash Hash

	deletionHashes []Hash
	checkpoints    []Checkpoint
	lastCovered    int64

	rows atomic.Int64

	mu       sync.Mutex
	failures []Failure
	count    int64
	report   Report
}

type batchState struct {
	seq       int64 // position; math.MaxInt64-2 for a pending batch
	name      string
	id        int64
	hash      Hash
	leafOff   int
	count     int
	root      Hash
	sealedAt  time.Time
	signature []byte
}

// checkRoots checks, in parallel, every batch's Merkle root over its
// leaves and its writer's signature.
func (a *Auditor) checkRoots() {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(a.all) {
					return
				}
				b := a.all[i]
				leaves := a.leaves[b.leafOff : b.leafOff+b.count]
				if MerkleRoot(leaves) != b.root {
					a.fail(b.seq, -1, b.name, "its leaves do not hash to its Merkle root (leaves altered or reordered)")
				}
				info := BatchInfo{ID: b.id, SealedAt: b.sealedAt, LeafCount: b.count, Root: b.root, Signature: b.signature}
				if err := VerifyBatch(a.keys, info); err != nil {
					a.fail(b.seq, -1, b.name, "not written by auditq: %v (forged or altered batch)", err)
				}
			}
		})
	}
	wg.Wait()
}

// NewAuditor returns an Auditor trusting signatures by keys.
func NewAuditor(keys KeyRing) *Auditor {
	return &Auditor{keys: keys}
}

// fail records a failure of subject (a string or a fmt.Stringer).
func (a *Auditor) fail(seq int64, leaf int, subject any, format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count++
	f := Failure{BatchSeq: seq, Leaf: leaf, Subject: fmt.Sprint(subject), Reason: fmt.Sprintf(format, args...)}
	if len(a.failures) < 4*MaxFailures {
		a.failures = append(a.failures, f)
		return
	}
	// Keep the earliest: replace the latest if f comes before it.
	sortFailures(a.failures)
	if last := a.failures[len(a.failures)-1]; less(f, last) {
		a.failures[len(a.failures)-1] = f
	}
}

func less(x, y Failure) bool {
	if x.BatchSeq != y.BatchSeq {
		return x.BatchSeq < y.BatchSeq
	}
	return x.Leaf < y.Leaf
}

func sortFailures(fs []Failure) {
	slices.SortStableFunc(fs, func(x, y Failure) int {
		switch {
		case less(x, y):
			return -1
		case less(y, x):
			return 1
		}
		return 0
	})
}

// AddBatch checks one batch record: its place in the chain, its Merkle
// root over its leaves and its hash.
func (a *Auditor) AddBatch(b Batch) {
	want := int64(len(a.batches)) + 1
	subject := fmt.Sprintf("batch %d", b.Seq)
	if b.Seq != want {
		a.fail(want, -1, fmt.Sprintf("batch %d", want), "the chain continues with batch %d: batches missing or reordered", b.Seq)
	}
	if b.Prev != a.prevHash {
		a.fail(b.Seq, -1, subject, "its previous-batch hash %s does not match the hash of the batch before it (%s): the chain is broken (batches removed, inserted or reordered)", short(b.Prev), short(a.prevHash))
	}
	if b.LeafCount != len(b.Leaves) || b.LeafCount == 0 {
		a.fail(b.Seq, -1, subject, "records %d leaves but holds %d", b.LeafCount, len(b.Leaves))
	}
	if h := b.ComputeHash(); h != b.Hash {
		a.fail(b.Seq, -1, subject, "its record does not hash to its stored hash (record altered)")
	}
	a.prevHash = b.Hash
	a.batches = append(a.batches, batchState{seq: b.Seq, name: subject, id: b.ID, hash: b.Hash, leafOff: len(a.leaves), count: len(b.Leaves),
		root: b.Root, sealedAt: b.SealedAt, signature: b.Signature})
	a.leaves = append(a.leaves, b.Leaves...)
	a.report.Batches++
}

// AddPendingBatch checks a batch committed but not yet linked into the
// chain (the chainer links it moments after its commit): its Merkle root
// and its writer's signature. Call it after the last AddBatch.
func (a *Auditor) AddPendingBatch(b Batch) {
	pos := int64(math.MaxInt64 - 2)
	subject := fmt.Sprintf("unchained batch id %d", b.ID)
	if b.LeafCount != len(b.Leaves) || b.LeafCount == 0 {
		a.fail(pos, -1, subject, "records %d leaves but holds %d", b.LeafCount, len(b.Leaves))
	}
	a.pending = append(a.pending, batchState{seq: pos, name: subject, id: b.ID, leafOff: len(a.leaves), count: len(b.Leaves),
		root: b.Root, sealedAt: b.SealedAt, signature: b.Signature})
	a.leaves = append(a.leaves, b.Leaves...)
	a.report.Pending++
}

// EndBatches builds the index of batch ids; call it after the last batch.
func (a *Auditor) EndBatches() {
	n := len(a.leaves)
	a.seen = make([]atomic.Uint64, (n+63)/64)
	a.deleted = make([]uint64, (n+63)/64)
	a.report.Leaves = int64(n)
	a.all = append(a.batches[:len(a.batches):len(a.batches)], a.pending...)
	a.checkRoots()
	if len(a.all) == 0 {
		a.idMap = map[int64]int32{}
		return
	}
	lo, hi := a.all[0].id, a.all[0].id
	for _, b := range a.all {
		lo, hi = min(lo, b.id), max(hi, b.id)
	}
	if span := hi - lo + 1; span > 0 && span <= 4*int64(len(a.all))+1024 {
		a.minID = lo
		a.idIndex = make([]int32, span)
		for i := range a.idIndex {
			a.idIndex[i] = -1
		}
		for i, b := range a.all {
			if j := a.idIndex[b.id-lo]; j >= 0 {
				a.fail(b.seq, -1, b.name, "its id %d is also the id of %s", b.id, a.all[j].name)
			}
			a.idIndex[b.id-lo] = int32(i)
		}
		return
	}
	a.idMap = make(map[int64]int32, len(a.all))
	for i, b := range a.all {
		if j, dup := a.idMap[b.id]; dup {
			a.fail(b.seq, -1, b.name, "its id %d is also the id of %s", b.id, a.all[j].name)
		}
		a.idMap[b.id] = int32(i)
	}
}

func (a *Auditor) batchByID(id int64) (int, bool) {
	if a.idIndex != nil {
		if id < a.minID || id-a.minID >= int64(len(a.idIndex)) {
			return 0, false
		}
		i := a.idIndex[id-a.minID]
		return int(i), i >= 0
	}
	i, ok := a.idMap[id]
	return int(i), ok
}

// AddDeletion checks one deletion record: signature, chain, and that each
// leaf it removes exists, held an event and is removed only once.
func (a *Auditor) AddDeletion(d Deletion) {
	want := int64(len(a.deletionHashes)) + 1
	subject := fmt.Sprintf("deletion record %d", d.Seq)
	pos := int64(0)
	if len(d.Leaves) > 0 {
		if i, ok := a.batchByID(d.Leaves[0].Batch); ok {
			pos = a.all[i].seq
		}
	}
	if d.Seq != want {
		a.fail(pos, -1, subject, "expected deletion record %d here: records missing or reordered", want)
	}
	prev := ZeroHash
	if len(a.deletionHashes) > 0 {
		prev = a.deletionHashes[len(a.deletionHashes)-1]
	}
	if d.Prev != prev {
		a.fail(pos, -1, subject, "its previous-record hash does not match the record before it: the deletion chain is broken")
	}
	if err := VerifyDeletion(a.keys, d); err != nil {
		a.fail(pos, -1, subject, "not a valid signed retention record: %v", err)
	} else if d.ComputeHash() != d.Hash {
		a.fail(pos, -1, subject, "its stored hash does not match its content")
	}
	a.deletionHashes = append(a.deletionHashes, d.Hash)
	a.report.Deletions++
	for _, l := range d.Leaves {
		i, ok := a.batchByID(l.Batch)
		if !ok || l.Leaf < 0 || l.Leaf >= a.all[i].count {
			a.fail(pos, -1, subject, "removes leaf %d of batch id %d, which does not exist", l.Leaf, l.Batch)
			continue
		}
		b := a.all[i]
		k := b.leafOff + l.Leaf
		if a.leaves[k].IsZero() {
			a.fail(b.seq, l.Leaf, subject, "removes leaf %d of %s, which stored no event", l.Leaf, b.name)
			continue
		}
		if a.deleted[k/64]&(1<<(k%64)) != 0 {
			a.fail(b.seq, l.Leaf, subject, "removes leaf %d of %s a second time", l.Leaf, b.name)
			continue
		}
		a.deleted[k/64] |= 1 << (k % 64)
		a.report.DeletedLeaves++
	}
}

// AddCheckpoint checks one checkpoint from the database: signature, chain,
// and that the trail still matches what it signed.
func (a *Auditor) AddCheckpoint(c Checkpoint) {
	subject := fmt.Sprintf("checkpoint %d", c.Seq)
	want := int64(len(a.checkpoints)) + 1
	if c.Seq != want {
		a.fail(c.BatchSeq, -1, subject, "expected checkpoint %d here: checkpoints missing or reordered", want)
	}
	prev := ZeroHash
	var prevCP *Checkpoint
	if len(a.checkpoints) > 0 {
		prevCP = &a.checkpoints[len(a.checkpoints)-1]
		prev = prevCP.Hash()
	}
	if c.Prev != prev {
		a.fail(c.BatchSeq, -1, subject, "its previous-checkpoint hash does not match the checkpoint before it: the checkpoint chain is broken")
	}
	a.checkCoverage(subject, c, prevCP)
	a.checkpoints = append(a.checkpoints, c)
	a.report.Checkpoints++
}

// checkCoverage checks c's signature and that the stored trail matches
// what c signed.
func (a *Auditor) checkCoverage(subject string, c Checkpoint, prevCP *Checkpoint) {
	if err := VerifyCheckpoint(a.keys, c); err != nil {
		a.fail(c.BatchSeq, -1, subject, "%v", err)
		return
	}
	n := int64(len(a.batches))
	if c.BatchSeq > n {
		a.fail(c.BatchSeq, -1, subject, "signed a chain of %d batches (head %s), but the table's chain ends at batch %d: the newest batches were removed", c.BatchSeq, short(c.BatchHash), n)
		return
	}
	if c.BatchSeq > 0 && a.batches[c.BatchSeq-1].hash != c.BatchHash {
		a.fail(c.BatchSeq, -1, subject, "signed batch %d with hash %s, but the table's batch %d has hash %s: the trail was rewritten at or before batch %d", c.BatchSeq, short(c.BatchHash), c.BatchSeq, short(a.batches[c.BatchSeq-1].hash), c.BatchSeq)
	}
	if c.BatchSeq == 0 && !c.BatchHash.IsZero() {
		a.fail(0, -1, subject, "signed an empty chain with a non-zero head hash")
	}
	if prevCP != nil {
		if c.BatchSeq < prevCP.BatchSeq {
			a.fail(c.BatchSeq, -1, subject, "covers fewer batches (%d) than checkpoint %d before it (%d)", c.BatchSeq, prevCP.Seq, prevCP.BatchSeq)
		}
		if c.RangeFrom != prevCP.BatchSeq+1 {
			a.fail(c.BatchSeq, -1, subject, "its batch range starts at %d, expected %d", c.RangeFrom, prevCP.BatchSeq+1)
		}
	}
	if c.RangeFrom >= 1 && c.RangeFrom <= c.BatchSeq+1 && c.BatchSeq <= n {
		hs := make([]Hash, 0, c.BatchSeq-c.RangeFrom+1)
		for s := c.RangeFrom; s <= c.BatchSeq; s++ {
			hs = append(hs, a.batches[s-1].hash)
		}
		if MerkleRoot(hs) != c.RangeRoot {
			a.fail(c.BatchSeq, -1, subject, "its Merkle root over batches %d..%d does not match the table's batches", c.RangeFrom, c.BatchSeq)
		}
	} else {
		a.fail(c.BatchSeq, -1, subject, "invalid batch range %d..%d", c.RangeFrom, c.BatchSeq)
	}
	nd := int64(len(a.deletionHashes))
	switch {
	case c.DeletionSeq > nd:
		a.fail(c.BatchSeq, -1, subject, "signed %d deletion records, but the table holds %d: deletion records were removed", c.DeletionSeq, nd)
	case c.DeletionSeq > 0 && a.deletionHashes[c.DeletionSeq-1] != c.DeletionHash:
		a.fail(c.BatchSeq, -1, subject, "signed deletion record %d with hash %s, but the table's record differs: deletion records were rewritten", c.DeletionSeq, short(c.DeletionHash))
	}
	if c.BatchSeq > a.lastCovered {
		a.lastCovered = c.BatchSeq
	}
}

// AddExternalCheckpoint checks a checkpoint kept outside the database (the
// JetStream stream AUDIT_CHECKPOINTS): it must be validly signed, present
// unchanged in the database, and the trail must still match it. Call it
// after every AddCheckpoint.
func (a *Auditor) AddExternalCheckpoint(c Checkpoint) {
	subject := fmt.Sprintf("checkpoint %d (AUDIT_CHECKPOINTS)", c.Seq)
	a.report.Checkpoints++
	a.report.External++
	if err := VerifyCheckpoint(a.keys, c); err != nil {
		a.fail(c.BatchSeq, -1, subject, "%v", err)
		return
	}
	if c.Seq < 1 || c.Seq > int64(len(a.checkpoints)) {
		a.fail(c.BatchSeq, -1, subject, "missing from the database, which holds %d checkpoints: the checkpoint table was rewritten or truncated", len(a.checkpoints))
	} else if db := a.checkpoints[c.Seq-1]; !bytes.Equal(db.Text(), c.Text()) || !bytes.Equal(db.Signature, c.Signature) {
		a.fail(c.BatchSeq, -1, subject, "differs from the database's checkpoint %d: the checkpoint table was rewritten", c.Seq)
	}
	var prevCP *Checkpoint
	if c.Seq >= 2 && c.Seq-1 <= int64(len(a.checkpoints)) {
		p := a.checkpoints[c.Seq-2]
		prevCP = &p
	}
	a.checkCoverage(subject, c, prevCP)
}

// CheckHeads compares the chain heads the database records with the chains.
func (a *Auditor) CheckHeads(batches, deletions Head) {
	n := int64(len(a.batches))
	last := ZeroHash
	if n > 0 {
		last = a.batches[n-1].hash
	}
	if batches.Seq != n || batches.Hash != last {
		a.fail(min(batches.Seq, n)+1, -1, "batch chain head", "records batch %d (%s), but the chain ends at batch %d (%s): batches were removed or added behind the writer's back", batches.Seq, short(batches.Hash), n, short(last))
	}
	nd := int64(len(a.deletionHashes))
	lastD := ZeroHash
	if nd > 0 {
		lastD = a.deletionHashes[nd-1]
	}
	if deletions.Seq != nd || deletions.Hash != lastD {
		a.fail(math.MaxInt64-1, -1, "deletion chain head", "records deletion record %d, but the chain ends at record %d", deletions.Seq, nd)
	}
}

// CheckRow checks one stored row against the leaf it claims. It is safe
// for concurrent use; give each goroutine its own EventHasher.
func (a *Auditor) CheckRow(h *EventHasher, r SealedRow) {
	a.rows.Add(1)
	subject := lazySubject(r.Event.ID)
	if r.Err != nil {
		a.fail(math.MaxInt64, 0, subject, "unreadable row: %v", r.Err)
		return
	}
	if !r.Sealed {
		a.fail(math.MaxInt64, 0, subject, "not sealed in any batch (inserted behind auditq's back, or while tamper evidence was off)")
		return
	}
	i, ok := a.batchByID(r.Batch)
	if !ok {
		a.fail(math.MaxInt64, 0, subject, "claims batch id %d, which is not in the chain (forged row)", r.Batch)
		return
	}
	b := a.all[i]
	if r.Leaf < 0 || r.Leaf >= b.count {
		a.fail(b.seq, -1, subject, "claims leaf %d of %s, which has %d leaves (forged row)", r.Leaf, b.name, b.count)
		return
	}
	k := b.leafOff + r.Leaf
	leaf, _, err := h.Leaf(r.Event)
	if err != nil {
		a.fail(b.seq, r.Leaf, subject, "%s leaf %d: stored content is not canonical: %v (modified)", b.name, r.Leaf, err)
	} else if want := a.leaves[k]; leaf != want {
		if want.IsZero() {
			a.fail(b.seq, r.Leaf, subject, "claims %s leaf %d, where that batch stored no event (forged row)", b.name, r.Leaf)
		} else {
			a.fail(b.seq, r.Leaf, subject, "%s leaf %d: the row does not match its sealed hash %s (modified, or moved from another position)", b.name, r.Leaf, short(want))
		}
	}
	if old := a.seen[k/64].Or(1 << (k % 64)); old&(1<<(k%64)) != 0 {
		a.fail(b.seq, r.Leaf, subject, "%s leaf %d is claimed by another row too (forged or copied row)", b.name, r.Leaf)
	}
	if a.deleted[k/64]&(1<<(k%64)) != 0 {
		a.fail(b.seq, r.Leaf, subject, "%s leaf %d was removed by a retention record, yet the row is present (re-inserted)", b.name, r.Leaf)
	}
}

// AddRollupMismatch records a report rollup figure that disagrees with
// the rows. It sorts after every failure of the trail itself, which it
// does not affect.
func (a *Auditor) AddRollupMismatch(subject, reason string) {
	a.fail(math.MaxInt64, 1, subject, "%s", reason)
}

// RollupsChecked records that the report rollups were checked against the
// rows, and how many current hours and spans were compared.
func (a *Auditor) RollupsChecked(hours, spans int64) {
	a.report.RollupsChecked = true
	a.report.RollupHours, a.report.RollupSpans = hours, spans
}

// Finish checks that every sealed event is either stored or removed by a
// deletion record, and returns the report.
func (a *Auditor) Finish() Report {
	for _, b := range a.all {
		for j := range b.count {
			k := b.leafOff + j
			if a.leaves[k].IsZero() {
				continue
			}
			if a.seen[k/64].Load()&(1<<(k%64)) == 0 && a.deleted[k/64]&(1<<(k%64)) == 0 {
				a.fail(b.seq, j, fmt.Sprintf("%s leaf %d", b.name, j), "its event (hash %s) is missing: deleted without a retention record, or modified", short(a.leaves[k]))
			}
		}
	}
	r := a.report
	r.Events = a.rows.Load()
	r.Uncovered = int64(len(a.batches)) - a.lastCovered
	a.mu.Lock()
	defer a.mu.Unlock()
	sortFailures(a.failures)
	if len(a.failures) > MaxFailures {
		a.failures = a.failures[:MaxFailures]
	}
	r.Failures = slices.Clone(a.failures)
	r.FailureCount = a.count
	return r
}

func short(h Hash) string { return h.String()[:16] }

// lazySubject names an event; formatted only when a failure is recorded.
type lazySubject string

// String returns `event "<id>"`.
func (s lazySubject) String() string { return "event " + quote(string(s)) }

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Sprintf("%q", s)
}
