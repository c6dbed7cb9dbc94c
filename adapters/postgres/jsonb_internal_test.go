package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/auditq/auditq/adapters/postgres/pgtest"
)

// jsonbCases are JSON texts whose jsonb form has something to get right:
// white space, key order and repeats, escapes, unicode and numbers.
var jsonbCases = []string{
	`{}`, `[]`, `null`, `true`, `"x"`, `0`, ` { "a" : [ ] , "b":{ } } `,
	`{"b": 1, "a": 2, "aa": 3, "B": 4, "": 5, "ab": 6, "é": 7, "z": 8}`,
	`{"a": 1, "a": 2}`, `{"k": {"x": 1, "x": [1, 2], "y": null}, "k": "last"}`,
	`{"s": "quote\" back\\slash \/ \b\f\n\r\t \u0001\u001F\u007f é \u00e9 \u2028 😀 \ud83d\ude00 <>&"}`,
	`{"\u00e9": 1, "e\u0301": 2, "\t": 3}`,
	`[0, -0, 1, -1, 1.0, 1.50, -0.0, 0.000, 1e2, 1E+2, 1e-2, 1.5e-1, 12.5e1, 1.25e1, 0.1e1, 123456789012345678901234567890, 1e20, 1e-20, -1.5E3, 5e-0, 0e5, 0.00e-3, 10e-1, 100e-1]`,
	`{"n": [1.5, true], "a": "x", "nested": {"deep": [[[{"b": 1, "a": 2}]]]}}`,
	`{"long key with spaces": 1, "k": [false, null, "", {"": ""}]}`,
}

// appendJSONBText gives what PostgreSQL's jsonb::text gives, for the
// cases above and for random documents.
func TestJSONBTextMatchesPostgres(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, pgtest.NewDatabase(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	cases := append([]string(nil), jsonbCases...)
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		cases = append(cases, randomJSON(r, 0))
	}
	for _, c := range cases {
		var want string
		if err := db.DB.QueryRowContext(ctx, `SELECT $1::jsonb::text`, c).Scan(&want); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		got, err := appendJSONBText(nil, []byte(c))
		if err != nil || string(got) != want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", c, got, err, want)
		}
	}
	// What PostgreSQL refuses has no form.
	for _, c := range []string{`{"a": "\u0000"}`, `{"a": "\ud83d"}`, `{"a": "\ude00"}`, `{"a": 1,}`, `{"a" 1}`, `01`, `1.`, `.5`, `{"a": 1} x`, "\"\xff\"", `1e1001`} {
		if got, err := appendJSONBText(nil, []byte(c)); err == nil {
			t.Errorf("%s: got %s, want an error", c, got)
		}
	}
}

// randomJSON returns a random JSON text of nesting depth at most 4.
func randomJSON(r *rand.Rand, depth int) string {
	k := r.IntN(9)
	if depth >= 4 && k < 2 {
		k += 2
	}
	switch k {
	case 0:
		var b strings.Builder
		b.WriteString("{")
		for i := range r.IntN(6) {
			if i > 0 {
				b.WriteString(pick(r, ",", " , ", ",\n"))
			}
			b.WriteString(randomString(r, 3) + pick(r, ":", " : ") + randomJSON(r, depth+1))
		}
		b.WriteString("}")
		return b.String()
	case 1:
		var b strings.Builder
		b.WriteString("[")
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteString(pick(r, ",", ", ", " ,\t"))
			}
			b.WriteString(randomJSON(r, depth+1))
		}
		b.WriteString("]")
		return b.String()
	case 2, 3:
		return randomString(r, 12)
	case 4, 5:
		n := pick(r, "", "-") + pick(r, "0", fmt.Sprint(r.IntN(1000)), fmt.Sprint(r.Uint64()))
		if r.IntN(2) == 0 {
			n += "." + fmt.Sprintf("%0*d", 1+r.IntN(4), r.IntN(10000))
		}
		if r.IntN(3) == 0 {
			n += pick(r, "e", "E", "e+", "e-", "E-") + fmt.Sprint(r.IntN(30))
		}
		return n
	default:
		return pick(r, "true", "false", "null")
	}
}

func randomString(r *rand.Rand, max int) string {
	pieces := []string{"a", "b", "A", "é", "😀", `\"`, `\\`, `\/`, `\n`, `\t`, `\u0001`, `\u00e9`, `\ud83d\ude00`, " ", "\u2028", "z", "ab", "~"}
	var b strings.Builder
	b.WriteString(`"`)
	for range r.IntN(max + 1) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	b.WriteString(`"`)
	return b.String()
}

func pick(r *rand.Rand, s ...string) string { return s[r.IntN(len(s))] }
