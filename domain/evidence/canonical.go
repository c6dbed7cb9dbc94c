package evidence

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// AppendCanonicalEvent appends the canonical encoding of e: the RFC 8785
// (JCS) serialisation of a JSON object holding the event's fields under
// their camelCase names, in JCS key order (action, details, errorMessage,
// id, ipAddress, occurredAt, personal, receivedAt, requestId, resourceId,
// resourceType, sessionId, success, tenant, userAgent, userId,
// userPseudonym).
// personal (the sealed personal fields, standard base64) and
// userPseudonym appear only in the stored form of events written with
// personal data pseudonymised or encrypted (docs/personal-data.md), so
// the encoding of every other event is unchanged; tenant appears only
// for an event of a tenant other than the default (docs/tenants.md), so
// that moving an event to another tenant breaks its proof. Absent optional
// fields (empty strings, nil details) are left out; times are UTC with
// exactly six fractional digits ("2026-11-24T13:45:00.123000Z"); details
// is canonicalised with audit.AppendCanonicalJSON (see
// Event.AppendCanonicalDetails); ipAddress is the text of
// the parsed address (RFC 5952 for IPv6). It returns an error when details
// is not canonicalisable JSON.
func AppendCanonicalEvent(dst []byte, e audit.Event) ([]byte, error) {
	dst = append(dst, `{"action":`...)
	dst = audit.AppendJCSString(dst, e.Action)
	if e.Details != nil {
		dst = append(dst, `,"details":`...)
		var err error
		if dst, err = e.AppendCanonicalDetails(dst); err != nil {
			return dst, fmt.Errorf("details: %w", err)
		}
	}
	dst = optional(dst, `,"errorMessage":`, e.ErrorMessage)
	dst = append(dst, `,"id":`...)
	dst = audit.AppendJCSString(dst, e.ID)
	dst = optional(dst, `,"ipAddress":`, e.IPAddress)
	dst = append(dst, `,"occurredAt":"`...)
	dst = AppendTime(dst, e.OccurredAt)
	dst = append(dst, '"')
	if e.Personal != nil {
		dst = append(dst, `,"personal":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, e.Personal)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"receivedAt":"`...)
	dst = AppendTime(dst, e.ReceivedAt)
	dst = append(dst, '"')
	dst = optional(dst, `,"requestId":`, e.RequestID)
	dst = append(dst, `,"resourceId":`...)
	dst = audit.AppendJCSString(dst, e.ResourceID)
	dst = append(dst, `,"resourceType":`...)
	dst = audit.AppendJCSString(dst, e.ResourceType)
	dst = optional(dst, `,"sessionId":`, e.SessionID)
	if e.Success {
		dst = append(dst, `,"success":true`...)
	} else {
		dst = append(dst, `,"success":false`...)
	}
	dst = optional(dst, `,"tenant":`, e.Tenant)
	dst = optional(dst, `,"userAgent":`, e.UserAgent)
	dst = optional(dst, `,"userId":`, e.UserID)
	dst = optional(dst, `,"userPseudonym":`, e.Pseudonym)
	return append(dst, '}'), nil
}

func optional(dst []byte, key, val string) []byte {
	if val == "" {
		return dst
	}
	dst = append(dst, key...)
	return audit.AppendJCSString(dst, val)
}

// TimeLayout is the canonical text of a time: UTC, microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// AppendTime appends t in UTC as TimeLayout, truncated to microseconds.
func AppendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	h, mi, s := t.Clock()
	var b [len(TimeLayout)]byte
	digits(b[0:4], y)
	b[4] = '-'
	digits(b[5:7], int(mo))
	b[7] = '-'
	digits(b[8:10], d)
	b[10] = 'T'
	digits(b[11:13], h)
	b[13] = ':'
	digits(b[14:16], mi)
	b[16] = ':'
	digits(b[17:19], s)
	b[19] = '.'
	digits(b[20:26], t.Nanosecond()/1000)
	b[26] = 'Z'
	return append(dst, b[:]...)
}

// FormatTime returns t as TimeLayout text.
func FormatTime(t time.Time) string { return string(AppendTime(nil, t)) }

// digits writes v (not negative) into b in decimal, zero-padded to len(b).
func digits(b []byte, v int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// LeafHash returns the Merkle leaf hash of canonical event data:
// SHA-256(0x00 || data) (RFC 6962).
func LeafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// EventHasher computes leaf hashes of events, reusing one buffer. It is not
// safe for concurrent use; use one per goroutine.
type EventHasher struct {
	buf []byte
}

// Leaf returns the leaf hash of e and its canonical encoding (valid until
// the next call). It returns an error when e's details are not
// canonicalisable.
func (h *EventHasher) Leaf(e audit.Event) (Hash, []byte, error) {
	var err error
	h.buf, err = AppendCanonicalEvent(append(h.buf[:0], 0), e)
	if err != nil {
		return Hash{}, nil, err
	}
	return sha256.Sum256(h.buf), h.buf[1:], nil
}
