package natsjs

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// Reporter publishes job outcomes through a Watermill publisher: rejected
// bulk events to the poison stream and job results to the results stream.
// Message ids are derived from the job id, so a retried job's reports are
// deduplicated by JetStream instead of doubled.
type Reporter struct {
	pub              message.Publisher
	bulkPoisonTopic  string
	bulkResultsTopic string
}

var _ command.BulkReporter = (*Reporter)(nil)

// NewReporter returns a Reporter publishing on the given subjects.
func NewReporter(pub message.Publisher, bulkPoisonTopic, bulkResultsTopic string) *Reporter {
	return &Reporter{pub: pub, bulkPoisonTopic: bulkPoisonTopic, bulkResultsTopic: bulkResultsTopic}
}

// BulkRejected publishes one rejected event of a bulk job, as sent, with
// the same poison headers as a poisoned message plus its index in the job.
func (r *Reporter) BulkRejected(ctx context.Context, bulkID string, rej audit.Rejection) error {
	msg := message.NewMessage(bulkID+":"+strconv.Itoa(rej.Index), message.Payload(rej.Raw))
	msg.SetContext(ctx)
	msg.Metadata.Set(middleware.ReasonForPoisonedKey, rej.Error)
	msg.Metadata.Set(middleware.PoisonedTopicKey, "audit.bulk")
	msg.Metadata.Set(middleware.PoisonedHandlerKey, "audit.bulk")
	msg.Metadata.Set("bulk_id", bulkID)
	msg.Metadata.Set("bulk_index", strconv.Itoa(rej.Index))
	return r.pub.Publish(r.bulkPoisonTopic, msg)
}

// BulkResult publishes a bulk job's result as JSON.
func (r *Reporter) BulkResult(ctx context.Context, res command.BulkResult) error {
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	msg := message.NewMessage("result:"+res.ID, body)
	msg.SetContext(ctx)
	msg.Metadata.Set("job_id", res.ID)
	return r.pub.Publish(r.bulkResultsTopic, msg)
}
