// Package format encodes stored events for the log streams: the native
// event JSON (contract.EventView), OCSF 1.1 and CloudEvents 1.0
// (docs/streams.md, "Formats"). Each encoding carries the event's seal
// (batch and leaf), so that a copy in a SIEM stays verifiable against the
// tamper evidence. The functions are pure: the same event and options
// give the same bytes.
package format

import (
	"bytes"
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

// Encoder appends the encoding of e to dst, in one format: one JSON
// value, the bytes encoding/json would give for the format's model
// (docs/streams.md, "Formats"), written without reflection or
// intermediate values. scratch is the encoder's working space for the
// details (reused from call to call, never shared between goroutines).
// It fails only on details that are not valid JSON or a time outside the
// years 0 to 9999, leaving dst's contents as they were.
type Encoder func(dst []byte, e *audit.SealedEvent, scratch *bytes.Buffer) ([]byte, error)

// New returns the encoder of format name, or an error naming the formats.
func New(name string, o Options) (Encoder, error) {
	if o.Source == "" {
		o.Source = DefaultSource
	}
	switch name {
	case Native:
		return appendNative, nil
	case OCSF:
		// The product is the same for every event: written once.
		product := []byte(`{"name":"auditq","vendor_name":"auditq"`)
		if o.ProductVersion != "" {
			product = contract.AppendJSONString(append(product, `,"version":`...), o.ProductVersion)
		}
		product = append(product, '}')
		return func(dst []byte, e *audit.SealedEvent, scratch *bytes.Buffer) ([]byte, error) {
			return appendOCSF(dst, e, product, scratch)
		}, nil
	case CloudEvents:
		source := contract.AppendJSONString(nil, o.Source)
		return func(dst []byte, e *audit.SealedEvent, scratch *bytes.Buffer) ([]byte, error) {
			return appendCloudEvent(dst, e, source, scratch)
		}, nil
	}
	return nil, fmt.Errorf("format %q: must be one of native, ocsf, cloudevents", name)
}

// appendSeal appends the seal object of e: {"batchSeq", "batchId",
// "leaf"} and, when e has leaf data, "leafData" (the event's leaf data as
// audit.event.proof's canonical, on an event whose personal fields were
// pseudonymised or encrypted: SHA-256(0x00 || leafData) is the leaf hash,
// docs/streams.md#verifying-a-delivered-event).
func appendSeal(b []byte, e *audit.SealedEvent) []byte {
	b = append(b, `{"batchSeq":`...)
	b = strconv.AppendInt(b, e.Seal.BatchSeq, 10)
	b = append(b, `,"batchId":`...)
	b = strconv.AppendInt(b, e.Seal.BatchID, 10)
	b = append(b, `,"leaf":`...)
	b = strconv.AppendInt(b, int64(e.Seal.Leaf), 10)
	if len(e.LeafData) > 0 {
		b = append(b, `,"leafData":`...)
		b = contract.AppendJSONString(b, string(e.LeafData))
	}
	return append(b, '}')
}

// appendNative appends the native encoding of e: the event as
// audit.query returns it (contract.EventView, written by its AppendJSON,
// the encoder of audit.export) with "seal" (appendSeal) as its last
// member.
func appendNative(dst []byte, e *audit.SealedEvent, scratch *bytes.Buffer) ([]byte, error) {
	start := len(dst)
	b, err := contract.ViewOf(e.Event).AppendJSON(dst, scratch)
	if err != nil {
		return b[:start], err
	}
	b = append(b[:len(b)-1], `,"seal":`...) // b ends in the object's '}'
	return append(appendSeal(b, e), '}'), nil
}
