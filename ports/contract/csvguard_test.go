package contract_test

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/auditq/auditq/ports/contract"
)

// A value starting with a formula character (= + - @ tab CR) or with the
// guard's quote gets one quote before it; any other value stays as it is;
// UnguardCSVCell gives back every value.
func TestGuardCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"plain":             "plain",
		"=1+1":              "'=1+1",
		"+33 1 23":          "'+33 1 23",
		"-1":                "'-1",
		"@SUM(A1:A9)":       "'@SUM(A1:A9)",
		"\tx":               "'\tx",
		"\rx":               "'\rx",
		"'":                 "''",
		"'=kept":            "''=kept",
		"a=b":               "a=b",
		" =x":               " =x",
		`{"a": "=b"}`:       `{"a": "=b"}`,
		"2026-11-24T09:05Z": "2026-11-24T09:05Z",
	} {
		if got := contract.GuardCSVCell(in); got != want {
			t.Errorf("GuardCSVCell(%q) = %q, want %q", in, got, want)
		}
		if back := contract.UnguardCSVCell(contract.GuardCSVCell(in)); back != in {
			t.Errorf("UnguardCSVCell(GuardCSVCell(%q)) = %q", in, back)
		}
	}
}

// The CSV encoder guards every value unless raw; quoting still follows
// RFC 4180 around the guarded value.
func TestExportEncoderGuardsFormulas(t *testing.T) {
	user := "=cmd|' /C calc'!A0"
	v := contract.EventView{ID: "e-1", UserID: &user, Action: "user.login", ResourceType: "user", ResourceID: "-7",
		UserAgent: `@x,"y"`, Timestamp: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), ReceivedAt: time.Date(2026, 11, 24, 9, 0, 1, 0, time.UTC)}
	for _, raw := range []bool{false, true} {
		enc := contract.NewExportEncoder(contract.ExportCSV, contract.ExportEncoding{Raw: raw})
		if err := enc.Add(v); err != nil {
			t.Fatal(err)
		}
		rec, err := csv.NewReader(bytes.NewReader(enc.Take())).Read()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{user, "-7", `@x,"y"`}
		if !raw {
			want = []string{"'" + user, "'-7", `'@x,"y"`}
		}
		if rec[1] != want[0] || rec[4] != want[1] || rec[7] != want[2] || rec[0] != "e-1" || rec[2] != "user.login" {
			t.Errorf("raw %v: record %q, want userId %q resourceId %q userAgent %q", raw, rec, want[0], want[1], want[2])
		}
	}
}
