package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// ResultsConfig names the subjects Results publishes on.
type ResultsConfig struct {
	BulkPoison     string // rejected bulk events, e.g. audit.poison.bulk
	BulkResults    string // e.g. audit.results.bulk
	CleanupResults string // e.g. audit.results.cleanup
	ReportResults  string // e.g. audit.results.report
	// TenantBulkResults, when set, names the subject of a tenant's bulk
	// results (audit.results.t.<tenant>.bulk), which only that tenant's
	// account may import; nil sends every result to BulkResults.
	TenantBulkResults func(tenant string) string
}

// Validate returns an error naming the first subject that is empty.
func (c ResultsConfig) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"BulkPoison", c.BulkPoison}, {"BulkResults", c.BulkResults},
		{"CleanupResults", c.CleanupResults}, {"ReportResults", c.ReportResults},
	} {
		if f.v == "" {
			return fmt.Errorf("natsjs results: %s subject is empty", f.name)
		}
	}
	return nil
}

// Results publishes job outcomes through a Watermill publisher: rejected
// bulk events to the poison stream, and bulk, cleanup and report results
// to the results stream. Every message id is derived from the job id, so
// a retried job's outcome is deduplicated by JetStream instead of doubled.
type Results struct {
	pub message.Publisher
	cfg ResultsConfig
}

// Results is also the ports.ReportPublisher of the report job (checked
// where the service wires it: adapters do not import ports).
var (
	_ command.BulkReporter    = (*Results)(nil)
	_ command.CleanupReporter = (*Results)(nil)
)

// NewResults returns a Results publishing through pub on the subjects of
// cfg, or cfg's validation error.
func NewResults(pub message.Publisher, cfg ResultsConfig) (*Results, error) {
	if pub == nil {
		return nil, errors.New("natsjs results: no publisher")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Results{pub: pub, cfg: cfg}, nil
}

// publish sends payload with message id msgID and the given metadata on
// topic; it returns the publish error (JetStream did not acknowledge it).
func (r *Results) publish(ctx context.Context, topic, msgID string, payload []byte, metadata ...string) error {
	msg := message.NewMessage(msgID, payload)
	msg.SetContext(ctx)
	for i := 0; i+1 < len(metadata); i += 2 {
		msg.Metadata.Set(metadata[i], metadata[i+1])
	}
	return r.pub.Publish(topic, msg)
}

// Headers of a rejected bulk event in the poison stream: the bulk job's id
// and the event's index in it. The message id is "<bulk_id>:<bulk_index>",
// the id the event is stored under when it names none.
const (
	HeaderBulkID    = "bulk_id"
	HeaderBulkIndex = "bulk_index"
	// HeaderTenant names the tenant of a rejected bulk event of a tenant
	// (docs/tenants.md); a replay goes to audit.t.<tenant>.log.
	HeaderTenant = "tenant"
)

// BulkRejected publishes one rejected event of a bulk job, as sent, with
// the same poison headers as a poisoned message plus its index in the job.
// A tenant's event also carries HeaderTenant, and its message id the
// tenant.
func (r *Results) BulkRejected(ctx context.Context, bulkID string, rej audit.Rejection) error {
	md := []string{
		middleware.ReasonForPoisonedKey, rej.Error,
		middleware.PoisonedTopicKey, "audit.bulk",
		middleware.PoisonedHandlerKey, "audit.bulk",
		HeaderBulkID, bulkID,
		HeaderBulkIndex, strconv.Itoa(rej.Index),
	}
	id := bulkID + ":" + strconv.Itoa(rej.Index)
	if rej.Tenant != "" {
		md = append(md, HeaderTenant, rej.Tenant)
		id = rej.Tenant + ":" + id
	}
	return r.publish(ctx, r.cfg.BulkPoison, id, rej.Raw, md...)
}

// BulkResult publishes a bulk job's result as JSON with header job_id.
func (r *Results) BulkResult(ctx context.Context, res command.BulkResult) error {
	body, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode bulk result %s: %w", res.ID, err)
	}
	if res.Tenant != "" && r.cfg.TenantBulkResults != nil {
		// The tenant in the message id too: another tenant's job of the
		// same id is not a duplicate.
		return r.publish(ctx, r.cfg.TenantBulkResults(res.Tenant), "result:"+res.Tenant+":"+res.ID, body, "job_id", res.ID)
	}
	return r.publish(ctx, r.cfg.BulkResults, "result:"+res.ID, body, "job_id", res.ID)
}

// CleanupResult publishes a cleanup job's result as JSON with header
// job_id.
func (r *Results) CleanupResult(ctx context.Context, res command.CleanupResult) error {
	body, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode cleanup result %s: %w", res.ID, err)
	}
	return r.publish(ctx, r.cfg.CleanupResults, "cleanup-result:"+res.ID, body, "job_id", res.ID)
}

// ReportGenerated publishes the stored report of a report job as JSON,
// with the job id and report id in headers job_id and report_id.
func (r *Results) ReportGenerated(ctx context.Context, jobID string, rep audit.StoredReport) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode report %d: %w", rep.ID, err)
	}
	return r.publish(ctx, r.cfg.ReportResults, "report:"+jobID, body,
		"job_id", jobID, "report_id", strconv.FormatInt(rep.ID, 10))
}
