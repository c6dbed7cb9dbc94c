package cli

import (
	"bytes"
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
