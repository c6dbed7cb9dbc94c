package streams

import (
	"fmt"
	"sync"

	"github.com/auditq/auditq/domain/audit"
)

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
// encodedBatches batches and encodedEvents events per encoding.
type encodings struct {
	mu    sync.Mutex
	byKey map[string]*encodedSet
}

// encodedSet is the encoded events of the recent batches of one encoding,
// by batch id and leaf.
type encodedSet struct {
	batches map[int64]*encodedBatch
	order   []int64 // batch ids, oldest first
	events  int     // items in batches
}

// encodedBatch is the encoded events of one batch, indexed by leaf (a
// batch's leaves are 0 to its leaf count - 1); an Item without an ID is a
// leaf not encoded here.
type encodedBatch struct {
	items []Item
	n     int // items with an ID
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

func newEncodings() *encodings { return &encodings{byKey: map[string]*encodedSet{}} }

// encode returns evs encoded by s, taking the events another stream of
// the same encoding encoded already and remembering the rest. An error
// names the event that cannot be encoded.
func (c *encodings) encode(s *stream, evs []audit.SealedEvent) ([]Item, error) {
	items := make([]Item, len(evs))
	var missing []int // indexes into evs
	c.mu.Lock()
	set := c.byKey[s.encKey]
	if set == nil {
		set = &encodedSet{batches: map[int64]*encodedBatch{}}
		c.byKey[s.encKey] = set
	}
	for i, e := range evs {
		if it, ok := set.batches[e.Seal.BatchID].at(e.Seal.Leaf); ok && it.ID == e.ID {
			items[i] = it
		} else {
			missing = append(missing, i)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return items, nil
	}
	for _, i := range missing {
		e := evs[i]
		b, err := s.encode(e)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		items[i] = Item{ID: e.ID, Time: e.OccurredAt, Body: b}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range missing {
		seal := evs[i].Seal
		b, ok := set.batches[seal.BatchID]
		if !ok {
			b = &encodedBatch{}
			set.batches[seal.BatchID] = b
			set.order = append(set.order, seal.BatchID)
		}
		if b.put(seal.Leaf, items[i]) {
			set.events++
		}
	}
	for len(set.order) > encodedBatches || (len(set.order) > 1 && set.events > encodedEvents) {
		set.events -= set.batches[set.order[0]].n
		delete(set.batches, set.order[0])
		set.order = set.order[1:]
	}
	return items, nil
}
