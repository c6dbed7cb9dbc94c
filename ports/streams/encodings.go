package streams

import (
	"context"
	"fmt"
	"sync"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// Revealer turns events in their stored form into what every read shows
// (postgres.Personal, docs/personal-data.md): personal fields decrypted,
// or marked erased once the subject's key is destroyed. KeyGeneration
// changes with every erasure, so that events encoded before one are not
// delivered after it.
type Revealer interface {
	Reveal(ctx context.Context, events []audit.Event) error
	KeyGeneration(ctx context.Context) (int64, error)
}

// encodedBatches is how many batches' encoded events encodings keeps per
// encoding: the streams of an instance read the same batches at about the
// same time, so a few suffice to encode each event once per encoding
// while they keep up; a stream far behind the others encodes its own.
const encodedBatches = 16

// encodedEvents bounds the events encodings keeps per encoding beyond the
// newest batch (a batch of a bulk job holds up to 1,000).
const encodedEvents = 8192

// encodings shares encoded events between the streams that deliver the
// same encoding (stream.encKey): the first stream to read a batch encodes
// its events, the others take the same bytes. Memory stays bounded by
// encodedBatches batches and encodedEvents events per encoding, and a
// batch that every stream of its encoding (readers) has taken leaves at
// once: under the soft memory limit, bytes kept live make the garbage
// collector run more often.
//
// Events are encoded as reads show them (revealed by reveal, when set),
// each with its leaf data when that differs. A shared event encoded under
// one key generation is used only under the same one: after an erasure
// the set starts afresh, and an event read before the erasure is never
// delivered from it.
type encodings struct {
	reveal Revealer
	mu     sync.Mutex
	byKey  map[string]*encodedSet
	// readers is how many streams that are not paused deliver each
	// encoding.
	readers map[string]int
	// encoding holds, per encoding, the lock of the stream that looks up
	// and encodes events, so that streams of one encoding reading the
	// same batches at the same moment encode them once: the second waits
	// and takes the first one's bytes.
	encoding map[string]*sync.Mutex
}

// encodedSet is the encoded events of the recent batches of one encoding,
// by batch id and leaf, encoded under key generation gen.
type encodedSet struct {
	batches map[int64]*encodedBatch
	order   []encodedRef // oldest first; an entry whose batch left batches is skipped
	events  int          // items in batches
	entries uint64       // batches put into batches so far, numbering them
	gen     int64
}

// encodedRef is a batch in an encodedSet's order of entry, by its id and
// entry number: no pointer to the encoded bytes, so that a batch that
// left the set is garbage while its entry waits in order.
type encodedRef struct {
	id    int64
	entry uint64
}

// drop removes the batch of ref from set if ref's batch is still there.
func (set *encodedSet) drop(ref encodedRef) {
	if b, ok := set.batches[ref.id]; ok && b.entry == ref.entry {
		set.events -= b.n
		delete(set.batches, ref.id)
	}
}

// used counts a take of the batches of evs by one stream and drops those
// that readers streams have taken (readers 0: none).
func (set *encodedSet) used(evs []*audit.SealedEvent, readers int) {
	for i, e := range evs {
		id := e.Seal.BatchID
		if i > 0 && evs[i-1].Seal.BatchID == id {
			continue // evs are in commit order: a batch's events are together
		}
		if b := set.batches[id]; b != nil {
			if b.uses++; readers > 0 && b.uses >= readers {
				set.drop(encodedRef{id, b.entry})
			}
		}
	}
	for len(set.order) > 0 {
		if b, ok := set.batches[set.order[0].id]; ok && b.entry == set.order[0].entry {
			break
		}
		set.order = set.order[1:]
	}
}

// newEncodings returns an empty set; reveal nil delivers events as
// stored.
func newEncodings(reveal Revealer) *encodings {
	return &encodings{reveal: reveal, byKey: map[string]*encodedSet{}, readers: map[string]int{}, encoding: map[string]*sync.Mutex{}}
}

// encodedBatch is the encoded events of one batch, indexed by leaf (a
// batch's leaves are 0 to its leaf count - 1); an Item without an ID is a
// leaf not encoded here. uses counts the streams' takes of it; entry
// numbers its entry into its set.
type encodedBatch struct {
	items []Item
	n     int // items with an ID
	uses  int
	entry uint64
}

// at returns the item of leaf, false when there is none.
func (b *encodedBatch) at(leaf int) (Item, bool) {
	if b == nil || leaf < 0 || leaf >= len(b.items) || b.items[leaf].ID == "" {
		return Item{}, false
	}
	return b.items[leaf], true
}

// put stores it as the item of leaf and reports whether the leaf was new.
func (b *encodedBatch) put(leaf int, it Item) bool {
	if leaf >= len(b.items) {
		b.items = append(b.items, make([]Item, leaf+1-len(b.items))...)
	}
	fresh := b.items[leaf].ID == ""
	if fresh {
		b.n++
	}
	b.items[leaf] = it
	return fresh
}

// encode returns evs encoded by s, taking the events another stream of
// the same encoding encoded already and remembering the rest. The bodies
// it encodes share one buffer, sized from what s encoded before (one
// allocation per read rather than several per event). An error names the
// event that cannot be encoded, or is the database's.
func (c *encodings) encode(ctx context.Context, s *stream, evs []*audit.SealedEvent) ([]Item, error) {
	c.mu.Lock()
	one := c.encoding[s.encKey]
	if one == nil {
		one = &sync.Mutex{}
		c.encoding[s.encKey] = one
	}
	c.mu.Unlock()
	one.Lock()
	defer one.Unlock()
	// Events without personal fields encode alike under every key
	// generation; the others need the current one.
	keyed := c.reveal != nil && hasPersonal(evs)
	var gen int64
	if keyed {
		var err error
		if gen, err = c.reveal.KeyGeneration(ctx); err != nil {
			return nil, err
		}
	}
	items := make([]Item, len(evs))
	var missing []int // indexes into evs
	c.mu.Lock()
	set := c.byKey[s.encKey]
	if set == nil || (keyed && set.gen < gen) {
		set = &encodedSet{batches: map[int64]*encodedBatch{}, gen: gen}
		c.byKey[s.encKey] = set
	}
	if !keyed {
		gen = set.gen
	}
	fresh := set.gen == gen // an older generation's items are neither used nor kept
	for i, e := range evs {
		if !fresh {
			missing = append(missing, i)
			continue
		}
		if it, ok := set.batches[e.Seal.BatchID].at(e.Seal.Leaf); ok && it.ID == audit.EventKey(e.Tenant, e.ID) {
			items[i] = it
		} else {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		set.used(evs, c.readers[s.encKey])
		c.mu.Unlock()
		return items, nil
	}
	c.mu.Unlock()
	shown, err := c.revealed(ctx, evs, missing)
	if err != nil {
		return nil, err
	}
	if err := s.encodeInto(items, missing, shown); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if set.gen != gen || c.byKey[s.encKey] != set {
		return items, nil // an erasure came between: keep nothing
	}
	for k, i := range missing {
		seal := evs[i].Seal
		b, ok := set.batches[seal.BatchID]
		if !ok {
			// Sized for the batch's last leaf read here (evs are in leaf
			// order within a batch).
			last := seal.Leaf
			for _, j := range missing[k+1:] {
				if evs[j].Seal.BatchID != seal.BatchID {
					break
				}
				last = evs[j].Seal.Leaf
			}
			set.entries++
			b = &encodedBatch{items: make([]Item, last+1), entry: set.entries}
			set.batches[seal.BatchID] = b
			set.order = append(set.order, encodedRef{seal.BatchID, b.entry})
		}
		if b.put(seal.Leaf, items[i]) {
			set.events++
		}
	}
	set.used(evs, c.readers[s.encKey])
	for len(set.batches) > encodedBatches || (len(set.batches) > 1 && set.events > encodedEvents) || len(set.order) > 2*encodedBatches {
		set.drop(set.order[0])
		set.order = set.order[1:]
	}
	return items, nil
}

// encodeInto encodes shown[j] as items[idx[j]], the bodies in one buffer
// of s's expected size for them.
func (s *stream) encodeInto(items []Item, idx []int, shown []*audit.SealedEvent) error {
	per := s.perEvent
	if per == 0 {
		per = 1024
	}
	buf := make([]byte, 0, len(shown)*per+per)
	ends := make([]int, len(shown))
	for j, e := range shown {
		var err error
		if buf, err = s.encode(buf, e, &s.scratch); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
		ends[j] = len(buf)
	}
	// The next buffer: this one's bytes per event and a tenth more.
	s.perEvent = len(buf)/len(shown) + len(buf)/len(shown)/10 + 1
	start := 0
	for j, i := range idx {
		e := shown[j]
		items[i] = Item{ID: audit.EventKey(e.Tenant, e.ID), Time: e.OccurredAt, Body: buf[start:ends[j]:ends[j]]}
		start = ends[j]
	}
	return nil
}

// hasPersonal reports whether an event of evs was stored pseudonymised or
// encrypted.
func hasPersonal(evs []*audit.SealedEvent) bool {
	for _, e := range evs {
		if e.Pseudonym != "" || e.Personal != nil {
			return true
		}
	}
	return false
}

// leafDataGuess is the bytes of leaf data revealed reserves per event: a
// typical event's stored form, sealed fields included.
const leafDataGuess = 512

// revealed returns the events evs[i] for i in idx as reads show them, in
// that order: evs' own events when none has personal fields (nothing to
// reveal: they are not changed), else copies, revealed in one call (one
// read of the subject keys), with the leaf data of their stored form
// when that differs.
func (c *encodings) revealed(ctx context.Context, evs []*audit.SealedEvent, idx []int) ([]*audit.SealedEvent, error) {
	out := evs
	if len(idx) != len(evs) {
		out = make([]*audit.SealedEvent, len(idx))
		for j, i := range idx {
			out[j] = evs[i]
		}
	}
	if c.reveal == nil || !hasPersonal(out) {
		return out, nil
	}
	copies := make([]audit.SealedEvent, len(out))
	shown := make([]audit.Event, len(out))
	// The leaf data of every event, one after the other in one buffer
	// (earlier ones stay where they were when it grows).
	var leaves []byte
	for j := range out {
		copies[j] = *out[j]
		e := &copies[j]
		if e.Pseudonym != "" || e.Personal != nil {
			if leaves == nil {
				leaves = make([]byte, 0, leafDataGuess*len(out))
			}
			start := len(leaves)
			var err error
			if leaves, err = evidence.AppendCanonicalEvent(leaves, e.Event); err != nil {
				return nil, fmt.Errorf("event %s: leaf data: %w", e.ID, err)
			}
			e.LeafData = leaves[start:len(leaves):len(leaves)]
		}
		shown[j] = e.Event
	}
	if err := c.reveal.Reveal(ctx, shown); err != nil {
		return nil, fmt.Errorf("reveal personal fields: %w", err)
	}
	revealed := make([]*audit.SealedEvent, len(out))
	for j := range copies {
		copies[j].Event = shown[j]
		revealed[j] = &copies[j]
	}
	return revealed, nil
}
