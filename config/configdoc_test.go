package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestConfigDocListsEveryVariable checks the configuration tables of
// docs/configuration.md against Vars: the same names, and each row naming
// one variable gives its default ("(empty)" or a blank cell for none).
func TestConfigDocListsEveryVariable(t *testing.T) {
	const path = "../docs/configuration.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile("`(AUDITQ_[A-Z0-9_]+)`")
	documented := map[string]string{} // name -> default cell, "*" for rows of several names
	for line := range strings.SplitSeq(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `AUDITQ_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " |")
		if len(cells) < 3 {
			t.Fatalf("%s: configuration row without default and meaning: %s", path, line)
		}
		names := name.FindAllStringSubmatch(cells[0], -1)
		for _, m := range names {
			if _, twice := documented[m[1]]; twice {
				t.Errorf("%s lists %s twice", path, m[1])
			}
			documented[m[1]] = "*"
			if len(names) == 1 {
				documented[m[1]] = strings.TrimSpace(cells[1])
			}
		}
	}
	for _, v := range Vars {
		def, ok := documented[v.Name]
		if !ok {
			t.Errorf("%s is not in the configuration tables of %s", v.Name, path)
			continue
		}
		delete(documented, v.Name)
		want := "`" + v.Default + "`"
		if v.Default == "" {
			want = "(empty)"
		}
		if ok := def == "*" || def == want || v.Default == "" && def == ""; !ok {
			t.Errorf("%s gives %s the default %s, Vars %q", path, v.Name, def, v.Default)
		}
	}
	for n := range documented {
		t.Errorf("%s documents %s, which Load does not read", path, n)
	}
}
