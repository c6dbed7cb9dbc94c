package natsjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/app/command"
)

// JobQueueConfig configures a JobQueue.
type JobQueueConfig struct {
	// Stream is the job stream (AUDIT); a job it does not store is an
	// error.
	Stream string
	// Subjects maps each job kind (command.JobCleanup, ...) to its job
	// subject.
	Subjects map[string]string
	// StartedByHeader is the header that carries who started the job.
	StartedByHeader string
}

// Validate returns an error naming an empty field.
func (c JobQueueConfig) Validate() error {
	if c.Stream == "" || len(c.Subjects) == 0 || c.StartedByHeader == "" {
		return errors.New("job queue: Stream, Subjects and StartedByHeader are required")
	}
	return nil
}

// JobQueue stores the jobs an operator starts through a request in the job
// stream, with the job id as Nats-Msg-Id (and the subscriber's message
// id header) and who started it in a header of its own.
type JobQueue struct {
	js  jetstream.JetStream
	cfg JobQueueConfig
}

var _ command.JobQueue = (*JobQueue)(nil)

// NewJobQueue returns a JobQueue publishing on js, or cfg's validation
// error.
func NewJobQueue(js jetstream.JetStream, cfg JobQueueConfig) (*JobQueue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &JobQueue{js: js, cfg: cfg}, nil
}

// Enqueue publishes j to its kind's subject and waits for the stream's
// acknowledgement; it returns an error for an unknown kind or when the
// stream did not store it.
func (q *JobQueue) Enqueue(ctx context.Context, j command.QueuedJob) (command.EnqueuedJob, error) {
	subject, ok := q.cfg.Subjects[j.Kind]
	if !ok {
		return command.EnqueuedJob{}, fmt.Errorf("job queue: unknown job kind %q", j.Kind)
	}
	m := nats.NewMsg(subject)
	m.Data = j.Body
	m.Header.Set(nats.MsgIdHdr, j.ID)
	m.Header.Set(HeaderMessageID, j.ID)
	if len(j.StartedBy) > 0 {
		m.Header.Set(q.cfg.StartedByHeader, string(j.StartedBy))
	}
	ack, err := q.js.PublishMsg(ctx, m, jetstream.WithExpectStream(q.cfg.Stream))
	if err != nil {
		return command.EnqueuedJob{}, fmt.Errorf("publish to %s: %w", subject, err)
	}
	return command.EnqueuedJob{ID: j.ID, Subject: subject, Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}
