// Package natsjs is the driven adapter for NATS JetStream: the embedded
// server, connections, the streams and durable consumers auditq owns, and a
// Watermill subscriber over pull consumers.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
	JobSubjects []string
	// AlsoFor adds subjects to stream AUDIT that the consumer of a job
	// subject serves besides the job subject itself (tenant subjects:
	// audit.t.*.log for audit.log); nil adds none.
	AlsoFor        map[string][]string
	PoisonSubjects string // e.g. "audit.poison.>"
	ResultSubjects string // e.g. "audit.results.>"
	// MoreResultSubjects are further subjects of stream AUDIT_RESULTS
	// (the tenants' bulk results, audit.t.*.results.bulk).
	MoreResultSubjects []string

	PoisonMaxMsgs  int64
	PoisonMaxBytes int64
	ResultsMaxMsgs int64

	// DuplicateWindow is how long AUDIT remembers Nats-Msg-Id values;
	// AUDIT_POISON and AUDIT_CHECKPOINTS remember them at least
	// minSideWindow.
	DuplicateWindow time.Duration
	AckWait         time.Duration
	// MaxAckPending bounds unacknowledged messages per consumer across all
	// instances.
	MaxAckPending int
	// Replicas is the replica count of every stream and consumer (0 means
	// 1). Above 1 the server must be a JetStream cluster of at least that
	// many servers; Ensure brings existing streams and consumers to it.
	Replicas int
	// AllowMsgSchedules lets stream AUDIT hold JetStream message schedules
	// (nats-server 2.12+; cron patterns 2.14+). The server never lets it be
	// switched off again, so once AUDIT has it, Ensure keeps it on.
	AllowMsgSchedules bool
	// CheckpointSubject, when set, is the only subject of stream
	// AUDIT_CHECKPOINTS (tamper evidence): an exact subject, so it can
	// never capture a request subject.
	CheckpointSubject string
}

// minSideWindow is the shortest duplicate window of AUDIT_POISON and
// AUDIT_CHECKPOINTS: a message redelivered after its ack was lost comes
// back after the ack wait, and its poison copy (or a checkpoint
// re-published after a lost ack) must still be dropped then. Both streams
// see few messages, so a long window costs little memory.
const minSideWindow = 2 * time.Minute

func sideWindow(d time.Duration) time.Duration { return max(d, minSideWindow) }

// ConsumerName is the durable consumer for a job subject: "auditq-" and the
// subject after "audit." with dots as dashes (audit.log -> auditq-log).
// Durable names are a public contract: never rename one silently.
func ConsumerName(subject string) string {
	return "auditq-" + strings.ReplaceAll(strings.TrimPrefix(subject, "audit."), ".", "-")
}

// ErrReplicas is wrapped by Ensure's error when the server cannot hold the
// replicas asked for: it is not clustered, or its cluster has fewer
// JetStream servers online than Topology.Replicas.
var ErrReplicas = errors.New("natsjs: the NATS server cannot hold the replicas asked for")

// Bounds of Ensure's JetStream API requests. A cluster that is starting
// answers only once a majority of its servers has elected a meta leader
// (before, requests time out or get "temporarily unavailable"); and when
// several instances create the same stream or consumer at once, a
// clustered server (2.15.2 and older; nats-io/nats.go#949) leaves all but
// one request unanswered. Ensure's requests are idempotent, so each is
// retried after apiAttemptTimeout, for up to apiRetryFor.
const (
	apiAttemptTimeout = 5 * time.Second
	apiRetryFor       = time.Minute
)

// replicaChangeTimeout bounds how long Ensure waits for stream AUDIT (and
// with it its consumers) to reach a new replica count.
const replicaChangeTimeout = 2 * time.Minute

// Ensure creates or updates the streams and consumers of t. It is
// idempotent and safe to run from several instances at once. Stream AUDIT
// uses work-queue retention: a message is removed once its consumer acks
// it, so acked jobs are never replayed and the stream holds exactly the
// backlog.
//
// Every stream and consumer gets t.Replicas replicas. When that changes
// the replica count of an existing stream AUDIT, the server moves the
// stream and then its consumers (a work-queue stream's consumers must have
// its replica count, and the server refuses a consumer update until the
// stream's move is done); Ensure waits for that move, up to
// replicaChangeTimeout, before it updates the consumers. Each API request
// that times out or finds JetStream temporarily unavailable is retried
// (see apiRetryFor).
func Ensure(ctx context.Context, js jetstream.JetStream, t Topology) error {
	var existing *jetstream.StreamInfo
	err := retryAPI(ctx, func(ctx context.Context) error {
		str, err := js.Stream(ctx, StreamAudit)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return nil
		case err != nil:
			return err
		}
		existing = str.CachedInfo()
		return nil
	})
	if err != nil {
		if transient(err) {
			return fmt.Errorf("JetStream did not answer within %s (a cluster answers once a majority of its servers is up and has elected a meta leader): %w",
				apiRetryFor, err)
		}
		return fmt.Errorf("look up stream %s: %w", StreamAudit, err)
	}
	replicas := max(t.Replicas, 1)
	schedules := t.AllowMsgSchedules
	if existing != nil && existing.Config.AllowMsgSchedules {
		schedules = true // can never be switched off again
	}
	streams := []jetstream.StreamConfig{
		{
			Name:        StreamAudit,
			Description: "auditq jobs: events to record and jobs to run",
			Subjects:    t.streamSubjects(),
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
			Duplicates:  sideWindow(t.DuplicateWindow),
			Replicas:    replicas,
			// Direct get: "auditq poison list" and "show" read it by
			// sequence, from any replica, without a consumer.
			AllowDirect: true,
		},
		{
			Name:        StreamResults,
			Description: "auditq job results (the last few)",
			Subjects:    append([]string{t.ResultSubjects}, t.MoreResultSubjects...),
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
			Duplicates:  sideWindow(t.DuplicateWindow),
			Replicas:    replicas,
			DenyDelete:  true,
			DenyPurge:   true,
			AllowDirect: true,
		})
	}
	for _, sc := range streams {
		err := retryAPI(ctx, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, sc)
			return err
		})
		if err != nil {
			return fmt.Errorf("create stream %s: %w", sc.Name, replicasError(err, replicas))
		}
	}
	if err := waitReplicas(ctx, js, StreamAudit, replicas); err != nil {
		return err
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
			Replicas:      replicas,
		}
		also := t.AlsoFor[subj]
		if len(also) > 0 {
			cc.FilterSubject, cc.FilterSubjects = "", append([]string{subj}, also...)
		}
		err := retryAPI(ctx, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateConsumer(ctx, StreamAudit, cc)
			// nats-server 2.15.2, on the first update of a consumer
			// loaded from its store since the start, answers with the
			// configuration it had (one filter subject) although it
			// applies the new one; nats.go takes that for a server without
			// multiple filters. Asking again gets the true answer.
			if len(also) > 0 && errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
				return errStaleConsumerInfo
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("create consumer %s: %w", cc.Durable, replicasError(err, replicas))
		}
	}
	return nil
}

// streamSubjects are the subjects of stream AUDIT: the job subjects and
// those AlsoFor adds, in that order.
func (t Topology) streamSubjects() []string {
	out := slices.Clone(t.JobSubjects)
	for _, subj := range t.JobSubjects {
		out = append(out, t.AlsoFor[subj]...)
	}
	return out
}

// errStaleConsumerInfo is a consumer update answered with the consumer's
// previous configuration: retried (see Ensure).
var errStaleConsumerInfo = errors.New("the server answered a consumer update with the previous configuration")

// retryAPI runs call with a deadline of apiAttemptTimeout until it
// succeeds, fails with an error that is not transient, ctx ends, or
// apiRetryFor has passed; it returns call's last error.
func retryAPI(ctx context.Context, call func(context.Context) error) error {
	deadline := time.Now().Add(apiRetryFor)
	for {
		actx, cancel := context.WithTimeout(ctx, apiAttemptTimeout)
		err := call(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// transient reports an API request that went unanswered or found JetStream
// temporarily unavailable (a cluster without a meta leader).
func transient(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, errStaleConsumerInfo) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == 10008) // JetStream system temporarily unavailable
}

// replicasError wraps err with ErrReplicas and a message saying what to do
// when it is the server's answer to more replicas than it can place.
func replicasError(err error, replicas int) error {
	var apiErr *jetstream.APIError
	if replicas <= 1 || !errors.As(err, &apiErr) {
		return err
	}
	switch apiErr.ErrorCode {
	case 10074: // replicas > 1 not supported in non-clustered mode
		return fmt.Errorf("%w: %d replicas need a JetStream cluster of at least %d servers, and this server is not clustered (%v)",
			ErrReplicas, replicas, replicas, err)
	case 10005, 10023: // no suitable peers for placement; insufficient resources
		return fmt.Errorf("%w: %d replicas need at least %d JetStream servers online in the cluster, and the cluster could not place them (%v)",
			ErrReplicas, replicas, replicas, err)
	}
	return err
}

// waitReplicas waits until stream holds replicas replicas and no move of
// it is in progress (its consumers move with it), or fails after
// replicaChangeTimeout.
func waitReplicas(ctx context.Context, js jetstream.JetStream, stream string, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, replicaChangeTimeout)
	defer cancel()
	state := ""
	for {
		actx, cancelAttempt := context.WithTimeout(ctx, apiAttemptTimeout)
		s, err := js.Stream(actx, stream)
		cancelAttempt()
		if err == nil {
			ci := s.CachedInfo().Cluster
			switch {
			case ci == nil && replicas == 1:
				return nil
			case ci == nil:
				state = "no cluster information"
			case ci.Desired == nil && len(ci.Replicas) == replicas-1:
				return nil
			default:
				state = fmt.Sprintf("%d of %d replicas, move in progress: %t", len(ci.Replicas)+1, replicas, ci.Desired != nil)
			}
		} else {
			state = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream %s did not reach %d replicas within %s (%s): %w", stream, replicas, replicaChangeTimeout, state, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
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
