package audit

import (
	"context"
	"errors"
	"time"
)

// Seal is where an event sits in the tamper evidence: the chain position
// (BatchSeq) and id of the batch it was sealed in, and its leaf index in
// that batch's Merkle tree (docs/tamper-evidence.md). Chain positions are
// the one commit order of all writers: a batch gets its position only
// after it committed, under the chain-head lock, so a later position is
// never visible before an earlier one.
type Seal struct {
	BatchSeq int64
	BatchID  int64
	Leaf     int
}

// SealedEvent is a stored event with its seal. LeafData is the event's
// leaf data (the canonical encoding of its stored form,
// docs/tamper-evidence.md) when it is delivered in another form than
// stored, its personal fields revealed (docs/personal-data.md); nil
// otherwise.
type SealedEvent struct {
	Event
	Seal     Seal
	LeafData []byte
}

// StreamCursor is a log stream's position in the commit order: the next
// batch to deliver (chain position, from 1) and the last leaf of it
// already delivered (-1: none).
type StreamCursor struct {
	NextSeq   int64
	AfterLeaf int
}

// StreamStart is the cursor of a stream that delivered nothing yet.
var StreamStart = StreamCursor{NextSeq: 1, AfterLeaf: -1}

// StreamRead is one read of the commit order: the events after a cursor,
// in order, the cursor after them, and how many sealed events of the
// batches it passed are gone (deleted by retention before delivery).
// More is true when committed events follow Next already (the read
// stopped at its limit, not at the end of the trail). The events are
// shared with the other readers of the same batches: read-only.
type StreamRead struct {
	Events  []*SealedEvent
	Next    StreamCursor
	Skipped int
	More    bool
}

// StreamState is what the store keeps of one log stream.
type StreamState struct {
	Name        string
	Cursor      StreamCursor
	State       string // active or retrying (paused streams are paused by configuration)
	LastError   string
	LastErrorAt time.Time
	DeliveredAt time.Time
	Delivered   int64 // events confirmed by the sink
	Failed      int64 // failed delivery attempts
	Skipped     int64 // events deleted before delivery
	Owner       string
	LeaseUntil  time.Time
	LagEvents   int64
	LagSince    time.Time // sealing time of the oldest undelivered batch; zero when none
}

// ErrLeaseLost is returned when another instance holds a stream's lease:
// the caller must stop delivering it.
var ErrLeaseLost = errors.New("stream lease held by another instance")

// StreamStore keeps the durable cursors of the log streams and reads the
// commit order. Owner names one instance; a lease lets one instance at a
// time deliver a stream.
type StreamStore interface {
	// Claim takes or renews the lease of stream name for owner and returns
	// its cursor; false when another owner holds an unexpired lease.
	Claim(ctx context.Context, name, owner string, lease time.Duration) (StreamCursor, bool, error)
	// Read returns up to max events after c in commit order.
	Read(ctx context.Context, c StreamCursor, max int) (StreamRead, error)
	// Advance stores the cursor after a confirmed delivery of delivered
	// events (skipped ones passed), renewing the lease; ErrLeaseLost when
	// owner no longer holds it.
	Advance(ctx context.Context, name, owner string, to StreamCursor, delivered, skipped int, lease time.Duration) error
	// Fail records a failed delivery attempt; ErrLeaseLost as Advance.
	Fail(ctx context.Context, name, owner, reason string, lease time.Duration) error
	// States returns every stream the store knows, with its lag.
	States(ctx context.Context) ([]StreamState, error)
}
