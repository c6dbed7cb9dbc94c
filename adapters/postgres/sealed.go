package postgres

import (
	"bytes"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// maxSealedDepth is the deepest nesting of arrays and objects (the
// sealed object itself counted) decodeSealed accepts: encoding/json's.
const maxSealedDepth = 10000

// decodeSealed decodes plain, the JSON text of sealed personal fields
// (audit_logs.personal once opened), into f as json.Unmarshal(plain, f)
// does, without reflection: keys matched as encoding/json matches them
// (exactly, else by Unicode simple case folding), the last of a repeated
// key kept, a null string left as it was, "d" kept as the raw text of its
// value (null included), other keys skipped, strings unescaped with
// invalid UTF-8 and lone surrogates turned into U+FFFD, and null as the
// whole text leaving f unchanged. Text that is not JSON, or a value of
// the wrong type, is an error naming the byte offset (and the field);
// when the text is not JSON that error is returned even if a type error
// came first, as json.Unmarshal does. The strings share one allocation
// when none needs unescaping; f.Details aliases plain.
func decodeSealed(plain []byte, f *sealedFields) error {
	d := sealedDecoder{jsonCursor: jsonCursor{b: plain}}
	err := d.top(f)
	if err == nil {
		err = d.typeErr
	}
	return err
}

// sealedDecoder is the state of one decodeSealed.
type sealedDecoder struct {
	jsonCursor
	// whole is plain as a string, made at the first string that needs no
	// unescaping; such strings are substrings of it.
	whole   string
	typeErr error
}

// sealedNames are the JSON names of the fields of sealedFields.
var sealedNames = [...][]byte{[]byte("u"), []byte("i"), []byte("a"), []byte("s"), []byte("d")}

func (d *sealedDecoder) syntax(what string) error {
	if d.i >= len(d.b) {
		return fmt.Errorf("personal fields: invalid JSON: unexpected end of input (%s)", what)
	}
	return fmt.Errorf("personal fields: invalid JSON at byte %d: %s, found %q", d.i, what, d.b[d.i])
}

// jsonCursor is a position i in the JSON text b, shared by the package's
// hand-written parsers (sealedDecoder, jsonbParser).
type jsonCursor struct {
	b []byte
	i int
}

// space skips the JSON white space at i.
func (c *jsonCursor) space() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (d *sealedDecoder) top(f *sealedFields) error {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		return d.end()
	}
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		if d.i >= len(d.b) {
			return d.syntax("want a JSON object")
		}
		start := d.i
		if err := d.value(0); err != nil {
			return err
		}
		if err := d.end(); err != nil {
			return err
		}
		return fmt.Errorf("personal fields: at byte %d: a JSON %s, want an object", start, kindOf(d.b[start]))
	}
	d.i++
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return d.end()
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return d.syntax("want a key (a string)")
		}
		key, err := d.key()
		if err != nil {
			return err
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return d.syntax("want ':' after a key")
		}
		d.i++
		d.space()
		if err := d.member(key, f); err != nil {
			return err
		}
		d.space()
		if d.i >= len(d.b) {
			return d.syntax("want ',' or '}' in the object")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return d.end()
		default:
			return d.syntax("want ',' or '}' in the object")
		}
	}
}

// end checks that only white space is left.
func (d *sealedDecoder) end() error {
	d.space()
	if d.i < len(d.b) {
		return d.syntax("want the end after the object")
	}
	return nil
}

// field returns the letter of the field of sealedFields key names (the
// key unescaped), or 0 for another key.
func field(key []byte) byte {
	if len(key) > 2 {
		return 0 // every name folding to a one-letter name has at most 2 bytes
	}
	for _, n := range sealedNames {
		if bytes.Equal(key, n) {
			return n[0]
		}
	}
	for _, n := range sealedNames {
		if bytes.EqualFold(key, n) {
			return n[0]
		}
	}
	return 0
}

// fieldName is the name of a field in errors.
func fieldName(c byte) string {
	switch c {
	case 'u':
		return `"u" (userId)`
	case 'i':
		return `"i" (ipAddress)`
	case 'a':
		return `"a" (userAgent)`
	default:
		return `"s" (sessionId)`
	}
}

// member decodes the value of key, at d.i, into f.
func (d *sealedDecoder) member(key []byte, f *sealedFields) error {
	c := field(key)
	start := d.i
	if d.i >= len(d.b) {
		return d.syntax("want a value")
	}
	switch {
	case c == 0:
		return d.value(1)
	case c == 'd':
		if err := d.value(1); err != nil {
			return err
		}
		f.Details = d.b[start:d.i:d.i]
		return nil
	case d.b[d.i] == '"':
		s, err := d.text()
		if err != nil {
			return err
		}
		switch c {
		case 'u':
			f.UserID = s
		case 'i':
			f.IPAddress = s
		case 'a':
			f.UserAgent = s
		default:
			f.SessionID = s
		}
		return nil
	case d.b[d.i] == 'n':
		return d.literal("null")
	}
	if err := d.value(1); err != nil {
		return err
	}
	if d.typeErr == nil {
		d.typeErr = fmt.Errorf("personal fields: at byte %d: %s is a JSON %s, want a string", start, fieldName(c), kindOf(d.b[start]))
	}
	return nil
}

func kindOf(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// value checks one JSON value at d.i (at nesting depth, the sealed
// object being 1) and moves past it.
func (d *sealedDecoder) value(depth int) error {
	if d.i >= len(d.b) {
		return d.syntax("want a value")
	}
	switch c := d.b[d.i]; c {
	case '{', '[':
		if depth+1 > maxSealedDepth {
			return d.syntax("nested too deep")
		}
		return d.composite(c, depth+1)
	case '"':
		_, _, err := d.str()
		return err
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return d.number()
		}
		return d.syntax("want a value")
	}
}

// composite checks the object or array opened by open at d.i.
func (d *sealedDecoder) composite(open byte, depth int) error {
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	d.i++
	d.space()
	if d.i < len(d.b) && d.b[d.i] == closing {
		d.i++
		return nil
	}
	for {
		d.space()
		if open == '{' {
			if d.i >= len(d.b) || d.b[d.i] != '"' {
				return d.syntax("want a key (a string)")
			}
			if _, _, err := d.str(); err != nil {
				return err
			}
			d.space()
			if d.i >= len(d.b) || d.b[d.i] != ':' {
				return d.syntax("want ':' after a key")
			}
			d.i++
			d.space()
		}
		if err := d.value(depth); err != nil {
			return err
		}
		d.space()
		if d.i >= len(d.b) {
			return d.syntax("want ',' or the end of the " + kindOf(open))
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case closing:
			d.i++
			return nil
		default:
			return d.syntax("want ',' or the end of the " + kindOf(open))
		}
	}
}

func (d *sealedDecoder) literal(word string) error {
	for j := 0; j < len(word); j++ {
		if d.i >= len(d.b) || d.b[d.i] != word[j] {
			return d.syntax("want " + word)
		}
		d.i++
	}
	return nil
}

// number checks a JSON number at d.i.
func (d *sealedDecoder) number() error {
	digits := func() int {
		n := 0
		for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case digits() == 0:
		return d.syntax("want a digit")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return d.syntax("want a digit after '.'")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return d.syntax("want a digit in the exponent")
		}
	}
	return nil
}

// str checks the string at d.i and moves past it: it returns the span
// of its text between the quotes and whether that text is to be
// unescaped (an escape or a byte that is not valid UTF-8).
func (d *sealedDecoder) str() (start int, plain bool, err error) {
	d.i++
	start, plain = d.i, true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return start, plain, nil
		case c == '\\':
			plain = false
			d.i++
			if d.i >= len(d.b) {
				return 0, false, d.syntax("want an escape")
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				d.i++
				for range 4 {
					if d.i >= len(d.b) || !isHex(d.b[d.i]) {
						return 0, false, d.syntax(`want 4 hexadecimal digits after \u`)
					}
					d.i++
				}
			default:
				return 0, false, d.syntax("want an escape")
			}
		case c < ' ':
			return 0, false, d.syntax("want no control character in a string")
		case c < utf8.RuneSelf:
			d.i++
		default:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n == 1 {
				plain = false
			}
			d.i += n
		}
	}
	return 0, false, d.syntax("want the end of a string")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// key returns the key at d.i, unescaped (aliasing d.b when it needs no
// unescaping).
func (d *sealedDecoder) key() ([]byte, error) {
	start, plain, err := d.str()
	if err != nil {
		return nil, err
	}
	raw := d.b[start : d.i-1]
	if plain {
		return raw, nil
	}
	return unescape(raw), nil
}

// text returns the string value at d.i.
func (d *sealedDecoder) text() (string, error) {
	start, plain, err := d.str()
	if err != nil {
		return "", err
	}
	if !plain {
		return string(unescape(d.b[start : d.i-1])), nil
	}
	if start == d.i-1 {
		return "", nil
	}
	if d.whole == "" {
		d.whole = string(d.b)
	}
	return d.whole[start : d.i-1], nil
}

// unescape returns the text of a checked JSON string (between its quotes)
// as encoding/json unquotes it.
func unescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch e := s[i+1]; e {
			case 'b':
				out, i = append(out, '\b'), i+2
			case 'f':
				out, i = append(out, '\f'), i+2
			case 'n':
				out, i = append(out, '\n'), i+2
			case 'r':
				out, i = append(out, '\r'), i+2
			case 't':
				out, i = append(out, '\t'), i+2
			case 'u':
				r := hex4(s[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if pair := utf16.DecodeRune(r, hex4(s[i+2:i+6])); pair != utf8.RuneError {
							out, i = utf8.AppendRune(out, pair), i+6
							break
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default: // '"', '\\', '/'
				out, i = append(out, e), i+2
			}
		case c < utf8.RuneSelf:
			out, i = append(out, c), i+1
		default:
			r, n := utf8.DecodeRune(s[i:])
			out, i = utf8.AppendRune(out, r), i+n
		}
	}
	return out
}

// hex4 is the value of 4 checked hexadecimal digits.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
