package contract

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// The JSON Schemas (draft 2020-12) of the public contract: the event, the
// bulk message, the cleanup job, and every request and reply of the micro
// service (docs/contract.md, "Schema"). They refer to each other by
// relative $ref ("common.json#/$defs/..."), resolved against their $id,
// SchemaBaseURI plus the file name.
//
//go:embed schema/*.json
var schemaFS embed.FS

// SchemaBaseURI is the base of every schema's $id: the $id of
// schema/event.json is SchemaBaseURI + "event.json".
const SchemaBaseURI = "https://github.com/auditq/auditq/schema/"

// SubjectSchema is a request subject answered by the micro service with
// the schemas: {} for all of them ({"schemas": {name: schema, ...}}),
// {"name": "event"} for one (the schema itself).
const SubjectSchema = "audit.schema"

// SchemaNames returns the names of the shipped schemas ("event", "bulk",
// ...), sorted: the file names without ".json".
func SchemaNames() []string {
	entries, _ := fs.ReadDir(schemaFS, "schema")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(names)
	return names
}

// Schema returns the schema called name ("event", or "event.json"), as
// shipped.
func Schema(name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".json")
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return nil, fmt.Errorf("schema %q: no such schema (one of %s)", name, strings.Join(SchemaNames(), ", "))
	}
	b, err := schemaFS.ReadFile(path.Join("schema", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("schema %q: no such schema (one of %s)", name, strings.Join(SchemaNames(), ", "))
	}
	return b, nil
}

// SchemaBundle is the answer of SubjectSchema without a name: every
// schema by name.
type SchemaBundle struct {
	BaseURI string                     `json:"baseUri"`
	Schemas map[string]json.RawMessage `json:"schemas"`
}

// Schemas returns every shipped schema.
func Schemas() SchemaBundle {
	b := SchemaBundle{BaseURI: SchemaBaseURI, Schemas: map[string]json.RawMessage{}}
	for _, n := range SchemaNames() {
		s, _ := Schema(n)
		b.Schemas[n] = s
	}
	return b
}

// Schema names of the messages, for Schema.
const (
	SchemaEvent   = "event"   // audit.log
	SchemaBulk    = "bulk"    // audit.bulk
	SchemaCleanup = "cleanup" // audit.cleanup
)
