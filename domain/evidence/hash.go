// Package evidence makes the audit trail tamper-evident: the canonical
// encoding of an event (its Merkle leaf), Merkle trees over the events of
// one committed batch, the hash chain of batches, signed deletion records
// (retention) and signed checkpoints, and the checks that verify them. It
// is pure computation: storage and transport live in the adapters. The
// formats are specified in docs/tamper-evidence.md.
package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Hash is a SHA-256 digest.
type Hash [32]byte

// ZeroHash is the all-zero hash: the "previous" hash of the first record of
// a chain, and the leaf of a batch position that stored no event.
var ZeroHash Hash

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is ZeroHash.
func (h Hash) IsZero() bool { return h == ZeroHash }

// MarshalText encodes h as lower-case hex (JSON: a string).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 hex digits; it returns an error for anything else.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash decodes 64 hex digits; it returns an error for anything else.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("hash %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	return h, nil
}

// HashFromBytes copies a 32-byte slice into a Hash; it returns an error for
// any other length.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != len(h) {
		return h, fmt.Errorf("hash of %d bytes, want %d", len(b), len(h))
	}
	copy(h[:], b)
	return h, nil
}

// Sum returns the SHA-256 of data.
func Sum(data []byte) Hash { return sha256.Sum256(data) }
