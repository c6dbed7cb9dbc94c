package keyfile

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// KEK is a key-encryption key read from a file: it wraps (AES-256-GCM,
// random nonce) the keys auditq stores in the database. Its methods never
// return or log the key.
type KEK struct {
	aead cipher.AEAD
	id   string
}

// LoadKEK reads the key-encryption key in path: 32 bytes written as 64
// hexadecimal digits (`openssl rand -hex 32`), surrounding white space
// ignored. It returns an error naming the file when it is missing,
// unreadable or not such a key; the error never holds the file's content.
func LoadKEK(path string) (*KEK, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	text := strings.TrimSpace(string(data))
	key, err := hex.DecodeString(text)
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("key-encryption key %s: must hold 32 bytes as 64 hexadecimal digits (openssl rand -hex 32), found %d characters", path, len(text))
	}
	return NewKEK(key)
}

// LoadOrCreateKEK loads the key in path as LoadKEK does or, when the file
// does not exist, makes a random key and writes it there durably (mode
// 0600, directories 0700). Instances starting at once end up with the
// same key. It returns an error naming the file when it cannot be read or
// created; the error never holds a key.
func LoadOrCreateKEK(path string) (*KEK, error) {
	k, err := LoadKEK(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if err := createOnce(path, ".auditq-key-*", []byte(hex.EncodeToString(key)+"\n")); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("key-encryption key: create %s: %w", path, err)
	}
	return LoadKEK(path)
}

// NewKEK returns a KEK over a 32-byte key; it returns an error for any
// other length.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != 32 {
		return nil, errors.New("key-encryption key: must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("auditq kek id v1\n"), key...))
	return &KEK{aead: aead, id: hex.EncodeToString(sum[:8])}, nil
}

// ID returns the key's public id: the hex of the first 8 bytes of
// SHA-256 of "auditq kek id v1\n" followed by the key. It identifies the
// key without revealing it.
func (k *KEK) ID() string { return k.id }

// Wrap seals key with associated data ad: nonce || ciphertext || tag.
func (k *KEK) Wrap(key, ad []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(key)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("wrap key: %w", err)
	}
	return k.aead.Seal(nonce, nonce, key, ad), nil
}

// Unwrap opens what Wrap sealed with the same ad; it returns an error when
// the key or ad differ or the bytes were changed.
func (k *KEK) Unwrap(wrapped, ad []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(wrapped) < n+k.aead.Overhead() {
		return nil, errors.New("unwrap key: too short")
	}
	out, err := k.aead.Open(nil, wrapped[:n], wrapped[n:], ad)
	if err != nil {
		return nil, errors.New("unwrap key: authentication failed (another key-encryption key, or modified)")
	}
	return out, nil
}
