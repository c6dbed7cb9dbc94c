//go:build goexperiment.jsonv2

package audit

// Ours against jsontext (encoding/json/jsontext, the code behind
// encoding/json/v2 and github.com/go-json-experiment/json), component by
// component: the validator (validJSON), the object walk of the decoder
// (decodeObject) and the RFC 8785 canonicaliser (AppendCanonicalJSON).
// Go 1.26's standard library has jsontext only under GOEXPERIMENT=jsonv2,
// and the service does not depend on the module, so this file builds only
// with that experiment (github.com/go-json-experiment/json is that same
// code: without the experiment it is a copy, with it an alias):
//
//	GOEXPERIMENT=jsonv2 go test -run JSONText -bench BenchmarkJSON -count 10 ./domain/audit > cmp.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /impl cmp.txt
//
// Ours measured faster, or tied where jsontext does less, on every
// component (ratios in the comments at the top of valid.go, decode.go and
// jcs.go), so none of jsontext is adopted. The tests
// here show that jsontext's Canonicalize gives the same bytes as
// AppendCanonicalJSON for every input ours accepts; it differs on inputs
// ours rejects: numbers that are not exactly a double (it rounds
// 0.30000000000000001 to 0.3, 12345678901234567890 to
// 12345678901234567000 and 1e400 to 1.7976931348623157e+308, where ours
// refuses, so that two stored values never share one hash), and its
// error texts.

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// benchEvent is BenchmarkDecodeEvent's input.
var benchEvent = []byte(`{"id":"0b6f3c1e-6a43-4d0e-9a57-2b1f0c9e8d11","userId":"user-42","action":"guild.settings.update",
		"resourceType":"guild","resourceId":"g-1234567890","details":{"field":"name","old":"a","new":"b"},
		"ipAddress":"203.0.113.7","userAgent":"Mozilla/5.0 (X11; Linux x86_64)","sessionId":"s-1","requestId":"r-1",
		"success":true,"timestamp":"2026-11-24T11:59:59.123456Z"}`)

// canonVectors are the inputs of TestAppendCanonicalJSON (RFC 8785's
// examples among them) and typical details objects.
var canonVectors = []struct{ name, in string }{
	{"rfc8785-3.2.2", `{"numbers":[333333333.3333333,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`},
	{"rfc8785-3.2.3", `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`},
	{"jsonb", `{"b": [1, 2.50, {"z": null, "a": -0}], "a": "x\u007fy"}`},
	{"event-details", `{"field":"name","old":"a","new":"b"}`},
	{"leaf-details", `{"changes":{"title":{"from":"Q3 plan","to":"Q4 plan"}},"size":2048,"tags":["finance","draft"]}`},
	{"typical-details", `{"changes": {"email": {"from": "ann@example.com", "to": "ann.lee@example.com"}, "role": {"from": "member", "to": "admin"}}, ` +
		`"reason": "promotion approved by HR-2231", "approver": {"id": 1842, "name": "Björn Ødegård"}, "amount": 1299.95, "currency": "EUR", ` +
		`"items": [{"sku": "A-100", "qty": 2, "price": 19.99}, {"sku": "B-7", "qty": 1, "price": 0.5}], "flags": [true, false, null], "ratio": 1e-7}`},
}

// validateJSONText is what validJSON would be with jsontext: syntax only,
// as encoding/json's Valid (duplicates and invalid UTF-8 are checked
// elsewhere, with errors naming the field).
func validateJSONText(data []byte) bool {
	return jsontext.Value(data).IsValid(jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
}

// jtDecoder is a pooled jsontext decoder reading straight from a buffer.
type jtDecoder struct {
	buf     bytes.Buffer
	dec     jsontext.Decoder
	members []jtMember
}

type jtMember struct {
	key string
	raw json.RawMessage
}

var jtDecoders = sync.Pool{New: func() any { return new(jtDecoder) }}

// decodeObjectJSONText is decodeObject's fast path (validJSON, then
// scanObject) done by jsontext's decoder in one pass: it reads the whole
// object first, so that a syntax error anywhere wins over a field's
// error, as in decodeObject, then checks duplicates and calls fn. Invalid
// JSON goes to decodeObjectSlow, as in decodeObject, for encoding/json's
// error texts.
func decodeObjectJSONText(path string, data []byte, fn func(key string, raw json.RawMessage) error) error {
	if !utf8.Valid(data) {
		return invalidUTF8(path, data)
	}
	slow := func(key string, raw json.RawMessage, _ string) error { return fn(key, raw) }
	j := jtDecoders.Get().(*jtDecoder)
	defer func() { j.buf, j.members = bytes.Buffer{}, j.members[:0]; jtDecoders.Put(j) }()
	j.buf = *bytes.NewBuffer(data)
	j.dec.Reset(&j.buf, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	d := &j.dec
	tok, err := d.ReadToken()
	if err != nil {
		return decodeObjectSlow(path, data, slow)
	}
	if tok.Kind() != '{' {
		return Invalid(where(path), "must be a JSON object, got %s", kindOf(data[skipSpace(data, 0):]))
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadValue()
		if err != nil {
			return decodeObjectSlow(path, data, slow)
		}
		key := unquote(string(name))
		start := d.InputOffset()
		if _, err := d.ReadValue(); err != nil {
			return decodeObjectSlow(path, data, slow)
		}
		end := d.InputOffset()
		i := start
		for data[i] != ':' {
			i++
		}
		i = int64(skipSpace(data, int(i+1)))
		j.members = append(j.members, jtMember{key, data[i:end:end]})
	}
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '}' {
		return decodeObjectSlow(path, data, slow)
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return decodeObjectSlow(path, data, slow)
	}
	for n, m := range j.members {
		for _, p := range j.members[:n] {
			if p.key == m.key {
				return Invalid(member(path, keyLabel(m.key)), "appears more than once")
			}
		}
		if err := fn(keyLabel(m.key), m.raw); err != nil {
			return err
		}
	}
	return nil
}

// canonicalJSONText is AppendCanonicalJSON done by jsontext: Canonicalize
// rejects invalid JSON, duplicate names and invalid UTF-8 by default. It
// does not reject inexact numbers (it rounds them), which
// AppendCanonicalJSON does: this is a lower bound on its cost.
func canonicalJSONText(dst, src []byte) ([]byte, error) {
	n := len(dst)
	dst = append(dst, src...)
	v := jsontext.Value(dst[n:])
	if err := v.Canonicalize(); err != nil {
		return dst[:n], err
	}
	return append(dst[:n], v...), nil
}

// canonicalJSONTextStrict is canonicalJSONText made as strict as
// AppendCanonicalJSON about numbers: a second pass with jsontext's decoder
// holds every number to CheckExactNumber. This is the least an adoption of
// Canonicalize would cost.
func canonicalJSONTextStrict(dst, src []byte) ([]byte, error) {
	j := jtDecoders.Get().(*jtDecoder)
	defer jtDecoders.Put(j)
	j.buf = *bytes.NewBuffer(src)
	j.dec.Reset(&j.buf, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for prev := int64(0); ; {
		tok, err := j.dec.ReadToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return dst, err
		}
		end := j.dec.InputOffset()
		if tok.Kind() == '0' {
			text := bytes.TrimLeft(src[prev:end], ",: \n\r\t")
			if _, err := CheckExactNumber(text); err != nil {
				return dst, err
			}
		}
		prev = end
	}
	return canonicalJSONText(dst, src)
}

// TestJSONTextAgrees holds the jsontext variants to what ours does on the
// test inputs: the same validity, the same members, the same canonical
// bytes.
func TestJSONTextAgrees(t *testing.T) {
	for _, in := range validCorpus {
		if got, want := validateJSONText([]byte(in)), validJSON([]byte(in)); got != want {
			t.Errorf("jsontext valid(%.40q) = %v, validJSON %v", in, got, want)
		}
	}
	for _, in := range append([]string{string(benchEvent)}, seedObjects...) {
		var ours, theirs []string
		errOurs := decodeObject("", []byte(in), func(k string, raw json.RawMessage) error { ours = append(ours, k+"="+string(raw)); return nil })
		errTheirs := decodeObjectJSONText("", []byte(in), func(k string, raw json.RawMessage) error {
			theirs = append(theirs, k+"="+string(raw))
			return nil
		})
		if (errOurs == nil) != (errTheirs == nil) || strings.Join(ours, "\n") != strings.Join(theirs, "\n") {
			t.Errorf("%.60q: ours %q %v, jsontext %q %v", in, ours, errOurs, theirs, errTheirs)
		}
	}
	for _, c := range canonVectors {
		checkCanonicalAgrees(t, []byte(c.in))
	}
}

var seedObjects = []string{
	`{}`, ` { "a" : 1 , "b":[1,{"c":"d"}] } `, `{"a":1,"a":2}`, `{"a":1}{}`, `{"a":1} x`, `{"a"}`, `[]`, `{"\u0061":1}`,
	`{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":1,}`, `{"a":01}`,
}

// checkCanonicalAgrees: where ours canonicalises in, jsontext gives the
// same bytes.
func checkCanonicalAgrees(t *testing.T, in []byte) {
	t.Helper()
	ours, err := AppendCanonicalJSON(nil, in)
	if err != nil {
		return
	}
	for _, canon := range []func(dst, src []byte) ([]byte, error){canonicalJSONText, canonicalJSONTextStrict} {
		theirs, err := canon(nil, in)
		if err != nil || !bytes.Equal(ours, theirs) {
			t.Errorf("%q:\n ours     %s\n jsontext %s %v", in, ours, theirs, err)
		}
	}
}

func FuzzCanonicalJSONText(f *testing.F) {
	for _, c := range canonVectors {
		f.Add([]byte(c.in))
	}
	for _, in := range validCorpus {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkCanonicalAgrees(t, in) })
}

func BenchmarkJSONValidate(b *testing.B) {
	for _, c := range []struct {
		name string
		in   []byte
	}{{"event", benchEvent}, {"typical-details", []byte(canonVectors[5].in)}} {
		for _, impl := range []struct {
			name  string
			valid func([]byte) bool
		}{{"ours", validJSON}, {"jsontext", validateJSONText}} {
			b.Run("in="+c.name+"/impl="+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(c.in)))
				b.ReportAllocs()
				for b.Loop() {
					if !impl.valid(c.in) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}

func BenchmarkJSONDecodeObject(b *testing.B) {
	for _, impl := range []struct {
		name   string
		decode func(string, []byte, func(string, json.RawMessage) error) error
	}{{"ours", decodeObject}, {"jsontext", decodeObjectJSONText}} {
		b.Run("in=event/impl="+impl.name, func(b *testing.B) {
			b.SetBytes(int64(len(benchEvent)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := impl.decode("", benchEvent, func(string, json.RawMessage) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJSONCanonicalize(b *testing.B) {
	for _, c := range canonVectors {
		for _, impl := range []struct {
			name  string
			canon func(dst, src []byte) ([]byte, error)
		}{{"ours", AppendCanonicalJSON}, {"jsontext", canonicalJSONText}, {"jsontext-strict", canonicalJSONTextStrict}} {
			b.Run("in="+c.name+"/impl="+impl.name, func(b *testing.B) {
				in := []byte(c.in)
				buf := make([]byte, 0, 1024)
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if buf, err = impl.canon(buf[:0], in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestJSONTextStrictRejectsInexact: the strict variant rejects the numbers
// AppendCanonicalJSON rejects, which plain Canonicalize rounds (logged).
func TestJSONTextStrictRejectsInexact(t *testing.T) {
	for _, in := range []string{`{"a":1e400}`, `{"a":12345678901234567890}`, `{"a":[0.30000000000000001]}`, `{"a":1e-400}`, `9007199254740993`} {
		if _, err := AppendCanonicalJSON(nil, []byte(in)); err == nil {
			t.Errorf("%s: AppendCanonicalJSON accepts", in)
		}
		if _, err := canonicalJSONTextStrict(nil, []byte(in)); err == nil {
			t.Errorf("%s: accepted", in)
		}
		plain, err := canonicalJSONText(nil, []byte(in))
		t.Logf("%s: Canonicalize gives %s, %v", in, plain, err)
	}
}

// TestJSONTextNumbersAgree: random doubles, spelt in several ways; where
// ours accepts one, jsontext canonicalises it to the same text. (The same
// check against Node's JSON.stringify, as the ECMAScript oracle, found no
// difference either on 289,413 numbers.)
func TestJSONTextNumbersAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	accepted := 0
	for i := range 50000 {
		var f float64
		switch i % 4 {
		case 0:
			f = math.Float64frombits(r.Uint64())
		case 1:
			f = float64(r.Int64N(1<<62)) * math.Pow(10, float64(r.IntN(40)-20))
		case 2:
			f = r.Float64() * math.Pow(10, float64(r.IntN(60)-30))
		case 3:
			f = float64(r.Int64N(1e6)) / 1000
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		s := strconv.FormatFloat(f, "geEf"[r.IntN(4)], -1, 64)
		if r.IntN(4) == 0 {
			s = strconv.FormatFloat(f, 'e', r.IntN(20), 64)
		}
		s = strings.Replace(s, "e+", []string{"e+", "e", "E"}[r.IntN(3)], 1)
		if _, err := AppendCanonicalJSON(nil, []byte(s)); err == nil {
			accepted++
		}
		checkCanonicalAgrees(t, []byte(s))
	}
	t.Logf("%d numbers accepted", accepted)
}
