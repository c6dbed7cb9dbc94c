package postgres

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// errJSONBForm is returned by appendJSONBText for text it does not turn
// into PostgreSQL's form: what PostgreSQL would refuse, and forms it
// leaves to PostgreSQL (exponents beyond what its numeric type takes).
var errJSONBForm = errors.New("no jsonb text form")

// maxJSONBDepth is the deepest nesting appendJSONBText follows.
const maxJSONBDepth = 1000

// appendJSONBText appends to dst the text PostgreSQL gives for
// jsonb::text of the JSON text raw: no white space but one blank after
// each ',' and ':', the members of an object by key length and then by
// key bytes with only the last of a repeated key, strings with their
// escapes resolved and only '"', '\\' and the control characters escaped
// (\b \f \n \r \t, else \u00xx), and numbers as its numeric type prints
// them (the digits kept, the exponent applied, the scale the digits
// after the point less the exponent). It returns errJSONBForm for text
// PostgreSQL refuses (invalid JSON or UTF-8, \u0000, a lone surrogate) or
// whose number has an exponent beyond +-1000.
func appendJSONBText(dst, raw []byte) ([]byte, error) {
	var p jsonbParser
	return p.appendText(dst, raw)
}

// appendText is appendJSONBText reusing p's working space, which stays
// with p for its next call: a caller that converts many texts (storedRows,
// a row each) allocates it once.
func (p *jsonbParser) appendText(dst, raw []byte) ([]byte, error) {
	p.jsonCursor = jsonCursor{b: raw}
	p.space()
	out, err := p.value(dst, 0)
	if err != nil {
		return dst, err
	}
	p.space()
	if p.i != len(p.b) {
		return dst, errJSONBForm
	}
	return out, nil
}

// jsonbParser reads a JSON text into the form jsonb::text prints (see
// appendJSONBText). objects[d] is the working space of the objects at
// depth d, reused by each of them in turn.
type jsonbParser struct {
	jsonCursor
	objects []objectSpace
}

// objectSpace is an object's members and their text, in input order,
// before they are sorted.
type objectSpace struct {
	members []member
	text    []byte
}

func (p *jsonbParser) literal(dst []byte, word string) ([]byte, error) {
	if !bytes.HasPrefix(p.b[p.i:], []byte(word)) {
		return dst, errJSONBForm
	}
	p.i += len(word)
	return append(dst, word...), nil
}

func (p *jsonbParser) value(dst []byte, depth int) ([]byte, error) {
	if p.i >= len(p.b) || depth > maxJSONBDepth {
		return dst, errJSONBForm
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(dst, depth+1)
	case c == '[':
		return p.array(dst, depth+1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return dst, err
		}
		return appendJSONBString(dst, s), nil
	case c == 't':
		return p.literal(dst, "true")
	case c == 'f':
		return p.literal(dst, "false")
	case c == 'n':
		return p.literal(dst, "null")
	case c == '-' || '0' <= c && c <= '9':
		return p.number(dst)
	}
	return dst, errJSONBForm
}

func (p *jsonbParser) array(dst []byte, depth int) ([]byte, error) {
	p.i++ // '['
	dst = append(dst, '[')
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return append(dst, ']'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ", "...)
		}
		p.space()
		var err error
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
		p.space()
		if p.i >= len(p.b) {
			return dst, errJSONBForm
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return append(dst, ']'), nil
		default:
			return dst, errJSONBForm
		}
	}
}

// member is one member of an object: its key unescaped, and its key and
// value in jsonb text form at text[start:end] of the object's buffer.
type member struct {
	key        []byte
	order      int
	start, end int
}

func (p *jsonbParser) object(dst []byte, depth int) ([]byte, error) {
	p.i++ // '{'
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return append(dst, "{}"...), nil
	}
	for len(p.objects) <= depth {
		p.objects = append(p.objects, objectSpace{})
	}
	members, text := p.objects[depth].members[:0], p.objects[depth].text[:0]
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return dst, errJSONBForm
		}
		key, err := p.str()
		if err != nil {
			return dst, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return dst, errJSONBForm
		}
		p.i++
		p.space()
		m := member{key: key, order: len(members), start: len(text)}
		text = append(appendJSONBString(text, key), ": "...)
		if text, err = p.value(text, depth); err != nil {
			return dst, err
		}
		m.end = len(text)
		members = append(members, m)
		p.space()
		if p.i >= len(p.b) {
			return dst, errJSONBForm
		}
		if p.b[p.i] == '}' {
			p.i++
			break
		}
		if p.b[p.i] != ',' {
			return dst, errJSONBForm
		}
		p.i++
	}
	slices.SortFunc(members, func(a, b member) int {
		if len(a.key) != len(b.key) {
			return len(a.key) - len(b.key)
		}
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return a.order - b.order
	})
	dst = append(dst, '{')
	n := 0
	for i, m := range members {
		if i+1 < len(members) && bytes.Equal(members[i+1].key, m.key) {
			continue // a later member of the same key wins
		}
		if n > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, text[m.start:m.end]...)
		n++
	}
	p.objects[depth] = objectSpace{members: members[:0], text: text[:0]}
	return append(dst, '}'), nil
}

// str returns the string at p.i unescaped; errJSONBForm for what
// PostgreSQL refuses in jsonb.
func (p *jsonbParser) str() ([]byte, error) {
	p.i++ // '"'
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return nil, errJSONBForm
			}
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < ' ' {
			return nil, errJSONBForm
		}
		p.i++
	}
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return nil, errJSONBForm
			}
			return out, nil
		case c < ' ':
			return nil, errJSONBForm
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return nil, errJSONBForm
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok || r == 0 {
				return nil, errJSONBForm
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || p.i+1 >= len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
					return nil, errJSONBForm
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok || lo < 0xdc00 || lo > 0xdfff {
					return nil, errJSONBForm
				}
				r = utf16.DecodeRune(r, lo)
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, errJSONBForm
		}
	}
	return nil, errJSONBForm
}

func (p *jsonbParser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

// number appends the JSON number at p.i as PostgreSQL's numeric prints
// it.
func (p *jsonbParser) number(dst []byte) ([]byte, error) {
	neg := false
	if p.b[p.i] == '-' {
		neg = true
		p.i++
	}
	digits := func() []byte {
		start := p.i
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
		}
		return p.b[start:p.i]
	}
	intPart := digits()
	if len(intPart) == 0 || (len(intPart) > 1 && intPart[0] == '0') {
		return dst, errJSONBForm
	}
	var frac []byte
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if frac = digits(); len(frac) == 0 {
			return dst, errJSONBForm
		}
	}
	exp := 0
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		expNeg := false
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			expNeg = p.b[p.i] == '-'
			p.i++
		}
		e := digits()
		if len(e) == 0 {
			return dst, errJSONBForm
		}
		v, err := strconv.Atoi(string(e))
		if err != nil || v > 1000 {
			return dst, errJSONBForm
		}
		if expNeg {
			v = -v
		}
		exp = v
	}
	// The value is all the digits times 10^(exp - len(frac)); numeric
	// keeps max(len(frac) - exp, 0) digits after the point.
	var digitsBuf [40]byte // most numbers' digits: no allocation for them
	all := append(append(digitsBuf[:0], intPart...), frac...)
	scale := len(frac) - exp
	if scale < 0 {
		for range -scale {
			all = append(all, '0')
		}
		scale = 0
	}
	if len(all) <= scale { // pad so that one digit stands before the point
		all = append(bytes.Repeat([]byte{'0'}, scale-len(all)+1), all...)
	}
	whole, fraction := all[:len(all)-scale], all[len(all)-scale:]
	whole = bytes.TrimLeft(whole, "0")
	if len(whole) == 0 {
		whole = []byte{'0'}
	}
	if neg && len(bytes.Trim(all, "0")) > 0 { // numeric has no negative zero
		dst = append(dst, '-')
	}
	dst = append(dst, whole...)
	if scale > 0 {
		dst = append(append(dst, '.'), fraction...)
	}
	return dst, nil
}

// appendJSONBString appends s as jsonb prints a string.
func appendJSONBString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
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
			if c < ' ' {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}
