package streams

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"weak"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/streams/format"
)

// Streams of one encoding encode each event once and deliver the same
// bytes; a stream of another encoding encodes its own; the shared set
// keeps at most encodedBatches batches.
func TestEncodingsShareEachEventOnce(t *testing.T) {
	calls := map[string]int{}
	counting := func(tag string) format.Encoder { return countingEncoder(calls, tag) }
	a := &stream{encode: counting("a"), encKey: "native"}
	b := &stream{encode: counting("b"), encKey: "native"}
	c := &stream{encode: counting("c"), encKey: "ocsf"}
	batch := batchOf
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

// A batch that every stream of its encoding took leaves the shared set
// at once; until then it stays, and the streams that have not taken it
// yet take the same bytes.
func TestEncodingsDropWhatEveryReaderTook(t *testing.T) {
	calls := map[string]int{}
	counting := func(tag string) format.Encoder { return countingEncoder(calls, tag) }
	a := &stream{encode: counting("a"), encKey: "native"}
	b := &stream{encode: counting("b"), encKey: "native"}
	c := &stream{encode: counting("c"), encKey: "native"}
	batch := batchOf
	ctx := context.Background()
	enc := newEncodings(nil)
	enc.readers["native"] = 3
	one, two := batch(1, 3), batch(2, 2)
	if _, err := enc.encode(ctx, a, one); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.encode(ctx, b, append(append([]*audit.SealedEvent(nil), one...), two...)); err != nil {
		t.Fatal(err)
	}
	set := enc.byKey["native"]
	if len(set.batches) != 2 || set.events != 5 {
		t.Fatalf("after two of three readers the set keeps %d batches, %d events, want 2, 5", len(set.batches), set.events)
	}
	got, err := enc.encode(ctx, c, one)
	if err != nil {
		t.Fatal(err)
	}
	if calls["a"] != 3 || calls["b"] != 2 || calls["c"] != 0 || string(got[2].Body) != `{"a":"e-1-2"}` {
		t.Fatalf("encoder calls %v, c's last item %s; want a 3, b 2 (batch 2), c 0 taking a's bytes", calls, got[2].Body)
	}
	if len(set.batches) != 1 || set.batches[2] == nil || set.events != 2 || len(set.order) != 1 {
		t.Fatalf("after the third reader of batch 1 the set keeps %d batches (%d events, %d in order), want batch 2 only",
			len(set.batches), set.events, len(set.order))
	}
	for _, s := range []*stream{a, c} {
		if _, err := enc.encode(ctx, s, two); err != nil {
			t.Fatal(err)
		}
	}
	if len(set.batches) != 0 || set.events != 0 || len(set.order) != 0 {
		t.Fatalf("after every reader the set keeps %d batches, %d events, %d in order", len(set.batches), set.events, len(set.order))
	}
}

// A batch every stream of its encoding took is garbage at once, even
// while an older batch that a stream has not taken yet keeps its place
// in the set's order.
func TestEncodingsDroppedBatchIsGarbage(t *testing.T) {
	calls := map[string]int{}
	a := &stream{encode: countingEncoder(calls, "a"), encKey: "native"}
	b := &stream{encode: countingEncoder(calls, "b"), encKey: "native"}
	ctx := context.Background()
	enc := newEncodings(nil)
	enc.readers["native"] = 2
	one, two := batchOf(1, 3), batchOf(2, 2)
	if _, err := enc.encode(ctx, a, append(append([]*audit.SealedEvent(nil), one...), two...)); err != nil {
		t.Fatal(err)
	}
	set := enc.byKey["native"]
	second := weak.Make(set.batches[2])
	if _, err := enc.encode(ctx, b, two); err != nil {
		t.Fatal(err)
	}
	if len(set.batches) != 1 || set.batches[1] == nil || len(set.order) != 2 {
		t.Fatalf("the set keeps %d batches (%d in order), want batch 1 (and batch 2's place behind it)", len(set.batches), len(set.order))
	}
	runtime.GC()
	if second.Value() != nil {
		t.Fatal("batch 2 left the set but its encoded events are still reachable")
	}
	runtime.KeepAlive(enc)
}

// countingEncoder encodes an event as {"tag":"id"} and counts its calls
// in calls[tag].
func countingEncoder(calls map[string]int, tag string) format.Encoder {
	return func(dst []byte, e *audit.SealedEvent, _ *bytes.Buffer) ([]byte, error) {
		calls[tag]++
		return fmt.Appendf(dst, `{"%s":%q}`, tag, e.ID), nil
	}
}

// batchOf returns the events of batch id, chained at position id, with
// leaves leaves.
func batchOf(id int64, leaves int) []*audit.SealedEvent {
	out := make([]*audit.SealedEvent, leaves)
	for i := range out {
		out[i] = &audit.SealedEvent{Event: audit.Event{ID: fmt.Sprintf("e-%d-%d", id, i)}, Seal: audit.Seal{BatchID: id, BatchSeq: id, Leaf: i}}
	}
	return out
}
