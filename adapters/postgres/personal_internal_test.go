package postgres

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/auditq/auditq/domain/audit"
)

// appendJSON appends the JSON of f, the plaintext of version sealedJSON,
// as the writes of that version wrote it: json.Marshal's up to the
// escapes of its strings (RFC 8785's, audit.AppendJCSString); Details is
// compact JSON (from splitDetails).
func (f sealedFields) appendJSON(dst []byte) []byte {
	dst = audit.AppendJCSString(append(dst, `{"u":`...), f.UserID)
	for _, m := range [...]struct{ key, val string }{{`,"i":`, f.IPAddress}, {`,"a":`, f.UserAgent}, {`,"s":`, f.SessionID}} {
		if m.val != "" {
			dst = audit.AppendJCSString(append(dst, m.key...), m.val)
		}
	}
	if len(f.Details) > 0 {
		dst = append(append(dst, `,"d":`...), f.Details...)
	}
	return append(dst, '}')
}

// The sealed fields' JSON reads back (as Reveal reads it) as the fields
// written, for every kind of string and with or without each field.
func TestSealedFieldsJSON(t *testing.T) {
	for _, f := range []sealedFields{
		{UserID: "u-1"},
		{UserID: "u-1", IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0 (X11)", SessionID: "s-1", Details: json.RawMessage(`{"email":"a@b.c","n":[1,{"x":null}]}`)},
		{UserID: "quote\" back\\slash \x01\x1f\t\n\r\b\f <>& \u2028 é 😀", UserAgent: `"}`, Details: json.RawMessage(`{}`)},
		{UserID: "", SessionID: "only-session"},
	} {
		b := f.appendJSON([]byte("prefix"))
		if string(b[:6]) != "prefix" || !json.Valid(b[6:]) {
			t.Fatalf("%+v: %q", f, b)
		}
		var got sealedFields
		if err := json.Unmarshal(b[6:], &got); err != nil || !reflect.DeepEqual(got, f) {
			t.Errorf("%+v: read back %+v (%v) from %s", f, got, err, b[6:])
		}
	}
}

// The sealed fields' binary encoding reads back as the fields written,
// for every kind of string, a string of more than 127 bytes among them,
// and with or without each field; cut short anywhere in its lengths or
// strings, it is an error.
func TestSealedFieldsBinary(t *testing.T) {
	for _, f := range []sealedFields{
		{UserID: "u-1"},
		{UserID: "u-1", IPAddress: "203.0.113.7", UserAgent: strings.Repeat("Mozilla/5.0 (X11) ", 20), SessionID: "s-1", Details: json.RawMessage(`{"email":"a@b.c","n":[1,{"x":null}]}`)},
		{UserID: "quote\" back\\slash \x00\x01\x1f\t\n <>& \u2028 é 😀", UserAgent: `"}`, Details: json.RawMessage(`{}`)},
		{UserID: "", SessionID: "only-session"},
	} {
		b := f.appendBinary([]byte("prefix"))
		if string(b[:6]) != "prefix" || len(b)-6 > f.size()+4 {
			t.Fatalf("%+v: %q, size %d", f, b, f.size())
		}
		var got sealedFields
		if err := decodeSealedBinary(b[6:], &got); err != nil || !reflect.DeepEqual(got, f) {
			t.Errorf("%+v: read back %+v (%v) from %q", f, got, err, b[6:])
		}
		fields := len(b) - 6 - len(f.Details)
		for n := range fields {
			if err := decodeSealedBinary(b[6:6+n], &got); err == nil {
				t.Errorf("%+v cut to %d bytes: no error", f, n)
			}
		}
	}
}

// splitDetails cuts the listed top-level keys out of details as decoding
// and encoding them would: the same members kept and moved, nested keys
// and strings that look like keys left alone; what it cannot cut out of
// the text it decodes, and invalid details are an error.
func TestSplitDetails(t *testing.T) {
	listed := []string{"email", "name"}
	for _, in := range []string{
		`{}`, ` { } `, `{"k":"v"}`, `{"email":"a@b.c"}`, `{"email":"a@b.c","k":"v"}`,
		` {"k" : [1, {"email": "nested"}, "}"] , "email" : {"x": ["\"", "\\"]}, "n":-1.5e3, "name":null,"t":true} `,
		`{"s":"\"email\":\"no\"","name":"x\u00e9"}`, `{"em\u0061il":"escaped key","k":1}`,
		`{"email":1,"email":2}`, `{"a":{"b":{"c":[[],{}]}},"name":""}`, `{"name":false,"k":"v"}`,
	} {
		kept, moved, err := splitDetails(json.RawMessage(in), listed)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		var all, k, m map[string]any
		if err := json.Unmarshal([]byte(in), &all); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(kept, &k); err != nil {
			t.Errorf("%s: kept %s: %v", in, kept, err)
			continue
		}
		if moved == nil {
			m = map[string]any{}
		} else if err := json.Unmarshal(moved, &m); err != nil {
			t.Errorf("%s: moved %s: %v", in, moved, err)
			continue
		}
		want := map[string]any{}
		for _, key := range listed {
			if v, ok := all[key]; ok {
				want[key] = v
				delete(all, key)
			}
		}
		if !reflect.DeepEqual(k, all) || !reflect.DeepEqual(m, want) {
			t.Errorf("%s: kept %s moved %s, want kept %v moved %v", in, kept, moved, all, want)
		}
		if len(want) == 0 && (moved != nil || string(kept) != in) {
			t.Errorf("%s: no listed key, but kept %s moved %s", in, kept, moved)
		}
	}
	for _, in := range []string{`{"email":}`, `{"email":"x",}`, `{"email":tru}`, `["email"]`, `{"email":"x"`, `{"email":{"a":1]}`} {
		if kept, moved, err := splitDetails(json.RawMessage(in), listed); err == nil {
			t.Errorf("%s: kept %s moved %s, want an error", in, kept, moved)
		}
	}
}
