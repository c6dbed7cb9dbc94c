package evidence

import (
	"crypto/sha256"
	"math/bits"
)

// nodeHash is an interior Merkle node: SHA-256(0x01 || left || right).
func nodeHash(l, r Hash) Hash {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// MerkleRoot returns the RFC 6962 Merkle tree hash over leaf hashes: for
// one leaf the leaf itself, for more the node hash of the left subtree
// (the largest power of two below n leaves) and the right one. The root of
// no leaves is SHA-256 of nothing.
func MerkleRoot(leaves []Hash) Hash {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	// Level by level, promoting an odd last node: the same tree as RFC
	// 6962's recursive split.
	level := make([]Hash, len(leaves))
	copy(level, leaves)
	for len(level) > 1 {
		n := 0
		for i := 0; i+1 < len(level); i += 2 {
			level[n] = nodeHash(level[i], level[i+1])
			n++
		}
		if len(level)%2 == 1 {
			level[n] = level[len(level)-1]
			n++
		}
		level = level[:n]
	}
	return level[0]
}

// splitPoint is the largest power of two smaller than n (n > 1).
func splitPoint(n int) int {
	return 1 << (bits.Len(uint(n-1)) - 1)
}

// InclusionProof returns the RFC 6962 audit path of leaves[index]: the
// sibling hashes from the leaf up to the root. It panics when index is out
// of range.
func InclusionProof(leaves []Hash, index int) []Hash {
	if index < 0 || index >= len(leaves) {
		panic("evidence: inclusion proof index out of range")
	}
	var path []Hash
	for len(leaves) > 1 {
		k := splitPoint(len(leaves))
		if index < k {
			path = append(path, MerkleRoot(leaves[k:]))
			leaves = leaves[:k]
		} else {
			path = append(path, MerkleRoot(leaves[:k]))
			leaves = leaves[k:]
			index -= k
		}
	}
	// Collected from the top down; the audit path runs bottom up.
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path
}

// VerifyInclusion reports whether proof shows that leaf is at index in a
// tree of size leaves with the given root (RFC 9162, section 2.1.3.2).
func VerifyInclusion(leaf Hash, index, size int, proof []Hash, root Hash) bool {
	if index < 0 || index >= size {
		return false
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == root
}
