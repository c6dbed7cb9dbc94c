package audit

import (
	"context"
	"time"
)

// PoisonMessage is one message of the poison stream: input that could
// never succeed, kept as sent with the reason it was rejected.
type PoisonMessage struct {
	Seq     uint64    // its sequence in the poison stream
	Time    time.Time // when the poison stream stored it
	Subject string    // the poison subject, audit.poison.<job>
	Job     string
	ID      string // the original message id
	EventID string // the id its event would be stored under; "" when it is not one event
	Reason  string // why it was rejected: the field and the rule
	Handler string // the handler that rejected it
	Target  string // the subject a replay publishes to; "" when unknown
	// Truncated: the payload was cut to fit the broker; only a corrected
	// payload can be replayed.
	Truncated bool
	Header    map[string][]string // as stored
	Payload   []byte
}

// PoisonFilter selects messages of the poison stream, newest first.
type PoisonFilter struct {
	Job    string // only this job's messages; "" for all
	Reason string // only messages whose reason contains this, case-insensitively
	Before uint64 // only messages with a lower sequence; 0 for no bound
	Limit  int    // at most this many; 0 for all
}

// PoisonReplay is a poison message published again to its job subject
// and stored there.
type PoisonReplay struct {
	PoisonSeq uint64 // the poison message replayed (now removed)
	Subject   string // the job subject
	Seq       uint64 // its sequence in the job stream
	ID        string // the message id it kept
	Duplicate bool   // the job stream had this replay already
}

// PoisonStat is one job's share of the poison stream.
type PoisonStat struct {
	Messages uint64
	Oldest   time.Time // when its oldest message was stored
}

// PoisonStream is the poison stream as the application reads and
// re-drives it. Get, Replay and Discard return an error wrapping
// ErrNotFound for a sequence the stream does not hold; List returns a
// *ValidationError naming "job" for an unknown job.
type PoisonStream interface {
	List(ctx context.Context, f PoisonFilter) ([]PoisonMessage, error)
	Get(ctx context.Context, seq uint64) (PoisonMessage, error)
	// Replay publishes message seq (or payload, when not nil) to its job
	// subject, waits for the job stream's ack, then removes it.
	Replay(ctx context.Context, seq uint64, payload []byte) (PoisonReplay, error)
	// Discard removes message seq and returns it.
	Discard(ctx context.Context, seq uint64) (PoisonMessage, error)
	// Stats returns, per job with messages, how many and the oldest's time.
	Stats(ctx context.Context) (map[string]PoisonStat, error)
}
