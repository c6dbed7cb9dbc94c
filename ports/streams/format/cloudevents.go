package format

import (
	"time"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// CloudEventType is the type attribute of every event auditq delivers.
const CloudEventType = "io.auditq.event.v1"

// CloudEvent is a CloudEvents 1.0 event in the structured JSON format
// (CloudEvents spec 1.0.2, "JSON Event Format"). id is the event id (a
// tenant's event: "<tenant>/<id>", audit.EventKey, as an id is unique
// within its tenant only) and source the trail, so source + id identify the event: a receiver drops a
// repeat by them. The seal travels in extension attributes (lower-case
// alphanumeric names, as the spec requires): auditqbatchseq,
// auditqbatchid, auditqleaf, and on an event whose personal fields were
// pseudonymised or encrypted auditqleafdata (see Seal.LeafData).
type CloudEvent struct {
	SpecVersion     string             `json:"specversion"`
	ID              string             `json:"id"`
	Source          string             `json:"source"`
	Type            string             `json:"type"`
	Subject         string             `json:"subject"`
	Time            time.Time          `json:"time"`
	DataContentType string             `json:"datacontenttype"`
	BatchSeq        int64              `json:"auditqbatchseq"`
	BatchID         int64              `json:"auditqbatchid"`
	Leaf            int                `json:"auditqleaf"`
	LeafData        string             `json:"auditqleafdata,omitempty"`
	Data            contract.EventView `json:"data"`
}

func cloudEventOf(e audit.SealedEvent, o Options) CloudEvent {
	return CloudEvent{
		SpecVersion: "1.0", ID: audit.EventKey(e.Tenant, e.ID), Source: o.Source, Type: CloudEventType,
		Subject: e.ResourceType + "/" + e.ResourceID, Time: e.OccurredAt, DataContentType: "application/json",
		BatchSeq: e.Seal.BatchSeq, BatchID: e.Seal.BatchID, Leaf: e.Seal.Leaf, LeafData: string(e.LeafData),
		Data: contract.ViewOf(e.Event),
	}
}
