package natsjs

import (
	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
)

// NewPublisher returns a watermill-nats JetStream publisher on its own
// connection nc (Close closes nc). It never provisions streams (the service
// creates them) and sets Nats-Msg-Id to the message UUID, so a retried
// publish is deduplicated by the stream.
func NewPublisher(nc *nats.Conn, logger watermill.LoggerAdapter) (message.Publisher, error) {
	return wmnats.NewPublisherWithNatsConn(nc, wmnats.PublisherPublishConfig{
		Marshaler: &wmnats.NATSMarshaler{},
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: false,
			TrackMsgId:    true,
		},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
	}, logger)
}
