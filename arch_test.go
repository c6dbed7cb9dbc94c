package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesPointInward enforces the layering: domain imports nothing
// of ours, app imports only domain, ports never import adapters, and only
// main (the module root), the service package that wires the layers, and
// the tests that boot it (e2e) see everything.
func TestDependenciesPointInward(t *testing.T) {
	const mod = "github.com/auditq/auditq"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	layer := func(pkg string) string {
		rest := strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/")
		if rest == "" {
			return "main"
		}
		return strings.SplitN(rest, "/", 2)[0]
	}
	allowed := map[string]map[string]bool{
		"domain":     {"domain": true},
		"app":        {"domain": true, "app": true},
		"ports":      {"domain": true, "app": true, "ports": true, "config": false},
		"adapters":   {"domain": true, "app": true, "adapters": true, "migrations": true},
		"migrations": {},
		"config":     {},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from := layer(fields[0])
		rules, ok := allowed[from]
		if !ok {
			continue // main, service and e2e wire everything
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			checked++
			if to := layer(imp); !rules[to] {
				t.Errorf("%s imports %s: %s may not depend on %s", fields[0], imp, from, to)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no internal imports checked: go list output changed?")
	}
}
