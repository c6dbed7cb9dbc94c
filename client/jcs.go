package client

// This file is a copy of domain/audit/jcs.go in the auditq module (names
// unexported), which the client cannot import: the canonical form that
// decides whether a number in details is exact. TestClientRulesMatchService
// (ports/contract, auditq module) holds the two to the same decisions.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// appendCanonicalJSON appends to dst the RFC 8785 (JSON Canonicalization
// Scheme) form of the JSON value src: no insignificant whitespace, object
// members sorted by their keys' UTF-16 code units, strings with the minimal
// escapes of ECMAScript's JSON.stringify, numbers in ECMAScript's shortest
// round-trip form. It is strict where JCS would lose information: it
// returns an error for invalid JSON, a repeated key in an object, and a
// number that does not survive a round trip through an IEEE 754 double
// unchanged (see checkExactNumber), since two different stored values would
// then share one canonical form.
func appendCanonicalJSON(dst, src []byte) ([]byte, error) {
	c := scratchPool.Get().(*canonicalizer)
	defer scratchPool.Put(c)
	c.src, c.pos, c.depth = src, 0, 0
	c.key, c.tmp, c.members = c.key[:0], c.tmp[:0], c.members[:0]
	c.skipSpace()
	out, err := c.value(dst)
	if err != nil {
		return dst, err
	}
	c.skipSpace()
	if c.pos != len(src) {
		return dst, c.errorf("data after the JSON value")
	}
	return out, nil
}

type canonicalizer struct {
	src     []byte
	pos     int
	depth   int
	key     []byte      // scratch: decoded keys of the objects being built
	tmp     []byte      // scratch: reordering of object members
	str     []byte      // scratch: a decoded string value
	members []jcsMember // scratch: members of the objects being built, innermost last
}

// scratchPool keeps canonicalizers' scratch buffers between calls.
var scratchPool = sync.Pool{New: func() any { return new(canonicalizer) }}

type jcsMember struct {
	keyStart, keyEnd int // decoded key in c.key
	start, end       int // "key":value in dst
}

func (c *canonicalizer) errorf(format string, args ...any) error {
	return fmt.Errorf("canonical JSON at byte %d: %s", c.pos, fmt.Sprintf(format, args...))
}

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.src) {
		switch c.src[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canonicalizer) value(dst []byte) ([]byte, error) {
	if c.pos >= len(c.src) {
		return dst, c.errorf("unexpected end of input")
	}
	switch ch := c.src[c.pos]; {
	case ch == '{':
		return c.object(dst)
	case ch == '[':
		return c.array(dst)
	case ch == '"':
		if s, ok := c.plainString(); ok {
			return appendQuoted(dst, s), nil
		}
		var err error
		if c.str, err = c.string(c.str[:0]); err != nil {
			return dst, err
		}
		return appendJCSString(dst, c.str), nil
	case ch == 't':
		return c.literal(dst, "true")
	case ch == 'f':
		return c.literal(dst, "false")
	case ch == 'n':
		return c.literal(dst, "null")
	case ch == '-' || (ch >= '0' && ch <= '9'):
		return c.number(dst)
	default:
		return dst, c.errorf("unexpected character %q", ch)
	}
}

func (c *canonicalizer) literal(dst []byte, lit string) ([]byte, error) {
	if len(c.src)-c.pos < len(lit) || string(c.src[c.pos:c.pos+len(lit)]) != lit {
		return dst, c.errorf("invalid literal")
	}
	c.pos += len(lit)
	return append(dst, lit...), nil
}

func (c *canonicalizer) enter() error {
	c.depth++
	if c.depth > 10000 {
		return c.errorf("nested too deeply")
	}
	return nil
}

func (c *canonicalizer) array(dst []byte) ([]byte, error) {
	if err := c.enter(); err != nil {
		return dst, err
	}
	defer func() { c.depth-- }()
	c.pos++ // [
	dst = append(dst, '[')
	c.skipSpace()
	if c.pos < len(c.src) && c.src[c.pos] == ']' {
		c.pos++
		return append(dst, ']'), nil
	}
	for {
		var err error
		c.skipSpace()
		if dst, err = c.value(dst); err != nil {
			return dst, err
		}
		c.skipSpace()
		if c.pos >= len(c.src) {
			return dst, c.errorf("unexpected end of input in array")
		}
		switch c.src[c.pos] {
		case ',':
			c.pos++
			dst = append(dst, ',')
		case ']':
			c.pos++
			return append(dst, ']'), nil
		default:
			return dst, c.errorf("expected , or ] in array")
		}
	}
}

func (c *canonicalizer) object(dst []byte) ([]byte, error) {
	if err := c.enter(); err != nil {
		return dst, err
	}
	defer func() { c.depth-- }()
	c.pos++ // {
	base := len(dst)
	dst = append(dst, '{')
	keyBase, memBase := len(c.key), len(c.members)
	defer func() { c.key, c.members = c.key[:keyBase], c.members[:memBase] }()
	c.skipSpace()
	if c.pos < len(c.src) && c.src[c.pos] == '}' {
		c.pos++
		return append(dst, '}'), nil
	}
	for {
		c.skipSpace()
		if c.pos >= len(c.src) || c.src[c.pos] != '"' {
			return dst, c.errorf("expected a string key in object")
		}
		ks := len(c.key)
		m := jcsMember{keyStart: ks, start: len(dst)}
		if k, ok := c.plainString(); ok {
			c.key = append(c.key, k...)
			dst = appendQuoted(dst, k)
		} else {
			var err error
			if c.key, err = c.string(c.key); err != nil {
				return dst, err
			}
			dst = appendJCSString(dst, c.key[ks:])
		}
		m.keyEnd = len(c.key)
		c.skipSpace()
		if c.pos >= len(c.src) || c.src[c.pos] != ':' {
			return dst, c.errorf("expected : after object key")
		}
		c.pos++
		dst = append(dst, ':')
		c.skipSpace()
		var err error
		if dst, err = c.value(dst); err != nil {
			return dst, err
		}
		m.end = len(dst)
		c.members = append(c.members, m)
		c.skipSpace()
		if c.pos >= len(c.src) {
			return dst, c.errorf("unexpected end of input in object")
		}
		if c.src[c.pos] == '}' {
			c.pos++
			break
		}
		if c.src[c.pos] != ',' {
			return dst, c.errorf("expected , or } in object")
		}
		c.pos++
		dst = append(dst, ',')
	}
	members := c.members[memBase:]
	keyOf := func(m jcsMember) []byte { return c.key[m.keyStart:m.keyEnd] }
	sorted := true
	for i := 1; i < len(members); i++ {
		switch cmp := compareUTF16(keyOf(members[i-1]), keyOf(members[i])); {
		case cmp == 0:
			return dst, c.errorf("key %q appears more than once in an object", keyOf(members[i]))
		case cmp > 0:
			sorted = false
		}
	}
	if !sorted {
		order := members // sorted in place: only the offsets matter from here
		slices.SortFunc(order, func(a, b jcsMember) int { return compareUTF16(keyOf(a), keyOf(b)) })
		for i := 1; i < len(order); i++ {
			if compareUTF16(keyOf(order[i-1]), keyOf(order[i])) == 0 {
				return dst, c.errorf("key %q appears more than once in an object", keyOf(order[i]))
			}
		}
		c.tmp = append(c.tmp[:0], dst[base:]...)
		dst = append(dst[:base], '{')
		for i, m := range order {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, c.tmp[m.start-base:m.end-base]...)
		}
	}
	return append(dst, '}'), nil
}

// plainString is the fast path of string: when the JSON string at c.pos
// holds no escape and no control character and is valid UTF-8, its
// canonical form is its text as it stands. It then returns that text
// (without quotes) and moves past the string; otherwise it returns false
// and leaves c.pos alone.
func (c *canonicalizer) plainString() ([]byte, bool) {
	for i := c.pos + 1; i < len(c.src); i++ {
		switch ch := c.src[i]; {
		case ch == '"':
			s := c.src[c.pos+1 : i]
			if !utf8.Valid(s) {
				return nil, false
			}
			c.pos = i + 1
			return s, true
		case ch == '\\' || ch < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// appendQuoted appends s, a string plainString returned, in quotes: its
// canonical form.
func appendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// string decodes the JSON string at c.pos, appending its UTF-8 bytes to buf.
func (c *canonicalizer) string(buf []byte) ([]byte, error) {
	c.pos++ // opening quote
	for {
		start := c.pos
		for c.pos < len(c.src) {
			ch := c.src[c.pos]
			if ch == '"' || ch == '\\' || ch < 0x20 {
				break
			}
			c.pos++
		}
		if !utf8.Valid(c.src[start:c.pos]) {
			return buf, c.errorf("invalid UTF-8 in string")
		}
		buf = append(buf, c.src[start:c.pos]...)
		if c.pos >= len(c.src) {
			return buf, c.errorf("unterminated string")
		}
		switch ch := c.src[c.pos]; {
		case ch == '"':
			c.pos++
			return buf, nil
		case ch < 0x20:
			return buf, c.errorf("control character in string")
		}
		// backslash escape
		if c.pos+1 >= len(c.src) {
			return buf, c.errorf("unterminated escape")
		}
		esc := c.src[c.pos+1]
		c.pos += 2
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := c.hex4()
			if !ok {
				return buf, c.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if c.pos+1 < len(c.src) && c.src[c.pos] == '\\' && c.src[c.pos+1] == 'u' {
					c.pos += 2
					if r2, ok = c.hex4(); !ok {
						return buf, c.errorf("invalid \\u escape")
					}
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return buf, c.errorf("unpaired UTF-16 surrogate in string")
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return buf, c.errorf("invalid escape \\%c", esc)
		}
	}
}

func (c *canonicalizer) hex4() (rune, bool) {
	if len(c.src)-c.pos < 4 {
		return 0, false
	}
	var r rune
	for _, h := range c.src[c.pos : c.pos+4] {
		r <<= 4
		switch {
		case h >= '0' && h <= '9':
			r |= rune(h - '0')
		case h >= 'a' && h <= 'f':
			r |= rune(h - 'a' + 10)
		case h >= 'A' && h <= 'F':
			r |= rune(h - 'A' + 10)
		default:
			return 0, false
		}
	}
	c.pos += 4
	return r, true
}

func (c *canonicalizer) number(dst []byte) ([]byte, error) {
	start := c.pos
	if c.src[c.pos] == '-' {
		c.pos++
	}
	digits := func() int {
		n := 0
		for c.pos < len(c.src) && c.src[c.pos] >= '0' && c.src[c.pos] <= '9' {
			c.pos++
			n++
		}
		return n
	}
	intStart := c.pos
	if n := digits(); n == 0 || (n > 1 && c.src[intStart] == '0') {
		return dst, c.errorf("invalid number")
	}
	intEnd := c.pos
	if c.pos < len(c.src) && c.src[c.pos] == '.' {
		c.pos++
		if digits() == 0 {
			return dst, c.errorf("invalid number")
		}
	}
	if c.pos < len(c.src) && (c.src[c.pos] == 'e' || c.src[c.pos] == 'E') {
		c.pos++
		if c.pos < len(c.src) && (c.src[c.pos] == '+' || c.src[c.pos] == '-') {
			c.pos++
		}
		if digits() == 0 {
			return dst, c.errorf("invalid number")
		}
	}
	text := c.src[start:c.pos]
	if c.pos == intEnd && intEnd-intStart <= 15 {
		// A plain integer of at most 15 digits is exactly a double and
		// prints as itself (JSON has no leading zeros); "-0" prints as "0".
		if string(text) == "-0" {
			return append(dst, '0'), nil
		}
		return append(dst, text...), nil
	}
	f, err := checkExactNumber(text)
	if err != nil {
		return dst, fmt.Errorf("canonical JSON at byte %d: %w", start, err)
	}
	return appendES6Number(dst, f), nil
}

// errInexactNumber is wrapped by checkExactNumber's errors.
var errInexactNumber = errors.New("number does not survive a round trip through an IEEE 754 double")

// checkExactNumber parses a JSON number and returns it as a float64 when
// the number is exactly the value of the shortest decimal that round-trips
// that double (so 1.50, 15e-1 and 1.5 are accepted; 0.30000000000000001,
// 12345678901234567890 and 1e400 are not). Such numbers are stored
// (PostgreSQL jsonb keeps every digit) and hashed (RFC 8785 via a double)
// alike. The error wraps errInexactNumber.
func checkExactNumber(text []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%w: %s is out of range", errInexactNumber, truncate(string(text), 40))
	}
	neg, digits, exp, ok := decimalOf(text)
	if !ok {
		return 0, fmt.Errorf("%w: %s is not a JSON number", errInexactNumber, truncate(string(text), 40))
	}
	if len(digits) == 0 { // zero, in any spelling
		if f != 0 {
			return 0, fmt.Errorf("%w: %s", errInexactNumber, truncate(string(text), 40))
		}
		return 0, nil
	}
	var buf [32]byte
	short := strconv.AppendFloat(buf[:0], math.Abs(f), 'e', -1, 64)
	sneg := f < 0
	_, sdigits, sexp, _ := decimalOf(short)
	if neg != sneg || exp != sexp || string(digits) != string(sdigits) {
		return 0, fmt.Errorf("%w: %s (the nearest double is %s)", errInexactNumber, truncate(string(text), 40), appendES6Number(nil, f))
	}
	return f, nil
}

// decimalOf reads a JSON number (or strconv 'e' output) as sign, significant
// digits without leading or trailing zeros, and the exponent n such that the
// value is 0.digits x 10^n. Zero has no digits.
func decimalOf(text []byte) (neg bool, digits []byte, n int, ok bool) {
	i := 0
	if i < len(text) && text[i] == '-' {
		neg = true
		i++
	}
	point := -1
	var all []byte
	for ; i < len(text); i++ {
		ch := text[i]
		if ch == '.' {
			point = len(all)
			continue
		}
		if ch < '0' || ch > '9' {
			break
		}
		all = append(all, ch)
	}
	if point < 0 {
		point = len(all)
	}
	exp := 0
	if i < len(text) {
		if text[i] != 'e' && text[i] != 'E' {
			return false, nil, 0, false
		}
		i++
		eneg := false
		if i < len(text) && (text[i] == '+' || text[i] == '-') {
			eneg = text[i] == '-'
			i++
		}
		if i == len(text) {
			return false, nil, 0, false
		}
		for ; i < len(text); i++ {
			if text[i] < '0' || text[i] > '9' {
				return false, nil, 0, false
			}
			if exp < 1_000_000 {
				exp = exp*10 + int(text[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	lead := 0
	for lead < len(all) && all[lead] == '0' {
		lead++
	}
	end := len(all)
	for end > lead && all[end-1] == '0' {
		end--
	}
	if lead == end {
		return neg, nil, 0, true
	}
	return neg, all[lead:end], point - lead + exp, true
}

// appendES6Number appends f formatted as ECMAScript's Number.prototype
// .toString does (RFC 8785 section 3.2.2.3). f must be finite.
func appendES6Number(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	_, digits, n, _ := decimalOf(e)
	k := len(digits)
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		for range n - k {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

const hexDigits = "0123456789abcdef"

func appendJCSString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x20 && ch != '"' && ch != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch ch {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[ch>>4], hexDigits[ch&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// compareUTF16 orders two UTF-8 strings by their UTF-16 code units, as RFC
// 8785 sorts object keys.
func compareUTF16(a, b []byte) int {
	for len(a) > 0 && len(b) > 0 {
		if a[0] < utf8.RuneSelf && b[0] < utf8.RuneSelf {
			if a[0] != b[0] {
				return int(a[0]) - int(b[0])
			}
			a, b = a[1:], b[1:]
			continue
		}
		ra, na := utf8.DecodeRune(a)
		rb, nb := utf8.DecodeRune(b)
		if ra != rb {
			ua, ub := firstUnit(ra), firstUnit(rb)
			if ua != ub {
				return int(ua) - int(ub)
			}
			return int(ra) - int(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

func firstUnit(r rune) rune {
	if r >= 0x10000 {
		return 0xD800 + ((r - 0x10000) >> 10)
	}
	return r
}
