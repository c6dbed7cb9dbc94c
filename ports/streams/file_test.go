package streams

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
	f := &file{dir: dir, name: "s", maxBytes: 30, maxAge: time.Hour, keepFiles: DefaultKeepFiles, now: time.Now}
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

// Rotated files beyond the newest keepFiles, and those rotated more than
// keepFor ago, are removed at each rotation; files of other names in the
// directory (a stream whose name starts the same, a file of the user's)
// stay.
func TestFileSinkBoundsRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	others := []string{"s-x-20261101T000000.000000000Z.ndjson", "notes.txt", "s-20261101.ndjson"}
	for _, n := range others {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("keep\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := &file{dir: dir, name: "s", maxBytes: 5, maxAge: 24 * time.Hour, keepFiles: 3, keepFor: 10 * time.Hour, now: now}
	ctx := context.Background()
	rotated := func() []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(dir, "s-2*Z.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(m))
		for i, p := range m {
			out[i] = filepath.Base(p)
		}
		return out
	}
	for i := range 6 { // every Send after the first rotates (5 bytes a file)
		if err := f.Send(ctx, []Item{{ID: "e", Body: []byte(`{"i":` + string(rune('0'+i)) + `}`)}}); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Hour)
	}
	got := rotated()
	want := []string{"s-20261201T030000.000000000Z.ndjson", "s-20261201T040000.000000000Z.ndjson", "s-20261201T050000.000000000Z.ndjson"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after 5 rotations with keepFiles 3: %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, want[2])); string(b) != "{\"i\":4}\n" {
		t.Fatalf("newest rotated file holds %q", b)
	}
	clock = clock.Add(14*time.Hour + 30*time.Minute) // 05:00 is now 15.5 h old, 03:00 and 04:00 older
	if err := f.Send(ctx, []Item{{ID: "e", Body: []byte(`{"i":6}`)}}); err != nil {
		t.Fatal(err)
	}
	if got := rotated(); len(got) != 1 || got[0] != "s-20261201T203000.000000000Z.ndjson" {
		t.Fatalf("after a rotation with keepFor 10h: %v, want only the one just rotated", got)
	}
	for _, n := range others {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v (not this stream's rotated file: must stay)", n, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
