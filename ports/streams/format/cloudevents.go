package format

import (
	"bytes"
	"strconv"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// CloudEventType is the type attribute of every event auditq delivers.
const CloudEventType = "io.auditq.event.v1"

// appendCloudEvent appends e as a CloudEvents 1.0 event in the structured
// JSON format (CloudEvents spec 1.0.2, "JSON Event Format"); source is
// the JSON string of the source attribute. id is the event id (a tenant's
// event: "<tenant>/<id>", audit.EventKey, as an id is unique within its
// tenant only) and source the trail, so source + id identify the event: a
// receiver drops a repeat by them. The seal travels in extension
// attributes (lower-case alphanumeric names, as the spec requires):
// auditqbatchseq, auditqbatchid, auditqleaf, and on an event whose
// personal fields were pseudonymised or encrypted auditqleafdata (see
// appendSeal); data is the native event without the seal. The members and
// their order are those of the model in the tests (cloudEvent).
func appendCloudEvent(b []byte, e *audit.SealedEvent, source []byte, scratch *bytes.Buffer) ([]byte, error) {
	start := len(b)
	b = append(b, `{"specversion":"1.0","id":"`...)
	if e.Tenant != "" {
		b = contract.AppendJSONStringContent(b, e.Tenant)
		b = append(b, '/')
	}
	b = contract.AppendJSONStringContent(b, e.ID)
	b = append(b, `","source":`...)
	b = append(b, source...)
	b = append(b, `,"type":"`+CloudEventType+`","subject":"`...)
	b = contract.AppendJSONStringContent(b, e.ResourceType)
	b = append(b, '/')
	b = contract.AppendJSONStringContent(b, e.ResourceID)
	b = append(b, `","time":`...)
	var err error
	if b, err = contract.AppendJSONTime(b, e.OccurredAt); err != nil {
		return b[:start], err
	}
	b = append(b, `,"datacontenttype":"application/json","auditqbatchseq":`...)
	b = strconv.AppendInt(b, e.Seal.BatchSeq, 10)
	b = append(b, `,"auditqbatchid":`...)
	b = strconv.AppendInt(b, e.Seal.BatchID, 10)
	b = append(b, `,"auditqleaf":`...)
	b = strconv.AppendInt(b, int64(e.Seal.Leaf), 10)
	if len(e.LeafData) > 0 {
		b = contract.AppendJSONString(append(b, `,"auditqleafdata":`...), string(e.LeafData))
	}
	if b, err = contract.ViewOf(e.Event).AppendJSON(append(b, `,"data":`...), scratch); err != nil {
		return b[:start], err
	}
	return append(b, '}'), nil
}
