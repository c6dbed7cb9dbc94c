// Package natsjs is the driven adapter for NATS JetStream: the embedded
// server, connections, the streams and durable consumers auditq owns, and a
// Watermill subscriber over pull consumers.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names: a public contract (README, "Subjects and streams").
const (
	StreamAudit   = "AUDIT"         // job subjects, work-queue retention
	StreamPoison  = "AUDIT_POISON"  // audit.poison.>
	StreamResults = "AUDIT_RESULTS" // audit.results.>
)

// Topology describes the streams and durable consumers the service needs.
type Topology struct {
	// JobSubjects are the subjects of stream AUDIT; each gets one durable
	// pull consumer named by ConsumerName.
	JobSubjects    []string
	PoisonSubjects string // e.g. "audit.poison.>"
	ResultSubjects string // e.g. "audit.results.>"

	PoisonMaxMsgs  int64
	PoisonMaxBytes int64
	ResultsMaxMsgs int64

	// DuplicateWindow is how long AUDIT remembers Nats-Msg-Id values.
	DuplicateWindow time.Duration
	AckWait         time.Duration
	// MaxAckPending bounds unacknowledged messages per consumer across all
	// instances.
	MaxAckPending int
	Replicas      int
}

// ConsumerName is the durable consumer for a job subject: "auditq-" and the
// subject after "audit." with dots as dashes (audit.log -> auditq-log).
// Durable names are a public contract: never rename one silently.
func ConsumerName(subject string) string {
	return "auditq-" + strings.ReplaceAll(strings.TrimPrefix(subject, "audit."), ".", "-")
}

// Ensure creates or updates the streams and consumers of t. It is
// idempotent and safe to run from several instances at once. Stream AUDIT
// uses work-queue retention: a message is removed once its consumer acks
// it, so acked jobs are never replayed and the stream holds exactly the
// backlog.
func Ensure(ctx context.Context, js jetstream.JetStream, t Topology) error {
	replicas := max(t.Replicas, 1)
	streams := []jetstream.StreamConfig{
		{
			Name:        StreamAudit,
			Description: "auditq jobs: events to record and jobs to run",
			Subjects:    t.JobSubjects,
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  t.DuplicateWindow,
			Replicas:    replicas,
		},
		{
			Name:        StreamPoison,
			Description: "auditq jobs that failed validation or could not be processed, with the reason in headers",
			Subjects:    []string{t.PoisonSubjects},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxMsgs:     t.PoisonMaxMsgs,
			MaxBytes:    t.PoisonMaxBytes,
			Discard:     jetstream.DiscardOld,
			Duplicates:  t.DuplicateWindow,
			Replicas:    replicas,
		},
		{
			Name:        StreamResults,
			Description: "auditq job results (the last few)",
			Subjects:    []string{t.ResultSubjects},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxMsgs:     t.ResultsMaxMsgs,
			Discard:     jetstream.DiscardOld,
			Replicas:    replicas,
		},
	}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("create stream %s: %w", sc.Name, err)
		}
	}
	for _, subj := range t.JobSubjects {
		if strings.ContainsAny(subj, "*>") {
			continue // wildcard subjects (schedules) have no consumer of their own
		}
		cc := jetstream.ConsumerConfig{
			Durable:       ConsumerName(subj),
			Description:   "auditq handler for " + subj,
			FilterSubject: subj,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       t.AckWait,
			MaxDeliver:    -1, // transient failures are redelivered until they succeed
			MaxAckPending: t.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamAudit, cc); err != nil {
			return fmt.Errorf("create consumer %s: %w", cc.Durable, err)
		}
	}
	return nil
}

// Ready reports whether the job stream and its consumers exist.
func Ready(ctx context.Context, js jetstream.JetStream, jobSubjects []string) error {
	s, err := js.Stream(ctx, StreamAudit)
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamAudit, err)
	}
	for _, subj := range jobSubjects {
		if strings.ContainsAny(subj, "*>") {
			continue
		}
		if _, err := s.Consumer(ctx, ConsumerName(subj)); err != nil {
			return fmt.Errorf("consumer %s: %w", ConsumerName(subj), err)
		}
	}
	return nil
}

// Pending returns, per job subject, how many messages wait in its consumer
// (not yet delivered) plus those delivered but not yet acked.
func Pending(ctx context.Context, js jetstream.JetStream, jobSubjects []string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(jobSubjects))
	var errs []error
	for _, subj := range jobSubjects {
		if strings.ContainsAny(subj, "*>") {
			continue
		}
		c, err := js.Consumer(ctx, StreamAudit, ConsumerName(subj))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		info, err := c.Info(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[subj] = info.NumPending + uint64(info.NumAckPending)
	}
	return out, errors.Join(errs...)
}
