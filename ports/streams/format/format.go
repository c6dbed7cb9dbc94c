// Package format encodes stored events for the log streams: the native
// event JSON (contract.EventView), OCSF 1.3 and CloudEvents 1.0
// (docs/streams.md, "Formats"). Each encoding carries the event's seal
// (batch and leaf), so that a copy in a SIEM stays verifiable against the
// tamper evidence. The functions are pure: the same event and options
// give the same bytes.
package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

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
// returns them (batch.seq, batch.id, leafIndex). LeafData is the event's
// leaf data (audit.event.proof's canonical) on an event whose personal
// fields were pseudonymised or encrypted: the delivered fields are what
// reads show, and SHA-256(0x00 || leafData) is the leaf hash
// (docs/streams.md#verifying-a-delivered-event).
type Seal struct {
	BatchSeq int64  `json:"batchSeq"`
	BatchID  int64  `json:"batchId"`
	Leaf     int    `json:"leaf"`
	LeafData string `json:"leafData,omitempty"`
}

func sealOf(e audit.SealedEvent) Seal {
	return Seal{BatchSeq: e.Seal.BatchSeq, BatchID: e.Seal.BatchID, Leaf: e.Seal.Leaf, LeafData: string(e.LeafData)}
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
		return appendNative, nil
	case OCSF:
		return func(e audit.SealedEvent) ([]byte, error) { return json.Marshal(ocsfOf(e, o)) }, nil
	case CloudEvents:
		return func(e audit.SealedEvent) ([]byte, error) { return json.Marshal(cloudEventOf(e, o)) }, nil
	}
	return nil, fmt.Errorf("format %q: must be one of native, ocsf, cloudevents", name)
}

// appendNative returns the native encoding of e: the bytes json.Marshal
// gives for NativeEvent, written by contract.EventView.AppendJSON (the
// encoder of audit.export), which is several times cheaper.
func appendNative(e audit.SealedEvent) ([]byte, error) {
	var scratch bytes.Buffer
	b, err := contract.ViewOf(e.Event).AppendJSON(make([]byte, 0, 512), &scratch)
	if err != nil {
		return nil, err
	}
	b = append(b[:len(b)-1], `,"seal":{"batchSeq":`...) // b ends in the object's '}'
	b = strconv.AppendInt(b, e.Seal.BatchSeq, 10)
	b = append(b, `,"batchId":`...)
	b = strconv.AppendInt(b, e.Seal.BatchID, 10)
	b = append(b, `,"leaf":`...)
	b = strconv.AppendInt(b, int64(e.Seal.Leaf), 10)
	if e.LeafData != nil {
		b = append(b, `,"leafData":`...)
		b = contract.AppendJSONString(b, string(e.LeafData))
	}
	return append(b, '}', '}'), nil
}
