package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// sealedText is a generator of texts for decodeSealed: what seal writes,
// and hand-written objects with every key spelling, value kind, escape
// and white space encoding/json accepts or refuses, then mutated.
type sealedText struct{ r *rand.Rand }

func (g sealedText) pick(list ...string) string { return list[g.r.IntN(len(list))] }

// rawString is a Go string of awkward characters: quotes, backslashes,
// control characters, multi-byte runes, invalid UTF-8, surrogates.
func (g sealedText) rawString() string {
	var b strings.Builder
	for range g.r.IntN(12) {
		b.WriteString(g.pick("a", "Z", "0", " ", `"`, `\`, "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "ſ", "€", "😀",
			"\xff", "\xc3", "\xed\xa0\x80", "\u2028", "<", "&", "203.0.113.7", "Mozilla/5.0 (X11)", "user-42"))
	}
	return b.String()
}

// jsonString is the text of a JSON string, valid or not.
func (g sealedText) jsonString() string {
	if g.r.IntN(3) == 0 {
		b, _ := json.Marshal(g.rawString())
		return string(b)
	}
	var b strings.Builder
	b.WriteByte('"')
	for range g.r.IntN(8) {
		b.WriteString(g.pick("x", "ſ", "é", `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u0041`, `\u00e9`, `\u017F`,
			`\ud83d\ude00`, `\ud800`, `\udc00`, `\ud800\u0041`, `\ud800\ud800`, `\uDBFF\uDFFF`, `\u0000`, "\xff", "\xe2\x82",
			"\x01", `\'`, `\x`, `\u12`, `\uZZZZ`, "\x7f", " "))
	}
	if g.r.IntN(20) != 0 {
		b.WriteByte('"')
	}
	return b.String()
}

func (g sealedText) key() string {
	if g.r.IntN(4) == 0 {
		return g.jsonString()
	}
	return g.pick(`"u"`, `"U"`, `"i"`, `"I"`, `"a"`, `"A"`, `"s"`, `"S"`, `"ſ"`, `"\u017f"`, `"d"`, `"D"`, `"\u0075"`,
		`"\u0064"`, `"x"`, `"uu"`, `""`, `"u "`, `"K"`, `"\u212a"`, `"e"`)
}

func (g sealedText) value(depth int) string {
	switch n := g.r.IntN(14); {
	case n < 5:
		return g.jsonString()
	case n == 5:
		return g.pick("null", "nul", "true", "false", "tru", "nulll")
	case n == 6:
		return g.pick("0", "-0", "12", "-1.5e+10", "1E3", "01", "1.", "-", "+1", ".5", "1e", "3.25", "-0.0E-0")
	case n < 10 && depth < 4:
		var b strings.Builder
		b.WriteByte('{')
		for j := range g.r.IntN(4) {
			if j > 0 {
				b.WriteString(g.pick(",", ",", ", ", ",,"))
			}
			b.WriteString(g.key() + g.space() + ":" + g.space() + g.value(depth+1))
		}
		b.WriteString(g.pick("}", "}", "}", "", ",}"))
		return b.String()
	case n < 13 && depth < 4:
		var b strings.Builder
		b.WriteByte('[')
		for j := range g.r.IntN(4) {
			if j > 0 {
				b.WriteString(g.pick(",", ",", " , "))
			}
			b.WriteString(g.value(depth + 1))
		}
		b.WriteString(g.pick("]", "]", "]", "", ",]"))
		return b.String()
	default:
		return g.pick(`"v"`, `{}`, `[]`, `{"email":"x@example.org"}`, `{"name":"Ann","n":[1,2,{"k":null}]}`)
	}
}

func (g sealedText) space() string { return g.pick("", "", "", " ", "\n\t", "\r\n  ", "\v", "\u00a0") }

// object is an object text: the members in any order, repeated or not.
func (g sealedText) object() string {
	var b strings.Builder
	b.WriteString(g.space() + "{")
	for j := range g.r.IntN(7) {
		if j > 0 {
			b.WriteString(",")
		}
		b.WriteString(g.space() + g.key() + g.space() + ":" + g.space() + g.value(1) + g.space())
	}
	b.WriteString("}" + g.space())
	return b.String()
}

// sealed is what seal writes: json.Marshal of sealedFields.
func (g sealedText) sealed() string {
	f := sealedFields{UserID: g.rawString(), IPAddress: g.rawString(), UserAgent: g.rawString(), SessionID: g.rawString()}
	if g.r.IntN(2) == 0 {
		f.Details = json.RawMessage(g.pick(`{"email":"x@example.org"}`, `{"name":"Ann \"A\" B","email":"a@b.c","n":[1,{"x":null}]}`, `{}`))
	}
	b, err := json.Marshal(f)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// mutate changes text at a random place: cut, a byte dropped, replaced or
// added, or something appended.
func (g sealedText) mutate(s string) string {
	if s == "" {
		return g.pick("{", "}", "n", " ")
	}
	i := g.r.IntN(len(s))
	switch g.r.IntN(5) {
	case 0:
		return s[:i]
	case 1:
		return s[:i] + s[i+1:]
	case 2:
		return s[:i] + string(rune(g.r.IntN(128))) + s[i+1:]
	case 3:
		return s[:i] + g.pick(`"`, `\`, "{", "}", "[", "]", ",", ":", " ", "\x00", "\xff", `"u":`, "null") + s[i:]
	default:
		return s + g.pick(" ", "x", "{}", "null", "\n", ",")
	}
}

func (g sealedText) next() string {
	switch n := g.r.IntN(10); {
	case n < 3:
		return g.sealed()
	case n < 6:
		return g.object()
	case n == 6:
		return g.value(0)
	case n == 7:
		return g.pick("null", " null ", "", " ", "{}", "[]", `"u"`, "0", "true", "\ufeff{}", `{"u":"x"}{}`, `{"u":"x"} x`)
	default:
		s := g.next()
		for range 1 + g.r.IntN(3) {
			s = g.mutate(s)
		}
		return s
	}
}

// checkSealed fails unless decodeSealed decodes text as json.Unmarshal
// does: both an error, or the same fields (Details nil or not alike).
func checkSealed(t testing.TB, text []byte) (ok bool) {
	t.Helper()
	var want, got sealedFields
	wantErr := json.Unmarshal(text, &want)
	gotErr := decodeSealed(text, &got)
	switch {
	case (wantErr == nil) != (gotErr == nil):
		t.Errorf("%q: decodeSealed error %v, json.Unmarshal error %v", text, gotErr, wantErr)
		return false
	case wantErr != nil:
		if !strings.HasPrefix(gotErr.Error(), "personal fields: ") {
			t.Errorf("%q: error %q does not say it is the personal fields", text, gotErr)
			return false
		}
		return true
	case got.UserID != want.UserID || got.IPAddress != want.IPAddress || got.UserAgent != want.UserAgent ||
		got.SessionID != want.SessionID || !bytes.Equal(got.Details, want.Details) || (got.Details == nil) != (want.Details == nil):
		t.Errorf("%q: decodeSealed %+v (details %q), json.Unmarshal %+v (details %q)", text, got, got.Details, want, want.Details)
		return false
	}
	return true
}

// decodeSealed gives what json.Unmarshal gives on 200,000 generated texts
// (what seal writes, objects with every key spelling and value, and their
// mutations: malformed, cut, with trailing data), and an error naming the
// personal fields where json.Unmarshal fails; it never panics.
func TestDecodeSealedMatchesEncodingJSON(t *testing.T) {
	g := sealedText{rand.New(rand.NewPCG(20, 4))}
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	decoded, failed, mismatched := 0, 0, 0
	for range n {
		text := []byte(g.next())
		var f sealedFields
		if json.Unmarshal(text, &f) == nil {
			decoded++
		} else {
			failed++
		}
		if !checkSealed(t, text) {
			if mismatched++; mismatched == 20 {
				t.Fatal("stopped at 20 mismatches")
			}
		}
	}
	// Both kinds are well represented.
	if decoded < n/10 || failed < n/10 {
		t.Fatalf("%d texts decode and %d fail: the generator is lopsided", decoded, failed)
	}
}

// The cases of the stored form named one by one: what decodeSealed gives
// and the error it names, against json.Unmarshal.
func TestDecodeSealedCases(t *testing.T) {
	deep := func(n int) string {
		return `{"d":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
	}
	for _, c := range []struct {
		text, want, err string
	}{
		{text: `{"u":"ann","i":"203.0.113.7","a":"Mozilla/5.0","s":"s-1","d":{"email":"a@b.c"}}`, want: `ann 203.0.113.7 Mozilla/5.0 s-1 {"email":"a@b.c"}`},
		{text: `{"u":"ann"}`, want: `ann    `},
		{text: `{}`, want: `    `},
		{text: `null`, want: `    `},
		{text: `{"u":null,"d":null}`, want: `    null`},
		{text: `{"U":"a","u":"b","ſ":"c","x":{"u":"no"}}`, want: `b   c `},
		{text: `{"u":"\u00e9\ud83d\ude00\ud800\"\\\/"}`, want: "é😀\ufffd\"\\/    "},
		{text: "{\"u\":\"\xff\"}", want: "\ufffd    "},
		{text: `{"u":5}`, err: `personal fields: at byte 5: "u" (userId) is a JSON number, want a string`},
		{text: `{"s":{"x":1},"i":[]}`, err: `personal fields: at byte 5: "s" (sessionId) is a JSON object, want a string`},
		{text: `{"u":5,"i":"x`, err: "personal fields: invalid JSON: unexpected end of input (want the end of a string)"},
		{text: `{"u":"ann"`, err: "personal fields: invalid JSON: unexpected end of input (want ',' or '}' in the object)"},
		{text: ``, err: "personal fields: invalid JSON: unexpected end of input (want a JSON object)"},
		{text: `{"u":"ann"} x`, err: `personal fields: invalid JSON at byte 12: want the end after the object, found 'x'`},
		{text: `{"u":"a\x"}`, err: `personal fields: invalid JSON at byte 8: want an escape, found 'x'`},
		{text: `["u"]`, err: "personal fields: at byte 0: a JSON array, want an object"},
		{text: deep(maxSealedDepth), want: "    " + deep(maxSealedDepth)[5:len(deep(maxSealedDepth))-1]},
		{text: deep(maxSealedDepth + 1), err: fmt.Sprintf("personal fields: invalid JSON at byte %d: nested too deep, found '['", 5+maxSealedDepth-1)},
	} {
		if !checkSealed(t, []byte(c.text)) {
			continue
		}
		var f sealedFields
		err := decodeSealed([]byte(c.text), &f)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%.60q: error %v, want %s", c.text, err, c.err)
			}
			continue
		}
		if got := strings.Join([]string{f.UserID, f.IPAddress, f.UserAgent, f.SessionID, string(f.Details)}, " "); err != nil || got != c.want {
			t.Errorf("%.60q: %.80q %v, want %.80q", c.text, got, err, c.want)
		}
	}
}

// FuzzDecodeSealed compares decodeSealed with json.Unmarshal on any text
// (go test -fuzz FuzzDecodeSealed ./adapters/postgres/).
func FuzzDecodeSealed(f *testing.F) {
	g := sealedText{rand.New(rand.NewPCG(4, 20))}
	for range 200 {
		f.Add([]byte(g.next()))
	}
	f.Fuzz(func(t *testing.T, text []byte) { checkSealed(t, text) })
}

// BenchmarkDecodeSealed decodes the sealed fields of an event with every
// personal field and a personal details key, side by side: version 1
// (JSON) with encoding/json and with decodeSealed, version 2 (binary,
// what seal writes) with decodeSealedBinary.
func BenchmarkDecodeSealed(b *testing.B) {
	in := sealedFields{UserID: "user-4242", IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		SessionID: "s-1234567", Details: json.RawMessage(`{"email":"x@example.org"}`)}
	plain, err := json.Marshal(in)
	if err != nil {
		b.Fatal(err)
	}
	bin := in.appendBinary(nil)
	for _, c := range []struct {
		name   string
		plain  []byte
		decode func([]byte, *sealedFields) error
	}{
		{"encoding-json", plain, func(p []byte, f *sealedFields) error { return json.Unmarshal(p, f) }},
		{"decodeSealed", plain, decodeSealed},
		{"decodeSealedBinary", bin, decodeSealedBinary},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var f sealedFields
				if err := c.decode(c.plain, &f); err != nil || f.UserID != "user-4242" {
					b.Fatal(err)
				}
			}
		})
	}
}
