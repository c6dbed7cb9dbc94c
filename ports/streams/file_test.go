package streams

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A line a crash left half-written is cut off before the next write; the
// file rotates at its size limit, the old one renamed beside it.
func TestFileSinkCutsAPartialLineAndRotates(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, "s.ndjson")
	if err := os.WriteFile(cur, []byte("{\"id\":\"a\"}\n{\"id\":\"b\",\"trunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &file{dir: dir, name: "s", maxBytes: 30, maxAge: time.Hour, now: time.Now}
	ctx := context.Background()
	if err := f.Send(ctx, []Item{{ID: "b", Body: []byte(`{"id":"b"}`)}, {ID: "c", Body: []byte(`{"id":"c"}`)}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cur); string(b) != "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n" {
		t.Fatalf("after the restart: %q", b)
	}
	if err := f.Send(ctx, []Item{{ID: "d", Body: []byte(`{"id":"d"}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rotated, _ := filepath.Glob(filepath.Join(dir, "s-*.ndjson"))
	if len(rotated) != 1 {
		t.Fatalf("rotated files: %v", rotated)
	}
	if b, _ := os.ReadFile(cur); string(b) != "{\"id\":\"d\"}\n" {
		t.Fatalf("new file: %q", b)
	}
}

// The webhook signature is HMAC-SHA256 of "<timestamp>.<body>", as
// docs/streams.md tells receivers to compute it.
func TestSign(t *testing.T) {
	got := Sign([]byte("Jefe"), "1795510900", []byte(`[{"id":"a"}]`))
	// printf '1795510900.[{"id":"a"}]' | openssl dgst -sha256 -hmac Jefe
	if want := "v1=cadd858227340c0595a8566dd15f4e73088048a3e0417a01658683df751dced1"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}
