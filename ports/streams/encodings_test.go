package streams

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/streams/format"
)

// Streams of one encoding encode each event once and deliver the same
// bytes; a stream of another encoding encodes its own; the shared set
// keeps at most encodedBatches batches.
func TestEncodingsShareEachEventOnce(t *testing.T) {
	calls := map[string]int{}
	counting := func(tag string) format.Encoder {
		return func(dst []byte, e *audit.SealedEvent, _ *bytes.Buffer) ([]byte, error) {
			calls[tag]++
			return fmt.Appendf(dst, `{"%s":%q}`, tag, e.ID), nil
		}
	}
	a := &stream{encode: counting("a"), encKey: "native"}
	b := &stream{encode: counting("b"), encKey: "native"}
	c := &stream{encode: counting("c"), encKey: "ocsf"}
	batch := func(id int64, leaves int) []*audit.SealedEvent {
		out := make([]*audit.SealedEvent, leaves)
		for i := range out {
			out[i] = &audit.SealedEvent{Event: audit.Event{ID: fmt.Sprintf("e-%d-%d", id, i)}, Seal: audit.Seal{BatchID: id, BatchSeq: id, Leaf: i}}
		}
		return out
	}
	enc := newEncodings(nil)
	evs := batch(1, 5)
	ia, err := enc.encode(context.Background(), a, evs)
	if err != nil {
		t.Fatal(err)
	}
	ib, _ := enc.encode(context.Background(), b, evs[2:]) // b is further along in the same batch
	ic, _ := enc.encode(context.Background(), c, evs)
	if calls["a"] != 5 || calls["b"] != 0 || calls["c"] != 5 {
		t.Fatalf("encoder calls %v, want a 5, b 0, c 5", calls)
	}
	for i, it := range ib {
		if string(it.Body) != string(ia[i+2].Body) || it.ID != evs[i+2].ID {
			t.Fatalf("b's item %d = %s %s, want a's %s", i, it.ID, it.Body, ia[i+2].Body)
		}
	}
	if string(ic[0].Body) != `{"c":"e-1-0"}` {
		t.Fatalf("c's item 0 = %s", ic[0].Body)
	}
	// An event with another id at a known seal is encoded anew, never
	// taken from the set.
	moved := *evs[0]
	moved.ID = "someone-else"
	other := []*audit.SealedEvent{&moved}
	if got, _ := enc.encode(context.Background(), b, other); string(got[0].Body) != `{"b":"someone-else"}` {
		t.Fatalf("an event with another id at a known seal got %s", got[0].Body)
	}
	for id := int64(2); id < 2+2*encodedBatches; id++ {
		if _, err := enc.encode(context.Background(), a, batch(id, 2)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(enc.byKey["native"].batches); n != encodedBatches {
		t.Fatalf("the native set keeps %d batches, want %d", n, encodedBatches)
	}
	// Large batches (bulk jobs): the set keeps at most encodedEvents
	// beyond the newest batch.
	big := int64(1000)
	for id := big; id < big+4; id++ {
		if _, err := enc.encode(context.Background(), c, batch(id, encodedEvents/2+1)); err != nil {
			t.Fatal(err)
		}
	}
	if set := enc.byKey["ocsf"]; len(set.batches) != 1 || set.events != encodedEvents/2+1 || set.batches[big+3] == nil {
		t.Fatalf("the ocsf set after four large batches keeps %d batches, %d events, want the newest only", len(set.batches), set.events)
	}
}
