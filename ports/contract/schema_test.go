package contract_test

// The JSON Schemas and the decoders held to each other. For every input
// the decoders are tested with (the fuzz corpora of domain/audit, which
// TestSchemaCorpusWritten keeps in step with their seeds and test tables,
// and docs/examples): the decoder accepts it exactly when the schema
// validates it, unless one of the named exceptions below explains why
// the schema cannot say the rule that decided.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// Exceptions: rules of the decoders that JSON Schema (2020-12) cannot
// state. Each names why; docs/contract.md ("Schema") lists them too.
const (
	// Invalid UTF-8 is refused by the decoder; a JSON parser refuses it
	// or (encoding/json, JavaScript's TextDecoder) replaces it with U+FFFD
	// before any schema sees a string. (Text that is not one JSON value
	// at all counts as failing the schema: no parser gives it one.)
	exInvalidUTF8 = "invalid UTF-8: decided by the parser, before any schema"
	// A repeated member name disappears when the text is parsed into the
	// value a schema sees (the last one wins).
	exDuplicateKey = "repeated member name: the parsed value a schema sees keeps one"
	// JSON Schema's integer is a mathematical value: 1e3 and 1.0 are
	// integers to it; the decoder takes an identifier or retentionDays
	// only in integer spelling.
	exIntegerSpelling = "integer spelt with a fraction or exponent: a schema sees the value, not the spelling"
	// A number in details must be exactly an IEEE 754 double in its
	// shortest form: a schema sees numbers as mathematical values and has
	// no keyword about their precision.
	exExactDouble = "number in details not exactly a double: no keyword about numeric precision"
	// details is at most 64 KiB as sent: a schema has no keyword for the
	// size of a value's text.
	exDetailsBytes = "details larger than 64 KiB as sent: no keyword for the size of a value's text"
	// details is nested at most 32 levels: expressible only by writing
	// out 32 nested copies of the value schema; not done.
	exDetailsDepth = "details nested more than 32 levels: no depth keyword"
	// timestamp may be at most AUDITQ_MAX_FUTURE_SKEW after the time
	// JetStream received the message: not part of the message.
	exFutureSkew = "timestamp more than 1 hour after receipt: depends on the time of receipt, not on the message"
	// A missing id is taken from the message's Nats-Msg-Id header, which
	// must keep the id's rules: not part of the message body.
	exFallbackID = "id taken from the Nats-Msg-Id header: not part of the message body"
	// An offset can put a time of 1970-01-01 before 1970 in UTC; the
	// schema checks the year as written.
	exEpochOffset = "timestamp of 1970-01-01 with a positive offset: before 1970 in UTC, the schema checks the year as written"
)

// exceptionFor names the exception that explains why the decoder
// decided decodeErr (nil: accepted) while the schema said schemaErr, or ""
// when none does.
func exceptionFor(data []byte, decodeErr, schemaErr error) string {
	if decodeErr == nil {
		return "" // the schema must take all the decoder takes
	}
	msg := decodeErr.Error()
	switch {
	case !utf8.Valid(data):
		return exInvalidUTF8
	case hasDuplicateKey(data):
		return exDuplicateKey
	case strings.Contains(msg, "Nats-Msg-Id"):
		return exFallbackID
	}
	for _, c := range []struct{ rule, exception string }{
		{"must be a string or an integer, got the number", exIntegerSpelling},
		{"must be a whole number of days, got", exIntegerSpelling},
		{"IEEE 754 double", exExactDouble},
		{"bytes, more than the limit of", exDetailsBytes},
		{"is nested more than", exDetailsDepth},
		{"after the time it was received", exFutureSkew},
		{"is before 1970-01-01T00:00:00Z", exEpochOffset},
	} {
		if strings.Contains(msg, c.rule) {
			return c.exception
		}
	}
	return ""
}

// hasDuplicateKey reports whether any object in data (valid JSON) repeats
// a member name.
func hasDuplicateKey(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	var dup bool
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				if seen[k.(string)] {
					dup = true
				}
				seen[k.(string)] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token()
			return err
		}
		return nil
	}
	_ = walk()
	return dup
}

// compileSchemas compiles every shipped schema with format assertion on
// (date-time, date, ipv4, ipv6 are rules, not annotations).
func compileSchemas(t testing.TB) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, name := range contract.SchemaNames() {
		raw, err := contract.Schema(name)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		if id := doc.(map[string]any)["$id"]; id != contract.SchemaBaseURI+name+".json" {
			t.Fatalf("schema %s: $id %v, want %s", name, id, contract.SchemaBaseURI+name+".json")
		}
		if err := c.AddResource(contract.SchemaBaseURI+name+".json", doc); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range contract.SchemaNames() {
		s, err := c.Compile(contract.SchemaBaseURI + name + ".json")
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// validate applies s to data; an error when data is not one JSON value
// or breaks the schema.
func validate(s *jsonschema.Schema, data []byte) error {
	if !json.Valid(data) { // encoding/json: invalid UTF-8 becomes U+FFFD
		return errors.New("not a JSON value")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// corpusEntry is one input from a fuzz corpus file.
type corpusEntry struct {
	file     string
	data     []byte
	fallback string // FuzzDecodeEvent's second value
}

// readCorpus reads Go fuzz corpus files ("go test fuzz v1", then one
// value per line: []byte("..."), string("..."), int(3)).
func readCorpus(t *testing.T, target string) []corpusEntry {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "domain", "audit", "testdata", "fuzz", target, "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus for %s (%v)", target, err)
	}
	var out []corpusEntry
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a fuzz corpus file", p)
		}
		e := corpusEntry{file: filepath.Base(p), fallback: "AUDIT:7"}
		for _, l := range lines[1:] {
			kind, lit, ok := strings.Cut(l, "(")
			if !ok || !strings.HasSuffix(lit, ")") {
				t.Fatalf("%s: cannot read %q", p, l)
			}
			lit = strings.TrimSuffix(lit, ")")
			switch kind {
			case "[]byte", "string":
				s, err := strconv.Unquote(lit)
				if err != nil {
					t.Fatalf("%s: %q: %v", p, l, err)
				}
				if kind == "[]byte" {
					e.data = []byte(s)
				} else {
					e.fallback = s
				}
			}
		}
		out = append(out, e)
	}
	return out
}

var received = time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)

// bulkLimit is AUDITQ_BULK_MAX_EVENTS's default, the schema's maxItems.
func bulkLimit(t *testing.T) int {
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.BulkMaxEvents
}

// decoders by schema: each returns nil when the input is accepted whole.
func decoders(t *testing.T) map[string]func(data []byte, fallback string) error {
	limit := bulkLimit(t)
	return map[string]func([]byte, string) error{
		contract.SchemaEvent: func(data []byte, fallback string) error {
			_, err := audit.DecodeEvent(data, audit.Receipt{ReceivedAt: received, FallbackID: fallback})
			return err
		},
		contract.SchemaBulk: func(data []byte, fallback string) error {
			_, rejected, err := audit.DecodeBulk(data, limit, audit.Receipt{ReceivedAt: received, FallbackID: fallback})
			if err == nil && len(rejected) > 0 {
				err = errors.New(rejected[0].Error)
			}
			return err
		},
		contract.SchemaCleanup: func(data []byte, _ string) error {
			_, err := audit.DecodeCleanupRequest(data)
			return err
		},
	}
}

// check holds one input to schema and decoder, recording which exception
// excused a disagreement.
func check(t *testing.T, s *jsonschema.Schema, decode func([]byte, string) error, name, label string, data []byte, fallback string, used map[string]int) {
	t.Helper()
	decodeErr := decode(data, fallback)
	schemaErr := validate(s, data)
	if (decodeErr == nil) == (schemaErr == nil) {
		return
	}
	if ex := exceptionFor(data, decodeErr, schemaErr); ex != "" {
		used[ex]++
		return
	}
	show := string(data)
	if len(show) > 300 {
		show = show[:300] + "..."
	}
	if decodeErr == nil {
		t.Errorf("%s %s: the decoder accepts %q, the schema rejects it: %v", name, label, show, schemaErr)
	} else {
		t.Errorf("%s %s: the decoder rejects %q (%v), the schema accepts it", name, label, show, decodeErr)
	}
}

func TestSchemaMatchesDecoder(t *testing.T) {
	schemas := compileSchemas(t)
	dec := decoders(t)
	used := map[string]int{}
	for target, name := range map[string]string{
		"FuzzDecodeEvent": contract.SchemaEvent, "FuzzDecodeBulk": contract.SchemaBulk, "FuzzDecodeCleanupRequest": contract.SchemaCleanup,
	} {
		for _, e := range readCorpus(t, target) {
			check(t, schemas[name], dec[name], name, target+"/"+e.file, e.data, e.fallback, used)
			if name == contract.SchemaBulk {
				// Each member of an accepted envelope on its own.
				var env struct{ Events []json.RawMessage }
				if _, _, err := audit.DecodeBulk(e.data, bulkLimit(t), audit.Receipt{ReceivedAt: received, FallbackID: "AUDIT:9"}); err == nil &&
					json.Unmarshal(e.data, &env) == nil {
					for i, item := range env.Events {
						check(t, schemas[contract.SchemaEvent], dec[contract.SchemaEvent], "event",
							fmt.Sprintf("%s/%s events[%d]", target, e.file, i), item, "AUDIT:9:"+strconv.Itoa(i), used)
					}
				}
			}
		}
	}
	// docs/examples: arrays of events, single events, bulk messages.
	examples, _ := filepath.Glob(filepath.Join("..", "..", "docs", "examples", "*.json"))
	for _, p := range examples {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var probe any
		_ = json.Unmarshal(b, &probe)
		switch v := probe.(type) {
		case []any:
			var items []json.RawMessage
			_ = json.Unmarshal(b, &items)
			for i, item := range items {
				check(t, schemas[contract.SchemaEvent], dec[contract.SchemaEvent], "event", fmt.Sprintf("%s[%d]", p, i), item, "", used)
			}
		case map[string]any:
			name := contract.SchemaEvent
			if _, ok := v["events"]; ok {
				name = contract.SchemaBulk
			}
			check(t, schemas[name], dec[name], name, p, b, "bulk-x", used)
		}
	}
	for _, ex := range []string{exInvalidUTF8, exDuplicateKey, exIntegerSpelling, exExactDouble, exDetailsBytes,
		exDetailsDepth, exFutureSkew, exFallbackID, exEpochOffset} {
		if used[ex] == 0 {
			t.Errorf("exception %q excused nothing: drop it, or add the input that needs it to the corpus", ex)
		}
	}
	names := make([]string, 0, len(used))
	for ex, n := range used {
		names = append(names, fmt.Sprintf("%4d  %s", n, ex))
	}
	sort.Strings(names)
	t.Logf("disagreements excused by a named exception:\n%s", strings.Join(names, "\n"))
}

// The bulk schema's maxItems is the default bulk limit.
func TestSchemaBulkLimit(t *testing.T) {
	raw, _ := contract.Schema(contract.SchemaBulk)
	var s struct {
		Properties struct {
			Events struct {
				MaxItems int `json:"maxItems"`
			} `json:"events"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Properties.Events.MaxItems, bulkLimit(t); got != want {
		t.Fatalf("bulk.json maxItems = %d, AUDITQ_BULK_MAX_EVENTS defaults to %d", got, want)
	}
}
