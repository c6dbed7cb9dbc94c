package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/domain/evidence"
)

// Checkpoints publishes tamper-evidence checkpoints to stream
// AUDIT_CHECKPOINTS and reads them back: the copy of every checkpoint kept
// outside the database.
type Checkpoints struct {
	js      jetstream.JetStream
	subject string
}

// NewCheckpoints returns Checkpoints on subject (audit.checkpoints) of
// stream AUDIT_CHECKPOINTS, which Ensure creates.
func NewCheckpoints(js jetstream.JetStream, subject string) *Checkpoints {
	return &Checkpoints{js: js, subject: subject}
}

// LastPublished returns the seq of the newest checkpoint in the stream, 0
// when it holds none.
func (c *Checkpoints) LastPublished(ctx context.Context) (int64, error) {
	str, err := c.js.Stream(ctx, StreamCheckpoints)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", StreamCheckpoints, err)
	}
	m, err := str.GetLastMsgForSubject(ctx, c.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the last checkpoint of %s: %w", StreamCheckpoints, err)
	}
	var cp evidence.Checkpoint
	if err := json.Unmarshal(m.Data, &cp); err != nil {
		return 0, fmt.Errorf("read the last checkpoint of %s: %w", StreamCheckpoints, err)
	}
	return cp.Seq, nil
}

// PublishCheckpoint publishes cp as JSON and waits for the stream's ack.
// Its message id derives from the checkpoint, so a repeated publish within
// the duplicate window is dropped.
func (c *Checkpoints) PublishCheckpoint(ctx context.Context, cp evidence.Checkpoint) error {
	body, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	m := nats.NewMsg(c.subject)
	m.Data = body
	m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("checkpoint-%d-%s", cp.Seq, cp.Hash().String()[:16]))
	if _, err := c.js.PublishMsg(ctx, m, jetstream.WithExpectStream(StreamCheckpoints)); err != nil {
		return fmt.Errorf("publish checkpoint %d: %w", cp.Seq, err)
	}
	return nil
}

// Checkpoints calls fn with every checkpoint in the stream, in stream
// order. A message that is not a checkpoint is an error.
func (c *Checkpoints) Checkpoints(ctx context.Context, fn func(evidence.Checkpoint) error) error {
	str, err := c.js.Stream(ctx, StreamCheckpoints)
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamCheckpoints, err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamCheckpoints, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{c.subject}})
	if err != nil {
		return fmt.Errorf("read %s: %w", StreamCheckpoints, err)
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("read %s: %w", StreamCheckpoints, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", StreamCheckpoints, err)
			}
			var cp evidence.Checkpoint
			if err := json.Unmarshal(m.Data(), &cp); err != nil {
				return fmt.Errorf("%s message %d is not a checkpoint: %w", StreamCheckpoints, meta.Sequence.Stream, err)
			}
			if err := fn(cp); err != nil {
				return err
			}
			if meta.Sequence.Stream >= last {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("read %s: %w", StreamCheckpoints, err)
		}
		if n == 0 {
			return fmt.Errorf("read %s: no message up to sequence %d within 5s", StreamCheckpoints, last)
		}
	}
}
