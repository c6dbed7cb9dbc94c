package keyfile_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditq/auditq/adapters/keyfile"
)

// A prepared key sits beside the current one until it is promoted (then
// it is the current key and the old key's bytes are gone from the file)
// or discarded (then the current key is unchanged); a prepared key that
// is malformed is an error naming it.
func TestFilePrepareThenPromoteOrDiscard(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := keyfile.NewFile(path)
	if err := f.CheckWritable(); err != nil {
		t.Fatal(err)
	}
	cur, next, err := f.Keys()
	if err != nil || next != nil {
		t.Fatalf("keys: %v, next %v", err, next)
	}
	first := cur.ID()

	prepared, err := f.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if cur, next, err = f.Keys(); err != nil || next == nil || next.ID() != prepared.ID() || cur.ID() != first {
		t.Fatalf("after prepare: %v, current %v, next %v", err, cur, next)
	}
	if err := f.Discard(); err != nil {
		t.Fatal(err)
	}
	if cur, next, err = f.Keys(); err != nil || next != nil || cur.ID() != first {
		t.Fatalf("after discard: %v, current %v, next %v", err, cur, next)
	}

	prepared, err = f.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Promote(); err != nil {
		t.Fatal(err)
	}
	if cur, next, err = f.Keys(); err != nil || next != nil || cur.ID() != prepared.ID() {
		t.Fatalf("after promote: %v, current %v, next %v", err, cur, next)
	}
	data, err := os.ReadFile(path)
	if err != nil || bytes.Contains(data, []byte(hex.EncodeToString(key))) {
		t.Fatalf("the old key is still in the file: %v", err)
	}
	if err := f.Promote(); err == nil {
		t.Fatal("promote without a prepared key succeeded")
	}

	if err := os.WriteFile(f.NextPath(), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Keys(); err == nil || !bytes.Contains([]byte(err.Error()), []byte(f.NextPath())) {
		t.Fatalf("a malformed prepared key: %v", err)
	}
}
