package cli

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/auditq/auditq/ports"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := Version(nil, &out); err != nil {
		t.Fatal(err)
	}
	if want := "auditq " + ports.ReadBuild().String() + "\n"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
	if err := Version([]string{"extra"}, &out); err == nil {
		t.Fatalf("version extra: %v", err)
	}
}

func TestRunKnowsTheNewCommands(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), "version", nil, Deps{}, &out); err != nil || !strings.HasPrefix(out.String(), "auditq ") {
		t.Fatalf("Run version: %v, %q", err, out.String())
	}
	out.Reset()
	if err := Run(context.Background(), "checkpoint", []string{"-h"}, Deps{}, &out); err != nil || !strings.Contains(out.String(), "Usage: auditq checkpoint") {
		t.Fatalf("Run checkpoint -h: %v, %q", err, out.String())
	}
	for _, name := range []string{"checkpoint", "version"} {
		if !slices.Contains(Commands, name) {
			t.Errorf("Commands lacks %q", name)
		}
	}
}
