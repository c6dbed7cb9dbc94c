package natsjs

import (
	"context"
	"encoding/json"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/auditq/auditq/app/command"
)

// CleanupReporter publishes the result of each cleanup job through a
// Watermill publisher. The message id is derived from the job id, so a
// retried job's result is deduplicated by JetStream instead of doubled.
type CleanupReporter struct {
	pub   message.Publisher
	topic string
}

var _ command.CleanupReporter = (*CleanupReporter)(nil)

// NewCleanupReporter returns a CleanupReporter publishing on topic
// (audit.results.cleanup).
func NewCleanupReporter(pub message.Publisher, topic string) *CleanupReporter {
	return &CleanupReporter{pub: pub, topic: topic}
}

// CleanupResult publishes res as JSON with header job_id; it returns the
// publish error (JetStream did not acknowledge it).
func (r *CleanupReporter) CleanupResult(ctx context.Context, res command.CleanupResult) error {
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	msg := message.NewMessage("cleanup-result:"+res.ID, body)
	msg.SetContext(ctx)
	msg.Metadata.Set("job_id", res.ID)
	return r.pub.Publish(r.topic, msg)
}
