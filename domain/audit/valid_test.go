package audit

import (
	"encoding/json"
	"strings"
	"testing"
)

var validCorpus = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `true`, `null`, ` {"a" : [1, {"b":null}] } `,
	`{"a":"\u00e9\n\"\\\/"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `1e`, `"\x"`, `"\u12"`,
	"\"a\tb\"", `{"a" 1}`, `{"a":1}{}`, `{`, `[`, `"`, `tru`, `nul`, `{"a":}`, `{1:2}`, `[1 2]`,
	"\"\xff\"", strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
}

func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	for _, in := range validCorpus {
		if got, want := validJSON([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("validJSON(%.40q) = %v, encoding/json says %v", in, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, in := range validCorpus {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, want := validJSON(in), json.Valid(in); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", in, got, want)
		}
	})
}
