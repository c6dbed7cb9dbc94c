package audit_test

// The decoder's inputs, written out as Go fuzz corpus files under
// testdata/fuzz/<target>/ so that code outside this package can read
// them: ports/contract's schema test holds the JSON Schemas of the
// contract to the decoders over exactly these inputs (every one the
// decoder accepts validates, every one it rejects fails, or the test
// names the exception). The fuzz targets run them as seeds on every
// "go test" too. TestSchemaCorpusWritten fails when a seed or case here
// changed without the files: run
//
//	go test ./domain/audit -run TestSchemaCorpusWritten -update-corpus

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/auditq/auditq/domain/audit"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/*/schema-* from the seeds and cases")

// schemaEventCases are the event inputs of decode_test.go, valid_test.go
// and e2e/badinput_test.go beyond seedEvents.
func schemaEventCases() []string {
	base := `"action":"a","resourceType":"t","resourceId":"r"`
	long := func(n int) string { return strings.Repeat("x", n) }
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	return []string{
		`{"id": "evt-1", "userId": "u1", "action": "guild.update", "resourceType": "guild",
		"resourceId": "g1", "details": {"changed": ["name"], "n": 1.5}, "ipAddress": "2001:DB8::1",
		"userAgent": "Mozilla/5.0", "sessionId": "s1", "requestId": "r1", "success": false,
		"errorMessage": "denied\nby policy", "timestamp": "2026-11-24T13:45:00.1234567+01:00"}`,
		`{"action":"login","resourceType":"user","resourceId":0,"userId":null,"ipAddress":"","details":null}`,
		`{not json`, `[1,2]`, `{` + base + `} {}`, `{` + base,
		"{" + base + ",\"userAgent\":\"\xff\xfe\"}",
		`{` + base + `,"tenant":"x"}`, `{` + base + `,"action":"b"}`,
		`{"resourceType":"t","resourceId":"r"}`, `{"action":"","resourceType":"t","resourceId":"r"}`,
		`{"action":"a","resourceId":"r"}`, `{"action":"a","resourceType":"t"}`,
		`{"action":5,"resourceType":"t","resourceId":"r"}`, `{"action":{},"resourceType":"t","resourceId":"r"}`,
		`{"action":"` + long(audit.MaxNameLen+1) + `","resourceType":"t","resourceId":"r"}`,
		`{"action":"` + long(audit.MaxNameLen) + `","resourceType":"t","resourceId":"r"}`,
		`{"action":"a\u0000b","resourceType":"t","resourceId":"r"}`, `{"action":"a\nb","resourceType":"t","resourceId":"r"}`,
		`{"action":"a","resourceType":"t","resourceId":1.5}`, `{"action":"a","resourceType":"t","resourceId":true}`,
		`{"action":"a","resourceType":"t","resourceId":` + strings.Repeat("9", 41) + `}`,
		`{"action":"a","resourceType":"t","resourceId":` + strings.Repeat("9", 40) + `}`,
		`{"action":"a","resourceType":"t","resourceId":-` + strings.Repeat("9", 39) + `}`,
		`{"action":"a","resourceType":"t","resourceId":-` + strings.Repeat("9", 40) + `}`,
		`{"action":"a","resourceType":"t","resourceId":null}`, `{"action":"a","resourceType":"t","resourceId":""}`,
		`{"action":"a","resourceType":"t","resourceId":1e400}`,
		`{` + base + `,"userId":["u"]}`, `{` + base + `,"userId":"` + long(audit.MaxIDLen+1) + `"}`, `{` + base + `,"userId":""}`,
		`{` + base + `,"id":"` + long(audit.MaxIDLen+1) + `"}`, `{` + base + `,"id":"` + long(audit.MaxIDLen) + `"}`, `{` + base + `,"id":7}`,
		`{` + base + `,"details":[1]}`, `{` + base + `,"details":"x"}`,
		`{` + base + `,"details":{"a":"` + long(audit.MaxDetailsBytes) + `"}}`,
		`{` + base + `,"details":` + deep(audit.MaxDetailsDepth+1) + `}`, `{` + base + `,"details":` + deep(audit.MaxDetailsDepth) + `}`,
		`{` + base + `,"details":{"a":"x\u0000"}}`, `{` + base + `,"details":{"\u0000":1}}`, `{` + base + `,"details":{"a":[{"b":["\u0000"]}]}}`,
		`{` + base + `,"details":{"a":{"b":1,"b":2}}}`, `{` + base + `,"details":{"n":[1e-400]}}`, `{` + base + `,"details":{"p":"C:\\u0000"}}`,
		`{` + base + `,"ipAddress":"1.2.3"}`, `{` + base + `,"ipAddress":"1.2.3.4"}`, `{` + base + `,"ipAddress":"01.2.3.4"}`,
		`{` + base + `,"ipAddress":1234}`, `{` + base + `,"ipAddress":null}`,
		`{` + base + `,"userAgent":"` + long(audit.MaxUserAgentLen+1) + `"}`, `{` + base + `,"sessionId":{}}`,
		`{` + base + `,"requestId":"a\u0007"}`, `{` + base + `,"success":null}`, `{` + base + `,"success":1}`,
		`{` + base + `,"errorMessage":"` + long(audit.MaxErrorMessageLen+1) + `"}`, `{` + base + `,"errorMessage":"\u0000"}`,
		`{` + base + `,"errorMessage":"a\tb\r\nc"}`, `{` + base + `,"errorMessage":"a\u000bb"}`,
		`{` + base + `,"timestamp":"yesterday"}`, `{` + base + `,"timestamp":"2026-11-24T10:00:00"}`,
		`{` + base + `,"timestamp":"2999-01-01T00:00:00Z"}`, `{` + base + `,"timestamp":"2026-11-24T13:00:01Z"}`,
		`{` + base + `,"timestamp":"2026-11-24T13:00:00Z"}`, `{` + base + `,"timestamp":"2026-02-30T10:00:00Z"}`,
		`{` + base + `,"timestamp":"2026-11-24t10:00:00z"}`, `{` + base + `,"timestamp":"2026-11-24T10:00:60Z"}`,
		`{` + base + `,"timestamp":"1970-01-01T00:00:00Z"}`, `{` + base + `,"timestamp":"1970-01-01T00:30:00+01:00"}`,
		`{'action':'a'}`, `{"action":"a" /* c */}`, `{"action":"a","resourceType":"t","resourceId":"r",}`,
		`{"action":"a","resourceType":"t\u0007","resourceId":"r"}`,
	}
}

// schemaBulkCases are the bulk inputs of decode_test.go, FuzzDecodeBulk
// and e2e/badinput_test.go.
func schemaBulkCases() []string {
	ev := `{"action":"x","resourceType":"t","resourceId":"1"}`
	out := []string{
		`{"events":[{"id":"a","action":"x","resourceType":"t","resourceId":"1"},{"action":"","resourceType":"t","resourceId":"2"},` +
			`{"action":"y","resourceType":"t","resourceId":"3"},7]}`,
		`{"events":[` + ev + `,` + ev + `]}`, `{}`, `{"events":null}`, `{"events":{}}`, `{"events":[]}`,
		`{"events":[` + ev + `],"x":1}`, `[` + ev + `]`, `{"events":[`, `{"events":[{},{},{},{}]}`,
		`{"events":[1,2],"events":[3]}`, `{"events":[{}],"other":1}`, `[]`,
		`{"events":[ {"action":"a","resourceType":"t","resourceId":"r"} , [] , null ]}`,
		`{"events":[],"force":true}`,
		`{"events":[` + strings.TrimSuffix(strings.Repeat(ev+`,`, 1000), ",") + `]}`,
		`{"events":[` + strings.TrimSuffix(strings.Repeat(ev+`,`, 1001), ",") + `]}`,
	}
	for _, s := range seedEvents {
		out = append(out, `{"events":[`+s+`]}`)
	}
	return out
}

// schemaCleanupCases are the cleanup inputs of cleanup_test.go and
// FuzzDecodeCleanupRequest.
var schemaCleanupCases = []string{
	`{"retentionDays":90}`, `{"retentionDays":90,"excludeActions":["security.breach","admin.access"],"dryRun":true}`,
	`{"beforeDate":"2025-01-01T00:00:00Z","excludeActions":null,"dryRun":null}`,
	`{"beforeDate":"2025-01-01T00:00:00Z","retentionDays":90}`,
	`{}`, `[]`, `"x"`, `90`, `null`,
	`{"retentionDays":"90"}`, `{"retentionDays":90.5}`, `{"retentionDays":-1}`, `{"retentionDays":1e3}`,
	`{"retentionDays":99999999999999999999999}`, `{"retentionDays":true}`, `{"retentionDays":[90]}`,
	`{"beforeDate":20250101}`, `{"beforeDate":"yesterday"}`, `{"beforeDate":"0001-01-01T00:00:00Z"}`,
	`{"retentionDays":90,"excludeActions":"admin"}`, `{"retentionDays":90,"excludeActions":[1]}`,
	`{"retentionDays":90,"excludeActions":[""]}`, `{"retentionDays":90,"excludeActions":["a","a"]}`,
	`{"retentionDays":90,"excludeActions":["a\u0000"]}`, `{"retentionDays":90,"dryRun":"yes"}`,
	`{"retentionDays":90,"retentionDays":91}`, `{"retentionDays":90,"force":true}`,
	`{"retentionDays": 90}`, `{"beforeDate": "2025-01-01T01:00:00+01:00", "dryRun": true}`,
	`{"retentionDays": 400, "excludeActions": null, "dryRun": null}`,
	`{"retentionDays": 90, "excludeActions": ["a.b", "c", "a.b"]}`, `{"beforeDate": null, "retentionDays": 30}`,
	`[1]`, `{"dryRun": true}`, `{"retentionDays": 90, "olderThan": 3}`, `{"retentionDays": 36500}`, `{"retentionDays": 36501}`,
	`{"beforeDate": "2025-02-30T00:00:00Z"}`, `{"beforeDate": "2025-01-01"}`, `{"beforeDate": 1735689600}`,
	`{"retentionDays": 90, "excludeActions": ["a", 7]}`, `{"retentionDays": 90, "excludeActions": [null]}`,
	`{"retentionDays": 90, "excludeActions": ["a\u0001"]}`, `{"retentionDays": 90} {}`,
	`{"retentionDays":90,"excludeActions":[` + strings.TrimSuffix(strings.Repeat(`"a",`, 101), ",") + `]}`,
	`{"retentionDays":90,"excludeActions":[` + strings.TrimSuffix(strings.Repeat(`"a",`, 100), ",") + `]}`,
}

// corpusFile is one file in Go's fuzz corpus format.
func corpusFile(values ...string) []byte {
	return []byte("go test fuzz v1\n" + strings.Join(values, "\n") + "\n")
}

func TestSchemaCorpusWritten(t *testing.T) {
	files := map[string][]byte{} // path -> content
	add := func(target string, content []byte) {
		sum := sha256.Sum256(content)
		files[filepath.Join("testdata", "fuzz", target, "schema-"+hex.EncodeToString(sum[:8]))] = content
	}
	q := func(s string) string { return "[]byte(" + strconv.Quote(s) + ")" }
	for _, s := range append(append([]string{}, seedEvents...), schemaEventCases()...) {
		add("FuzzDecodeEvent", corpusFile(q(s), `string("AUDIT:7")`))
	}
	base := `{"action":"a","resourceType":"t","resourceId":"r"}`
	for _, fb := range []string{"", "msg\x01id", "msg\xffid", "msg\x00id", strings.Repeat("m", 300)} {
		add("FuzzDecodeEvent", corpusFile(q(base), "string("+strconv.Quote(fb)+")"))
	}
	for _, s := range schemaBulkCases() {
		add("FuzzDecodeBulk", corpusFile(q(s), "int(999)")) // FuzzDecodeBulk: limit 1 + 999%50 = 50
	}
	for _, s := range schemaCleanupCases {
		add("FuzzDecodeCleanupRequest", corpusFile(q(s)))
	}
	if *updateCorpus {
		for _, target := range []string{"FuzzDecodeEvent", "FuzzDecodeBulk", "FuzzDecodeCleanupRequest"} {
			old, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "schema-*"))
			for _, p := range old {
				if _, keep := files[p]; !keep {
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for p, content := range files {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var missing []string
	for p := range files {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d corpus files missing (%s, ...): run go test ./domain/audit -run TestSchemaCorpusWritten -update-corpus",
			len(missing), missing[0])
	}
}
