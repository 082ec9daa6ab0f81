package audit

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
)

// The Merkle tree of RFC 6962 (section 2.1) over event hashes.

// ErrProof: an inclusion proof does not lead to the root.
var ErrProof = errors.New("audit: inclusion proof does not verify")

// LeafHash is SHA-256(0x00 || h): the tree's leaf for an event hash h.
func LeafHash(h Hash) Hash {
	var b [1 + sha256.Size]byte
	copy(b[1:], h[:])
	return sha256.Sum256(b[:])
}

func nodeHash(left, right Hash) Hash {
	var b [1 + 2*sha256.Size]byte
	b[0] = 1
	copy(b[1:], left[:])
	copy(b[1+sha256.Size:], right[:])
	return sha256.Sum256(b[:])
}

// split is the largest power of two smaller than n (n > 1).
func split(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }

// MerkleRoot is the RFC 6962 tree hash over the event hashes in order:
// SHA-256 of nothing for none.
func MerkleRoot(hashes []Hash) Hash {
	switch len(hashes) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return LeafHash(hashes[0])
	}
	k := split(len(hashes))
	return nodeHash(MerkleRoot(hashes[:k]), MerkleRoot(hashes[k:]))
}

// InclusionProof is the RFC 6962 audit path of hashes[i]: the sibling
// subtree hashes from the leaf up to the root. It panics when i is out of
// range.
func InclusionProof(hashes []Hash, i int) []Hash {
	if i < 0 || i >= len(hashes) {
		panic(fmt.Sprintf("audit: inclusion proof of leaf %d of %d", i, len(hashes)))
	}
	if len(hashes) == 1 {
		return nil
	}
	k := split(len(hashes))
	if i < k {
		return append(InclusionProof(hashes[:k], i), MerkleRoot(hashes[k:]))
	}
	return append(InclusionProof(hashes[k:], i-k), MerkleRoot(hashes[:k]))
}

// InclusionProofs returns the audit path of every leaf, as InclusionProof
// does, in O(n log n) rather than O(n²) for all of them.
func InclusionProofs(hashes []Hash) [][]Hash {
	proofs := make([][]Hash, len(hashes))
	allProofs(hashes, proofs)
	return proofs
}

// allProofs appends to proofs[i] the path of hashes[i] within this subtree
// and returns the subtree's hash.
func allProofs(hashes []Hash, proofs [][]Hash) Hash {
	if len(hashes) <= 1 {
		return MerkleRoot(hashes)
	}
	k := split(len(hashes))
	left := allProofs(hashes[:k], proofs[:k])
	right := allProofs(hashes[k:], proofs[k:])
	for i := range proofs[:k] {
		proofs[i] = append(proofs[i], right)
	}
	for i := range proofs[k:] {
		proofs[k+i] = append(proofs[k+i], left)
	}
	return nodeHash(left, right)
}

// VerifyInclusion checks that the event hash h is leaf i of a tree of n
// leaves with root root, by the audit path proof (RFC 9162, section
// 2.1.3.2). It returns nil or an error matching ErrProof.
func VerifyInclusion(h Hash, i, n int, proof []Hash, root Hash) error {
	if i < 0 || i >= n {
		return fmt.Errorf("%w: leaf %d of %d", ErrProof, i, n)
	}
	fn, sn := i, n-1
	r := LeafHash(h)
	for _, p := range proof {
		if sn == 0 {
			return fmt.Errorf("%w: path too long", ErrProof)
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: path too short", ErrProof)
	}
	if r != root {
		return fmt.Errorf("%w: leaf %d of %d gives a different root", ErrProof, i, n)
	}
	return nil
}
