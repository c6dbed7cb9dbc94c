package ports

import (
	"context"
	"encoding/json"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/auditq/auditq/app"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// HeaderStartedBy is the header of a job that audit.admin.cleanup or
// audit.admin.report.generate stored: who asked, as the request service
// read it (JetStream drops Nats-Request-Info from what it stores, so
// the service carries the identity itself). It is believed only when the
// service's identity is trusted, where nobody but the service may
// publish to the job subjects (AUDITQ_NATS_CONFIG).
const HeaderStartedBy = "Auditq-Started-By"

// ServiceUser is the user name the trail gives the service itself, on
// jobs its schedules fired: "nats:<its account>/auditq".
const ServiceUser = "auditq"

// jobOrigin is the requester as HeaderStartedBy carries it.
type jobOrigin struct {
	Verified    *query.Identity `json:"verified,omitempty"`
	RequestInfo string          `json:"requestInfo,omitempty"`
	Claimed     string          `json:"claimed,omitempty"`
}

// encodeOrigin is who as HeaderStartedBy carries it.
func encodeOrigin(who query.Requester) json.RawMessage {
	b, _ := json.Marshal(jobOrigin{Verified: who.Verified, RequestInfo: who.RequestInfo, Claimed: who.Claimed})
	return b
}

// jobRequester is who started the job msg, as far as the service can
// vouch: with a trusted identity, the service itself for a job its
// schedule fired, the requester HeaderStartedBy names, or else the
// service's own account (a job published from within it, e.g. a poison
// replay of a job without the header). Without trust nothing is
// verified, and the header is kept as an unverified claim.
func jobRequester(msg *message.Message, id Identity) query.Requester {
	scheduler := msg.Metadata.Get(metaScheduler)
	header := msg.Metadata.Get(HeaderStartedBy)
	if !id.Trusted {
		claim := header
		if scheduler != "" && claim == "" {
			claim = "schedule " + scheduler
		}
		return query.Requester{Claimed: claim}
	}
	switch {
	case scheduler != "":
		return query.Requester{Verified: &query.Identity{Account: id.Account, User: ServiceUser, Name: scheduler}}
	case header != "":
		var o jobOrigin
		if err := json.Unmarshal([]byte(header), &o); err == nil {
			return query.Requester{Verified: o.Verified, RequestInfo: o.RequestInfo, Claimed: o.Claimed}
		}
		return query.Requester{Claimed: header}
	default:
		return query.Requester{Verified: &query.Identity{Account: id.Account}}
	}
}

// jobEndpoints start cleanup and report jobs for an operator, carrying
// the requester into the stored job.
func jobEndpoints(r *Requests, application app.Application) []endpointSpec {
	start := application.Commands.StartJob
	view := func(j command.EnqueuedJob) contract.JobStarted {
		return contract.JobStarted{ID: j.ID, Subject: j.Subject, Seq: j.Seq, Duplicate: j.Duplicate}
	}
	return []endpointSpec{
		{"admin-cleanup", contract.SubjectAdminCleanup, endpoint(r, contract.SubjectAdminCleanup, func(ctx context.Context, in json.RawMessage, who query.Requester) (any, error) {
			j, err := start.StartCleanup(ctx, in, encodeOrigin(who))
			if err != nil {
				return nil, err
			}
			r.cfg.Logger.Info("cleanup job started", "id", j.ID, "seq", j.Seq, "by", who.Verified.UserID())
			return view(j), nil
		})},
		{"admin-report-generate", contract.SubjectAdminReportGenerate, endpoint(r, contract.SubjectAdminReportGenerate, func(ctx context.Context, in audit.ReportRequest, who query.Requester) (any, error) {
			j, err := start.StartReport(ctx, in, encodeOrigin(who))
			if err != nil {
				return nil, err
			}
			r.cfg.Logger.Info("report job started", "id", j.ID, "seq", j.Seq, "by", who.Verified.UserID())
			return view(j), nil
		})},
	}
}
