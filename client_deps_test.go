package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestClientBuildsOnlyNATS keeps the Go client (module
// github.com/auditq/auditq/client, in client/) light for the services
// that import it: its packages and their tests build from the standard
// library, nats.go and the modules nats.go itself needs, never the
// service's (bun, pgx, watermill, nats-server).
func TestClientBuildsOnlyNATS(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-test", "-f", "{{with .Module}}{{.Path}}{{end}}", "./...")
	cmd.Dir = "client"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in client/: %v", err)
	}
	var mods []string
	for _, m := range strings.Fields(string(out)) {
		if !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	slices.Sort(mods)
	want := []string{"github.com/auditq/auditq/client", "github.com/klauspost/compress", "github.com/nats-io/nats.go",
		"github.com/nats-io/nkeys", "github.com/nats-io/nuid", "golang.org/x/crypto", "golang.org/x/sys"}
	for _, m := range mods {
		if !slices.Contains(want, m) {
			t.Errorf("the client builds module %s; it may build only %v", m, want)
		}
	}
	if !slices.Contains(mods, "github.com/nats-io/nats.go") {
		t.Errorf("the client builds %v: no nats.go? go list changed?", mods)
	}
}
