package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeListsEveryVariable checks the README's configuration table
// against Vars: the same names, and each row naming one variable gives
// its default ("(empty)" or a blank cell for none).
func TestReadmeListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile("`(AUDITQ_[A-Z0-9_]+)`")
	documented := map[string]string{} // name -> default cell, "*" for rows of several names
	for line := range strings.SplitSeq(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `AUDITQ_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " |")
		if len(cells) < 3 {
			t.Fatalf("README configuration row without default and meaning: %s", line)
		}
		names := name.FindAllStringSubmatch(cells[0], -1)
		for _, m := range names {
			documented[m[1]] = "*"
			if len(names) == 1 {
				documented[m[1]] = strings.TrimSpace(cells[1])
			}
		}
	}
	for _, v := range Vars {
		def, ok := documented[v.Name]
		if !ok {
			t.Errorf("%s is not in the README's configuration table", v.Name)
			continue
		}
		delete(documented, v.Name)
		want := "`" + v.Default + "`"
		if v.Default == "" {
			want = "(empty)"
		}
		if ok := def == "*" || def == want || v.Default == "" && def == ""; !ok {
			t.Errorf("README gives %s the default %s, Vars %q", v.Name, def, v.Default)
		}
	}
	for n := range documented {
		t.Errorf("README documents %s, which Load does not read", n)
	}
}
