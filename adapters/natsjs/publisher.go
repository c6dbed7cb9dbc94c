package natsjs

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
)

// republishMarshaler is the NATS marshaler with one fix: a message fired by
// a JetStream schedule carries Nats-Scheduler and Nats-Schedule-Next in its
// metadata, and JetStream rejects any client publish with those headers
// (error 10212). Re-publishing such a message (to the poison stream) would
// then fail for ever, so they travel as nats_scheduler and
// nats_schedule_next instead.
//
// And a second: a copy must fit the broker's message size limit. A poison
// copy is the original payload plus the poison headers, so an invalid
// message close to the limit could otherwise never be poisoned: the
// publish would fail and the message be redelivered for ever. A copy that
// does not fit is cut to fit, and header payload_truncated gives the
// original size.
//
// And a third: a copy of a message received on a tenant's subject is
// published under a Nats-Msg-Id scoped by its tenant (see copyMsgID).
type republishMarshaler struct {
	wmnats.NATSMarshaler
	nc *nats.Conn // for its MaxPayload; nil: no limit
	// tenantOf returns the tenant of a subject messages are received on
	// ("" for the default tenant; not ok for another subject); nil: no
	// tenants.
	tenantOf func(subject string) (job, tenant string, ok bool)
}

// HeaderPayloadTruncated is set on a re-published message whose payload
// was cut to fit the broker's limit: the payload's original size in bytes.
const HeaderPayloadTruncated = "payload_truncated"

// maxHeaderValue bounds each header value of a copy that does not fit.
const maxHeaderValue = 1024

// Marshal returns msg as a NATS message, schedule headers renamed.
func (m republishMarshaler) Marshal(topic string, msg *message.Message) (*nats.Msg, error) {
	nm, err := m.NATSMarshaler.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	for _, h := range [...][2]string{{HeaderScheduler, "nats_scheduler"}, {HeaderScheduleNext, "nats_schedule_next"}} {
		if v := nm.Header.Get(h[0]); v != "" {
			nm.Header.Del(h[0])
			nm.Header.Set(h[1], v)
		}
	}
	nm.Header.Set(nats.MsgIdHdr, m.copyMsgID(msg))
	if m.nc != nil {
		fitPayload(nm, m.nc.MaxPayload(), 0)
	}
	return nm, nil
}

// copyMsgID is the Nats-Msg-Id a message is published under, by which the
// target stream drops a repeated publish: the message's UUID, except for a
// copy of a received message (a poison copy) whose Nats-Msg-Id differed
// from its UUID. That is a replay from the poison stream (see toWatermill):
// its copy keeps the replay's Nats-Msg-Id, so a replay rejected again is
// not taken for the first rejection, which is still in the poison stream
// (or in its duplicate window) when the second one arrives. A fired
// schedule's copied headers name no message: it keeps its UUID.
//
// A copy of a message received on a tenant's subject (audit.t.<tenant>.log)
// is published under "<tenant>:" and that id: tenants choose their
// Nats-Msg-Id values, and two tenants' rejected messages of one value are
// two messages, which the poison stream's duplicate window would
// otherwise take for one and keep the first of only.
func (m republishMarshaler) copyMsgID(msg *message.Message) string {
	id := msg.UUID
	if v := msg.Metadata.Get(MetaMsgID); v != "" && msg.Metadata.Get(HeaderScheduler) == "" {
		id = v
	}
	if subject := msg.Metadata.Get(MetaSubject); subject != "" && m.tenantOf != nil {
		if _, tenant, ok := m.tenantOf(subject); ok && tenant != "" {
			return tenant + ":" + id
		}
	}
	return id
}

// fitPayload cuts nm's payload (and, if need be, long header values) so
// that the message fits in limit bytes, headers included, with reserve
// bytes to spare for headers added later.
func fitPayload(nm *nats.Msg, limit int64, reserve int) {
	margin := 64 + reserve // the payload_truncated header, and the reserve
	if limit <= 0 || int64(len(nm.Data)+headerSize(nm.Header)+reserve) <= limit {
		return
	}
	if int64(headerSize(nm.Header)+margin) > limit {
		for k, vs := range nm.Header {
			for i, v := range vs {
				if len(v) > maxHeaderValue {
					vs[i] = v[:maxHeaderValue] + "..."
				}
			}
			nm.Header[k] = vs
		}
	}
	keep := max(limit-int64(headerSize(nm.Header)+margin), 0)
	nm.Header.Set(HeaderPayloadTruncated, strconv.Itoa(len(nm.Data)))
	nm.Data = nm.Data[:min(int64(len(nm.Data)), keep)]
}

// headerSize is the size of h on the wire ("NATS/1.0\r\n", "k: v\r\n"
// each, "\r\n").
func headerSize(h nats.Header) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// HeaderMessageID is the header that carries a message's id (its Watermill
// UUID) on everything the publisher sends; on a poison copy it is the
// original message's id.
const HeaderMessageID = wmnats.WatermillUUIDHdr

// NewPublisher returns a watermill-nats JetStream publisher on its own
// connection nc (Close closes nc). It never provisions streams (the service
// creates them) and sets Nats-Msg-Id to the message UUID (see copyMsgID for
// the exceptions: copies of received messages), so a retried publish is
// deduplicated by the stream. tenantOf returns the tenant of a subject
// messages are received on, as PoisonConfig.TenantOf does; nil for a
// deployment without tenants.
func NewPublisher(nc *nats.Conn, logger watermill.LoggerAdapter, tenantOf func(subject string) (job, tenant string, ok bool)) (message.Publisher, error) {
	return wmnats.NewPublisherWithNatsConn(nc, wmnats.PublisherPublishConfig{
		Marshaler: republishMarshaler{nc: nc, tenantOf: tenantOf},
		JetStream: wmnats.JetStreamConfig{
			AutoProvision: false,
			// The marshaler sets Nats-Msg-Id itself (copyMsgID); TrackMsgId
			// would overwrite it with the UUID.
			TrackMsgId: false,
		},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
	}, logger)
}
