package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports"
	"github.com/auditq/auditq/ports/cli"
	"github.com/auditq/auditq/ports/contract"
)

// This file wires the poison stream: its gauges on /metrics and the
// "auditq poison" commands.

// poisonConfig is stream AUDIT_POISON as the service lays it out: one
// subject per job, each replayed to its job subject, a rejected bulk event
// to audit.log.
func poisonConfig() natsjs.PoisonConfig {
	return natsjs.PoisonConfig{
		Stream: natsjs.StreamPoison, Prefix: contract.PoisonPrefix, Jobs: contract.PoisonJobs(),
		EventSubject: contract.SubjectLog, JobStream: natsjs.StreamAudit,
		TenantSubject: contract.TenantSubject, TenantOf: contract.TenantOf,
	}
}

// NewPoison returns the poison stream of the service on js, as the poison
// commands reach it.
func NewPoison(js jetstream.JetStream) (*natsjs.Poison, error) {
	return natsjs.NewPoison(js, poisonConfig())
}

// poisonBacklog is the source of the poison gauges.
func poisonBacklog(p *natsjs.Poison) ports.PoisonBacklog {
	return func(ctx context.Context) (map[string]ports.PoisonStat, error) {
		stats, err := p.Stats(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[string]ports.PoisonStat, len(stats))
		for job, st := range stats {
			out[job] = ports.PoisonStat{Messages: st.Messages, Oldest: st.Oldest}
		}
		return out, nil
	}
}

// PoisonOpener returns how "auditq poison" reaches the poison stream:
// through the service's audit.admin.poison.* requests, on a connection of
// its own configured by cfg, so that an operator needs no JetStream
// permission on the stream and each action is recorded under the
// identity the server authenticated.
func PoisonOpener(cfg config.Config) cli.PoisonOpener {
	return cli.RequestPoison(Connector(cfg))
}

// appPoison is natsjs.Poison as the application's audit.PoisonStream: the
// same reads and re-drives as "auditq poison", for the audit.admin.poison.*
// requests.
type appPoison struct{ p *natsjs.Poison }

var _ audit.PoisonStream = appPoison{}

func (a appPoison) List(ctx context.Context, f audit.PoisonFilter) ([]audit.PoisonMessage, error) {
	if f.Job != "" && !slices.Contains(a.p.JobNames(), f.Job) {
		return nil, audit.Invalid("job", "must be one of %s, got %q", strings.Join(a.p.JobNames(), ", "), f.Job)
	}
	msgs, err := a.p.List(ctx, natsjs.PoisonFilter{Job: f.Job, Reason: f.Reason, Before: f.Before, Limit: f.Limit})
	out := make([]audit.PoisonMessage, len(msgs))
	for i, m := range msgs {
		out[i] = appPoisonMessage(m)
	}
	return out, err
}

func (a appPoison) Get(ctx context.Context, seq uint64) (audit.PoisonMessage, error) {
	m, err := a.p.Get(ctx, seq)
	return appPoisonMessage(m), poisonErr(err)
}

func (a appPoison) Replay(ctx context.Context, seq uint64, payload []byte) (audit.PoisonReplay, error) {
	r, err := a.p.Replay(ctx, seq, payload)
	return audit.PoisonReplay{PoisonSeq: r.PoisonSeq, Subject: r.Subject, Seq: r.Seq, ID: r.ID, Duplicate: r.Duplicate}, poisonErr(err)
}

func (a appPoison) Discard(ctx context.Context, seq uint64) (audit.PoisonMessage, error) {
	m, err := a.p.Discard(ctx, seq)
	return appPoisonMessage(m), poisonErr(err)
}

func (a appPoison) Stats(ctx context.Context) (map[string]audit.PoisonStat, error) {
	stats, err := a.p.Stats(ctx)
	out := make(map[string]audit.PoisonStat, len(stats))
	for job, st := range stats {
		out[job] = audit.PoisonStat{Messages: st.Messages, Oldest: st.Oldest}
	}
	return out, err
}

// poisonErr makes a missing poison message the application's ErrNotFound.
func poisonErr(err error) error {
	if errors.Is(err, natsjs.ErrPoisonNotFound) {
		return fmt.Errorf("%w: %w", audit.ErrNotFound, err)
	}
	return err
}

func appPoisonMessage(m natsjs.PoisonMsg) audit.PoisonMessage {
	return audit.PoisonMessage{
		Seq: m.Seq, Time: m.Time, Subject: m.Subject, Job: m.Job, ID: m.ID, EventID: m.EventID,
		Reason: m.Reason, Handler: m.Handler, Target: m.Target, Truncated: m.Truncated,
		Header: m.Header, Payload: m.Data,
	}
}
