package natsjs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// ReportResults publishes generated reports through a Watermill publisher.
// The message id is derived from the job id, so a retried job's report is
// deduplicated by JetStream instead of doubled.
type ReportResults struct {
	pub   message.Publisher
	topic string
}

var _ command.ReportPublisher = (*ReportResults)(nil)

// NewReportResults returns a ReportResults publishing on topic (e.g.
// audit.results.report).
func NewReportResults(pub message.Publisher, topic string) *ReportResults {
	return &ReportResults{pub: pub, topic: topic}
}

// ReportGenerated publishes the stored report as JSON, with the job id and
// report id in headers job_id and report_id.
func (r *ReportResults) ReportGenerated(ctx context.Context, jobID string, rep audit.StoredReport) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode report %d: %w", rep.ID, err)
	}
	msg := message.NewMessage("report:"+jobID, body)
	msg.SetContext(ctx)
	msg.Metadata.Set("job_id", jobID)
	msg.Metadata.Set("report_id", strconv.FormatInt(rep.ID, 10))
	return r.pub.Publish(r.topic, msg)
}
