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
	batches map[int64]map[int]Item
	order   []int64 // batch ids, oldest first
	events  int     // items in batches
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
		set = &encodedSet{batches: map[int64]map[int]Item{}}
		c.byKey[s.encKey] = set
	}
	for i, e := range evs {
		if it, ok := set.batches[e.Seal.BatchID][e.Seal.Leaf]; ok && it.ID == audit.EventKey(e.Tenant, e.ID) {
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
		items[i] = Item{ID: audit.EventKey(e.Tenant, e.ID), Time: e.OccurredAt, Body: b}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range missing {
		seal := evs[i].Seal
		leaves, ok := set.batches[seal.BatchID]
		if !ok {
			leaves = make(map[int]Item)
			set.batches[seal.BatchID] = leaves
			set.order = append(set.order, seal.BatchID)
		}
		if _, ok := leaves[seal.Leaf]; !ok {
			set.events++
		}
		leaves[seal.Leaf] = items[i]
	}
	for len(set.order) > encodedBatches || (len(set.order) > 1 && set.events > encodedEvents) {
		set.events -= len(set.batches[set.order[0]])
		delete(set.batches, set.order[0])
		set.order = set.order[1:]
	}
	return items, nil
}
