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

// Stream names: a public contract (docs/contract.md, "Subjects and streams").
const (
	StreamAudit   = "AUDIT"         // job subjects, work-queue retention
	StreamPoison  = "AUDIT_POISON"  // audit.poison.>
	StreamResults = "AUDIT_RESULTS" // audit.results.>
	// StreamCheckpoints keeps every signed tamper-evidence checkpoint
	// (audit.checkpoints) for ever: limits retention without limits.
	StreamCheckpoints = "AUDIT_CHECKPOINTS"
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
	// AllowMsgSchedules lets stream AUDIT hold JetStream message schedules
	// (nats-server 2.12+; cron patterns 2.14+). The server never lets it be
	// switched off again, so once AUDIT has it, Ensure keeps it on.
	AllowMsgSchedules bool
	// CheckpointSubject, when set, is the only subject of stream
	// AUDIT_CHECKPOINTS (tamper evidence): an exact subject, so it can
	// never capture a request subject.
	CheckpointSubject string
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
	schedules := t.AllowMsgSchedules
	if !schedules {
		if str, err := js.Stream(ctx, StreamAudit); err == nil && str.CachedInfo().Config.AllowMsgSchedules {
			schedules = true // can never be switched off again
		}
	}
	streams := []jetstream.StreamConfig{
		{
			Name:        StreamAudit,
			Description: "auditq jobs: events to record and jobs to run",
			Subjects:    t.JobSubjects,
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  t.DuplicateWindow,
			Replicas:    replicas,
			// Schedules live in AUDIT itself (a schedule's target must be in
			// its stream); they need roll-ups (a new schedule message
			// replaces the old one). No MaxAge: that would silently end a
			// schedule. Direct get lets "nats stream view" page a work queue.
			AllowMsgSchedules: schedules,
			AllowRollup:       schedules,
			AllowDirect:       true,
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
	if t.CheckpointSubject != "" {
		streams = append(streams, jetstream.StreamConfig{
			Name:        StreamCheckpoints,
			Description: "auditq signed tamper-evidence checkpoints, kept indefinitely",
			Subjects:    []string{t.CheckpointSubject},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardNew, // never drop an old checkpoint
			Duplicates:  t.DuplicateWindow,
			Replicas:    replicas,
			DenyDelete:  true,
			DenyPurge:   true,
			AllowDirect: true,
		})
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
