package postgres

import (
	"encoding/json"
	"reflect"
	"testing"
)

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
