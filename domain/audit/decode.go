package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// DecodeEvent parses and validates one event as published on audit.log: a
// JSON object with camelCase fields. It returns a *ValidationError naming the
// first field that breaks a rule.
func DecodeEvent(data []byte, r Receipt) (Event, error) {
	return decodeEvent("", data, false, r)
}

// DecodeEventShared is DecodeEvent for a payload that is handed over to
// the event: the event's strings share data's bytes instead of a copy of
// them, so data must never change afterwards (as a NATS message's
// payload, which nats.go allocates for each message, never does). It
// saves a copy of the payload per event.
func DecodeEventShared(data []byte, r Receipt) (Event, error) {
	return decodeEvent("", data, true, r)
}

// Rejection is one event of a bulk message that failed validation.
type Rejection struct {
	Index int             `json:"index"`
	Error string          `json:"error"`
	Raw   json.RawMessage `json:"-"` // the event as sent, for the poison stream
	// Tenant is the tenant of the bulk message's subject, so that a
	// replay of the rejected event goes to that tenant's subject.
	Tenant string `json:"-"`
}

// DecodeBulk parses an audit.bulk message, {"events":[...]}, with at most
// maxEvents events. Each valid event is returned with its index in the
// message; each invalid one becomes a Rejection and does not affect the
// others. The error is a *ValidationError when the envelope itself is
// unusable (not an object, no events array, too many events).
func DecodeBulk(data []byte, maxEvents int, r Receipt) (events []Event, rejected []Rejection, err error) {
	var list json.RawMessage
	err = decodeObject("", data, func(key string, raw json.RawMessage) error {
		if key != "events" {
			return Invalid(key, "unknown field")
		}
		list = raw
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if list == nil || isNull(list) {
		return nil, nil, Invalid("events", "is required: an array of events")
	}
	if list[0] != '[' {
		return nil, nil, Invalid("events", "must be an array of events, got %s", kindOf(list))
	}
	// decodeObject returned nil, so the whole message is valid JSON.
	var items []json.RawMessage
	for i := skipSpace(list, 1); list[i] != ']'; {
		end := skipValue(list, i)
		items = append(items, list[i:end:end])
		if i = skipSpace(list, end); list[i] == ',' {
			i = skipSpace(list, i+1)
		}
	}
	if len(items) == 0 {
		return nil, nil, Invalid("events", "must hold at least one event")
	}
	if len(items) > maxEvents {
		return nil, nil, Invalid("events", "holds %d events, more than the limit of %d", len(items), maxEvents)
	}
	base := r.FallbackID
	for i, item := range items {
		ri := r
		ri.FallbackID = base + ":" + strconv.Itoa(i)
		ev, err := decodeEvent(fmt.Sprintf("events[%d].", i), item, false, ri)
		if err != nil {
			rejected = append(rejected, Rejection{Index: i, Error: err.Error(), Raw: item})
			continue
		}
		events = append(events, ev)
	}
	return events, rejected, nil
}

// decodeEvent decodes one event object; prefix is prepended to field names
// in errors ("events[3]." inside a bulk message); shared: the event's
// strings may share data's bytes (DecodeEventShared).
func decodeEvent(prefix string, data []byte, shared bool, r Receipt) (Event, error) {
	ev := Event{Success: true, ReceivedAt: Normalize(r.ReceivedAt)}
	var hasTimestamp bool
	err := decodeMembers(strings.TrimSuffix(prefix, "."), data, shared, func(key string, raw json.RawMessage, str string) error {
		f := key
		if prefix != "" {
			f = prefix + key
		}
		var err error
		switch key {
		case "id":
			ev.ID, err = text(f, str, MaxIDLen, textSingleLine)
		case "userId":
			ev.UserID, err = identifier(f, str)
		case "action":
			ev.Action, err = text(f, str, MaxNameLen, textSingleLine)
		case "resourceType":
			ev.ResourceType, err = text(f, str, MaxNameLen, textSingleLine)
		case "resourceId":
			ev.ResourceID, err = identifier(f, str)
		case "details":
			var canon json.RawMessage
			if ev.Details, canon, err = details(f, raw); err == nil {
				ev.setCanonicalDetails(canon)
			}
		case "ipAddress":
			var s string
			if s, err = text(f, str, 64, textSingleLine); err == nil && s != "" {
				var ok bool
				if ev.IPAddress, ok = parseIP(s); !ok {
					err = Invalid(f, "must be an IPv4 or IPv6 address without zone, got %q", s)
				}
			}
		case "userAgent":
			ev.UserAgent, err = text(f, str, MaxUserAgentLen, textSingleLine)
		case "sessionId":
			ev.SessionID, err = text(f, str, MaxIDLen, textSingleLine)
		case "requestId":
			ev.RequestID, err = text(f, str, MaxIDLen, textSingleLine)
		case "success":
			switch str {
			case "true":
				ev.Success = true
			case "false":
				ev.Success = false
			default:
				err = Invalid(f, "must be true or false, got %s", kindOf(raw))
			}
		case "errorMessage":
			ev.ErrorMessage, err = text(f, str, MaxErrorMessageLen, textMultiLine)
		case "timestamp":
			hasTimestamp = !isNull(raw)
			if hasTimestamp {
				ev.OccurredAt, err = timestamp(f, str, ev.ReceivedAt, r.skew())
			}
		default:
			err = Invalid(f, "unknown field")
		}
		return err
	})
	if err != nil {
		return Event{}, err
	}
	for _, req := range []struct{ name, val string }{
		{"action", ev.Action}, {"resourceType", ev.ResourceType}, {"resourceId", ev.ResourceID},
	} {
		if req.val == "" {
			return Event{}, Invalid(prefix+req.name, "is required: a non-empty string")
		}
	}
	if !hasTimestamp {
		ev.OccurredAt = ev.ReceivedAt
	}
	if ev.ID == "" {
		if r.FallbackID == "" {
			return Event{}, Invalid(prefix+"id", "is required when the message carries no Nats-Msg-Id")
		}
		// The fallback is a header any publisher can set to any bytes: it
		// must keep the rules of the id field, or a Nats-Msg-Id with a
		// control character would be stored, and one with invalid UTF-8
		// would fail in the database with a reason naming no field.
		if !utf8.ValidString(r.FallbackID) {
			return Event{}, Invalid(prefix+"id", "is absent and the message id (Nats-Msg-Id) is not valid UTF-8")
		}
		if err := checkText(prefix+"id", r.FallbackID, MaxIDLen, textSingleLine); err != nil {
			var v *ValidationError
			errors.As(err, &v)
			return Event{}, Invalid(prefix+"id", "is absent and the message id (Nats-Msg-Id) %s", v.Rule)
		}
		ev.ID = r.FallbackID
	}
	return ev, nil
}

// decodeObject's fast path (validJSON, then scanObject) is kept over
// jsontext's Decoder (encoding/json/v2): BenchmarkDecodeEvent ran 1.14x
// faster with it than with decodeObject replaced by decodeObjectJSONText
// (jsontext_cmp_test.go), and BenchmarkJSONDecodeObject measured the walk
// alone as a tie. Invalid input goes through encoding/json either way,
// whose error texts the rules repeat.

// decodeObject walks the members of one JSON object, calling fn with each key
// and raw value. It rejects non-objects, duplicate keys and trailing data.
// Well-formed input takes a fast, allocation-light scan (validJSON, then
// scanObject); anything else goes
// through encoding/json's decoder, whose errors say where the input broke.
func decodeObject(path string, data []byte, fn func(key string, raw json.RawMessage) error) error {
	return decodeMembers(path, data, false, func(key string, raw json.RawMessage, _ string) error { return fn(key, raw) })
}

// decodeMembers is decodeObject whose fn also gets each value's text as a
// string. On the fast path the keys and those strings are substrings of
// one copy of data, so that a string value without escapes costs no
// allocation of its own (an event's dozen keys and strings cost one);
// shared: substrings of data itself, which then must never change.
func decodeMembers(path string, data []byte, shared bool, fn func(key string, raw json.RawMessage, str string) error) error {
	if !utf8.Valid(data) {
		return invalidUTF8(path, data)
	}
	if validJSON(data) {
		if shared {
			return scanObject(path, data, unsafe.String(unsafe.SliceData(data), len(data)), fn)
		}
		return scanObject(path, data, string(data), fn)
	}
	return decodeObjectSlow(path, data, fn)
}

// maxKeyLabel is the most characters of a sender's member name that an
// error repeats.
const maxKeyLabel = 64

// keyLabel is how a member name the sender chose appears in field paths
// (and so in errors, poison headers and logs): as is when it is a short
// printable name, as every known field is; quoted (Go syntax) and cut to
// maxKeyLabel characters when it is empty, holds control characters or
// invalid UTF-8, or is long, so that an empty key does not give the field
// name "" and a huge unknown key is not repeated in full in the poison
// reason header.
func keyLabel(key string) string {
	if printableASCII(key) {
		return key // every known field
	}
	if key != "" && len(key) <= maxKeyLabel && utf8.ValidString(key) {
		printable := true
		for _, c := range key {
			if !strconv.IsPrint(c) {
				printable = false
				break
			}
		}
		if printable {
			return key
		}
	}
	cut, more := key, ""
	if n := 0; len(key) > maxKeyLabel {
		for i := range key {
			if n == maxKeyLabel {
				cut, more = key[:i], "..."
				break
			}
			n++
		}
	}
	return strconv.Quote(cut) + more
}

// printableASCII reports whether key is a non-empty name of at most
// maxKeyLabel printable ASCII characters.
func printableASCII(key string) bool {
	return key != "" && len(key) <= maxKeyLabel && plainASCII(key)
}

func where(path string) string {
	if path == "" {
		return "(message)"
	}
	return path
}

func member(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scanObject walks an object already known to be valid JSON; src holds
// data's text, of which the keys and fn's strings are substrings.
func scanObject(path string, data []byte, src string, fn func(key string, raw json.RawMessage, str string) error) error {
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return Invalid(where(path), "must be a JSON object, got %s", kindOf(data[i:]))
	}
	var seenBuf [16]string
	seen := seenBuf[:0]
	i = skipSpace(data, i+1)
	for data[i] != '}' {
		end := skipString(data, i)
		key := unquote(src[i:end])
		for _, k := range seen {
			if k == key {
				return Invalid(member(path, keyLabel(key)), "appears more than once")
			}
		}
		seen = append(seen, key)
		key = keyLabel(key)
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // the colon
		end = skipValue(data, i)
		if err := fn(key, data[i:end:end], src[i:end]); err != nil {
			return err
		}
		i = skipSpace(data, end)
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at data[i].
func skipString(data []byte, i int) int {
	for i++; ; i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index after the value starting at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch data[i] {
			case '"':
				i = skipString(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	default:
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// unquote decodes a valid JSON string literal; the common case without
// escapes is a substring of raw (no allocation).
func unquote(raw string) string {
	body := raw[1 : len(raw)-1]
	if strings.IndexByte(body, '\\') < 0 {
		return body
	}
	var s string
	_ = json.Unmarshal([]byte(raw), &s)
	return s
}

// decodeObjectSlow is decodeObject for input that is not valid JSON: it
// walks with encoding/json to report where and why.
func decodeObjectSlow(path string, data []byte, fn func(key string, raw json.RawMessage, str string) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return Invalid(where(path), "must be a JSON object: %v", syntaxMessage(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Invalid(where(path), "must be a JSON object, got %s", tokenKind(tok))
	}
	seen := make(map[string]struct{}, 16)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Invalid(where(path), "is not valid JSON: %v", syntaxMessage(err))
		}
		key, _ := tok.(string)
		if _, dup := seen[key]; dup {
			return Invalid(member(path, keyLabel(key)), "appears more than once")
		}
		seen[key] = struct{}{}
		key = keyLabel(key)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Invalid(member(path, key), "is not valid JSON: %v", syntaxMessage(err))
		}
		if err := fn(key, raw, string(raw)); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return Invalid(where(path), "is not valid JSON: %v", syntaxMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Invalid(where(path), "has data after the JSON object")
	}
	return Invalid(where(path), "is not valid JSON")
}

// invalidUTF8 names the first top-level field whose bytes are not UTF-8.
func invalidUTF8(path string, data []byte) error {
	where := path
	if where == "" {
		where = "(message)"
	}
	// Best effort to name the field: find the last key before the bad byte.
	bad := 0
	for bad < len(data) {
		r, size := utf8.DecodeRune(data[bad:])
		if r == utf8.RuneError && size <= 1 {
			break
		}
		bad += size
	}
	head := data[:bad]
	if i := bytes.LastIndex(head, []byte(`":`)); i > 0 {
		if j := bytes.LastIndexByte(head[:i], '"'); j >= 0 {
			key := keyLabel(string(head[j+1 : i]))
			if path != "" {
				key = path + "." + key
			}
			return Invalid(key, "is not valid UTF-8 (byte offset %d)", bad)
		}
	}
	return Invalid(where, "is not valid UTF-8 (byte offset %d)", bad)
}

type textKind int

const (
	textSingleLine textKind = iota // no control characters at all
	textMultiLine                  // tabs and line breaks allowed
)

// text decodes an optional string field: absent or null gives "", and so
// does the empty string (documented: empty optional fields are stored NULL).
func text(field string, raw string, maxLen int, kind textKind) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	if raw[0] != '"' {
		return "", Invalid(field, "must be a string, got %s", kindOf(raw))
	}
	s := unquote(raw)
	return s, checkText(field, s, maxLen, kind)
}

func checkText(field, s string, maxLen int, kind textKind) error {
	if len(s) <= maxLen && plainASCII(s) {
		return nil // the common case, in one pass over the bytes
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return Invalid(field, "is %d characters long, more than the limit of %d", n, maxLen)
	}
	for i, c := range s {
		switch {
		case c == 0:
			return Invalid(field, "must not contain NUL characters (at character offset %d)", i)
		case c < 0x20 || c == 0x7f:
			if kind == textMultiLine && (c == '\n' || c == '\r' || c == '\t') {
				continue
			}
			return Invalid(field, "must not contain control characters (U+%04X at byte offset %d)", c, i)
		}
	}
	return nil
}

// plainASCII reports whether s holds only ASCII characters that are not
// control characters.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// identifier decodes userId or resourceId: a string, or a JSON integer
// (kept as its decimal text) since many systems number their users and
// resources. resourceId 0 is a valid id.
func identifier(field string, raw string) (string, error) {
	if len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		s := raw
		if strings.ContainsAny(s, ".eE") {
			return "", Invalid(field, "must be a string or an integer, got the number %s", s)
		}
		if len(s) > 40 {
			return "", Invalid(field, "must be a string or an integer of at most 40 digits")
		}
		return s, nil
	}
	return text(field, raw, MaxIDLen, textSingleLine)
}

func timestamp(field string, raw string, received time.Time, skew time.Duration) (time.Time, error) {
	if raw[0] != '"' {
		return time.Time{}, Invalid(field, "must be an RFC 3339 string such as \"2026-11-24T13:45:00Z\", got %s", kindOf(raw))
	}
	s := unquote(raw)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, Invalid(field, "must be an RFC 3339 time such as \"2026-11-24T13:45:00Z\", got %q", truncate(s, 64))
	}
	t = Normalize(t)
	if t.Before(Earliest) {
		return time.Time{}, Invalid(field, "is before 1970-01-01T00:00:00Z")
	}
	if t.After(received.Add(skew)) {
		return time.Time{}, Invalid(field, "is more than %s after the time it was received (%s)", skew, received.Format(time.RFC3339))
	}
	return t, nil
}

// details accepts a JSON object (or null, meaning none) within the size and
// depth limits, free of NUL characters, which Postgres jsonb rejects, and
// that can be canonicalised. It returns a copy of raw and its canonical
// form (RFC 8785), which the tamper-evidence hash uses.
func details(field string, raw json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	if isNull(raw) {
		return nil, nil, nil
	}
	if raw[0] != '{' {
		return nil, nil, Invalid(field, "must be a JSON object, got %s", kindOf(raw))
	}
	if len(raw) > MaxDetailsBytes {
		return nil, nil, Invalid(field, "is %d bytes, more than the limit of %d", len(raw), MaxDetailsBytes)
	}
	if err := scanDetails(field, raw); err != nil {
		return nil, nil, err
	}
	buf := checkBufs.Get().(*[]byte)
	defer checkBufs.Put(buf)
	canon, err := AppendCanonicalJSON((*buf)[:0], raw)
	if cap(canon) <= 64<<10 {
		*buf = canon[:0]
	}
	switch {
	case errors.Is(err, ErrInexactNumber):
		return nil, nil, Invalid(field, "%v (a number must be exactly an IEEE 754 double in its shortest form: at most 17 significant digits, magnitude below 1.8e308; send other numbers as strings)", errors.Unwrap(err))
	case err != nil:
		return nil, nil, Invalid(field, "%s", strings.TrimPrefix(err.Error(), "canonical JSON at "))
	}
	// One allocation for both: the text as sent, then its canonical form.
	out := make([]byte, 0, len(raw)+len(canon))
	out = append(append(out, raw...), canon...)
	return out[:len(raw):len(raw)], out[len(raw):], nil
}

// checkBufs keeps the canonicalisation buffers of details between calls.
var checkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// scanDetails checks nesting depth and looks for \u0000 escapes. raw is
// known to be valid JSON.
func scanDetails(field string, raw []byte) error {
	depth, inString := 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch c {
			case '\\':
				if raw[i+1] == 'u' && string(raw[i+2:i+6]) == "0000" {
					return Invalid(field, "must not contain NUL characters (\\u0000 at byte offset %d)", i)
				}
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > MaxDetailsDepth {
				return Invalid(field, "is nested more than %d levels deep", MaxDetailsDepth)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

func isNull[T ~string | ~[]byte](raw T) bool { return string(raw) == "null" }

// kindOf names the JSON type of a raw value for error messages.
func kindOf[T ~string | ~[]byte](raw T) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func tokenKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
		return "'" + t.String() + "'"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return "a number"
	}
}

func syntaxMessage(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
