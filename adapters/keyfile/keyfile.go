// Package keyfile is the driven adapter for the signing key: an Ed25519
// private key in a PKCS#8 PEM file that only its owner may read.
package keyfile

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Load reads the Ed25519 private key in path (PEM "PRIVATE KEY", PKCS#8).
// It returns an error naming the file when it is missing or not such a key.
func Load(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM \"PRIVATE KEY\" file", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: a %T, not an Ed25519 key", path, key)
	}
	return priv, nil
}

// LoadOrCreate loads the key in path, or, when the file does not exist,
// generates a new key and writes it there (mode 0600, directories 0700).
// created reports a new key. Instances starting at once end up with the
// same key: the file appears atomically and only once.
func LoadOrCreate(path string) (priv ed25519.PrivateKey, created bool, err error) {
	return LoadOrCreateChecked(path, nil)
}

// LoadOrCreateChecked is LoadOrCreate with a check of the public key
// before it is used: check (if not nil) is called with the key found in
// path (created false), or with a newly generated one (created true)
// before that is written, so that a key the check refuses is never left
// in path. Its error is returned as is.
func LoadOrCreateChecked(path string, check func(pub ed25519.PublicKey, created bool) error) (priv ed25519.PrivateKey, created bool, err error) {
	if check == nil {
		check = func(ed25519.PublicKey, bool) error { return nil }
	}
	priv, err = Load(path)
	if err == nil {
		if err := check(priv.Public().(ed25519.PublicKey), false); err != nil {
			return nil, false, err
		}
		return priv, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	_, priv, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("signing key: generate: %w", err)
	}
	if err := check(priv.Public().(ed25519.PublicKey), true); err != nil {
		return nil, false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	if err := createOnce(path, ".signing-key-*", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		if errors.Is(err, fs.ErrExist) { // another instance was faster
			if priv, err = Load(path); err != nil {
				return nil, false, err
			}
			if err := check(priv.Public().(ed25519.PublicKey), false); err != nil {
				return nil, false, err
			}
			return priv, false, nil
		}
		return nil, false, fmt.Errorf("signing key: create %s: %w", path, err)
	}
	return priv, true, nil
}

// createOnce creates the file path holding data (mode 0600, directories
// 0700), synced, unless it exists: then it returns an error wrapping
// fs.ErrExist and leaves the file as it is. The file appears atomically
// and only once, also when several processes create it at once.
func createOnce(path, pattern string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	// Best effort: linked to path or not, the temporary name is not needed.
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// EncodePublicKey returns pub in standard base64, the form auditq prints.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }
