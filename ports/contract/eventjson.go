package contract

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/auditq/auditq/domain/audit"
)

// AppendJSON appends v as encoding/json marshals it (the JSON of
// audit.event.get, byte for byte: the same field order, omissions and
// escapes, details compacted), without reflection; scratch is reused for
// the details. It fails only when the details are not valid JSON or a time
// is outside the years 0 to 9999.
func (v EventView) AppendJSON(dst []byte, scratch *bytes.Buffer) ([]byte, error) {
	dst = append(dst, `{"id":`...)
	dst = appendJSONString(dst, v.ID)
	dst = append(dst, `,"userId":`...)
	if v.UserID == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendJSONString(dst, *v.UserID)
	}
	dst = appendField(dst, "action", v.Action, false)
	dst = appendField(dst, "resourceType", v.ResourceType, false)
	dst = appendField(dst, "resourceId", v.ResourceID, false)
	if len(v.Details) > 0 {
		var err error
		if dst, err = AppendJSONRaw(append(dst, `,"details":`...), v.Details, scratch); err != nil {
			return dst, err
		}
	}
	dst = appendField(dst, "ipAddress", v.IPAddress, true)
	dst = appendField(dst, "userAgent", v.UserAgent, true)
	dst = appendField(dst, "sessionId", v.SessionID, true)
	dst = appendField(dst, "requestId", v.RequestID, true)
	if v.Success {
		dst = append(dst, `,"success":true`...)
	} else {
		dst = append(dst, `,"success":false`...)
	}
	dst = appendField(dst, "errorMessage", v.ErrorMessage, true)
	var err error
	if dst, err = AppendJSONTime(append(dst, `,"timestamp":`...), v.Timestamp); err != nil {
		return dst, err
	}
	if dst, err = AppendJSONTime(append(dst, `,"receivedAt":`...), v.ReceivedAt); err != nil {
		return dst, err
	}
	dst = appendField(dst, "userPseudonym", v.UserPseudonym, true)
	if v.Erased {
		dst = append(dst, `,"erased":true`...)
	}
	dst = appendField(dst, "tenant", v.Tenant, true)
	return append(dst, '}'), nil
}

func appendField(dst []byte, name, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendJSONString(dst, value)
}

// AppendJSONTime appends t as time.Time.MarshalJSON writes it (RFC 3339
// with sub-second digits, quoted), without allocating; it fails, leaving
// dst as it was, when t's year is outside 0 to 9999.
func AppendJSONTime(dst []byte, t time.Time) ([]byte, error) {
	b, err := t.AppendText(append(dst, '"'))
	if err != nil {
		return dst, err
	}
	return append(b, '"'), nil
}

// AppendJSONRaw appends the JSON value raw as encoding/json marshals a
// json.RawMessage: compacted, with < > & U+2028 U+2029 escaped; scratch
// holds the compacted value meanwhile. It fails, leaving dst as it was,
// when raw is not valid JSON.
func AppendJSONRaw(dst []byte, raw []byte, scratch *bytes.Buffer) ([]byte, error) {
	scratch.Reset()
	if audit.ValidJSON(raw) { // the fast check; json.Compact names the error
		scratch.Grow(len(raw))
		return appendHTMLEscaped(dst, appendCompactValid(scratch.AvailableBuffer(), raw)), nil
	}
	if err := json.Compact(scratch, raw); err != nil {
		return dst, err
	}
	return appendHTMLEscaped(dst, scratch.Bytes()), nil
}

// appendCompactValid appends raw, valid JSON, without the white space
// between its tokens: json.Compact's result, without its byte-by-byte
// state machine.
func appendCompactValid(dst, raw []byte) []byte {
	start, inString := 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped character cannot end the string
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			dst = append(dst, raw[start:i]...)
			start = i + 1
		}
	}
	return append(dst, raw[start:]...)
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes appendJSONString copies as they are.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for b := byte(0x20); b < utf8.RuneSelf; b++ {
		safe[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return safe
}()

// AppendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (see appendJSONString).
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }

// AppendJSONStringContent appends s escaped as in a JSON string, without
// the quotes: several of them between two quotes make one string, the
// string of their concatenation when each ends in valid UTF-8 or an ASCII
// character comes between them.
func AppendJSONStringContent(dst []byte, s string) []byte { return appendEscaped(dst, s) }

// appendJSONString appends s as a JSON string the way encoding/json does
// with HTML escaping (its default): \" \\ \b \f \n \r \t, other control
// characters and < > & as \u00XX, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 as \u2028 and \u2029.
func appendJSONString(dst []byte, s string) []byte {
	return append(appendEscaped(append(dst, '"'), s), '"')
}

// appendEscaped appends s escaped as appendJSONString does, unquoted.
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// appendHTMLEscaped appends compact JSON with < > & U+2028 U+2029 escaped,
// as encoding/json does to a json.RawMessage.
func appendHTMLEscaped(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '<' || c == '>' || c == '&' {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		}
		// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
		if c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8 {
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
			start = i + 3
		}
	}
	return append(dst, src[start:]...)
}
