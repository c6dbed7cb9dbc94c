// Package format encodes stored events for the log streams: the native
// event JSON (contract.EventView), OCSF 1.3 and CloudEvents 1.0
// (docs/streams.md, "Formats"). Each encoding carries the event's seal
// (batch and leaf), so that a copy in a SIEM stays verifiable against the
// tamper evidence. The functions are pure: the same event and options
// give the same bytes.
package format

import (
	"encoding/json"
	"fmt"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// The formats a stream can deliver.
const (
	Native      = "native"
	OCSF        = "ocsf"
	CloudEvents = "cloudevents"
)

// Names lists the formats.
var Names = []string{Native, OCSF, CloudEvents}

// Options are what the encodings take besides the event.
type Options struct {
	// ProductVersion is auditq's version (OCSF metadata.product.version).
	ProductVersion string
	// Source is the CloudEvents source, a URI reference naming this
	// trail; "" means DefaultSource.
	Source string
}

// DefaultSource is the CloudEvents source when none is configured.
const DefaultSource = "/auditq"

// Seal is the tamper-evidence position of a delivered event: the chain
// position and id of its batch and its leaf index, as audit.event.proof
// returns them (batch.seq, batch.id, leafIndex).
type Seal struct {
	BatchSeq int64 `json:"batchSeq"`
	BatchID  int64 `json:"batchId"`
	Leaf     int   `json:"leaf"`
}

func sealOf(e audit.SealedEvent) Seal {
	return Seal{BatchSeq: e.Seal.BatchSeq, BatchID: e.Seal.BatchID, Leaf: e.Seal.Leaf}
}

// NativeEvent is the native encoding: the event as audit.query returns it,
// plus its seal.
type NativeEvent struct {
	contract.EventView
	Seal Seal `json:"seal"`
}

// Encoder encodes events in one format.
type Encoder func(audit.SealedEvent) ([]byte, error)

// New returns the encoder of format name, or an error naming the formats.
func New(name string, o Options) (Encoder, error) {
	if o.Source == "" {
		o.Source = DefaultSource
	}
	switch name {
	case Native:
		return func(e audit.SealedEvent) ([]byte, error) {
			return json.Marshal(NativeEvent{EventView: contract.ViewOf(e.Event), Seal: sealOf(e)})
		}, nil
	case OCSF:
		return func(e audit.SealedEvent) ([]byte, error) { return json.Marshal(ocsfOf(e, o)) }, nil
	case CloudEvents:
		return func(e audit.SealedEvent) ([]byte, error) { return json.Marshal(cloudEventOf(e, o)) }, nil
	}
	return nil, fmt.Errorf("format %q: must be one of native, ocsf, cloudevents", name)
}
