package keyfile_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditq/auditq/adapters/keyfile"
)

func TestLoadOrCreateCheckedWritesOnlyAnAcceptedKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir", "signing-key.pem")
	refuse := errors.New("refused")
	var seen ed25519.PublicKey
	_, _, err := keyfile.LoadOrCreateChecked(path, func(pub ed25519.PublicKey, created bool) error {
		if !created {
			t.Error("a missing file reported as found")
		}
		seen = pub
		return refuse
	})
	if !errors.Is(err, refuse) || seen == nil {
		t.Fatalf("got %v, want the check's error", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused key was written: %v", err)
	}

	priv, created, err := keyfile.LoadOrCreateChecked(path, func(ed25519.PublicKey, bool) error { return nil })
	if err != nil || !created {
		t.Fatalf("accepted new key: created %v, %v", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}

	// An existing file: checked as found, refused without being touched.
	_, _, err = keyfile.LoadOrCreateChecked(path, func(pub ed25519.PublicKey, created bool) error {
		if created || !pub.Equal(priv.Public()) {
			t.Errorf("check of the existing key: created %v, key %x", created, pub)
		}
		return refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("got %v, want the check's error", err)
	}
	if again, created, err := keyfile.LoadOrCreate(path); err != nil || created || !again.Equal(priv) {
		t.Fatalf("the key file changed: created %v, %v", created, err)
	}
}
