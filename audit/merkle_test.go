package audit

import (
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func leaves(n int) []Hash {
	hs := make([]Hash, n)
	for i := range hs {
		hs[i] = sha256.Sum256([]byte{byte(i), byte(i >> 8)})
	}
	return hs
}

// The tree of RFC 6962, section 2.1, written out by hand for small sizes.
func TestMerkleRootSmallTrees(t *testing.T) {
	h := leaves(5)
	l := func(i int) Hash { return LeafHash(h[i]) }
	n := nodeHash
	for _, c := range []struct {
		n    int
		want Hash
	}{
		{0, sha256.Sum256(nil)},
		{1, l(0)},
		{2, n(l(0), l(1))},
		{3, n(n(l(0), l(1)), l(2))},
		{4, n(n(l(0), l(1)), n(l(2), l(3)))},
		{5, n(n(n(l(0), l(1)), n(l(2), l(3))), l(4))},
	} {
		if got := MerkleRoot(h[:c.n]); got != c.want {
			t.Errorf("MerkleRoot(%d leaves) = %s, want %s", c.n, got, c.want)
		}
	}
	var zero [1 + 32]byte
	if got, want := LeafHash(Hash{}), Hash(sha256.Sum256(zero[:])); got != want {
		t.Errorf("LeafHash(zeros) = %s, want SHA-256(0x00 || 32 zeros) = %s", got, want)
	}
}

func TestInclusionProofs(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 70).Draw(t, "n")
		hs := leaves(n)
		root := MerkleRoot(hs)
		i := rapid.IntRange(0, n-1).Draw(t, "i")
		proof := InclusionProof(hs, i)
		if all := InclusionProofs(hs); !slices.Equal(all[i], proof) {
			t.Fatalf("InclusionProofs()[%d] = %v, want InclusionProof's %v", i, all[i], proof)
		}
		if err := VerifyInclusion(hs[i], i, n, proof, root); err != nil {
			t.Fatalf("proof of leaf %d of %d: %v", i, n, err)
		}
		// Another leaf, index or root, or a changed path, fails.
		fails := func(what string, h Hash, i, n int, proof []Hash) {
			if err := VerifyInclusion(h, i, n, proof, root); !errors.Is(err, ErrProof) {
				t.Fatalf("%s: VerifyInclusion = %v, want ErrProof", what, err)
			}
		}
		changed := hs[i]
		changed[rapid.IntRange(0, 31).Draw(t, "byte")] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
		fails("changed leaf", changed, i, n, proof)
		if n > 1 {
			j := (i + rapid.IntRange(1, n-1).Draw(t, "offset")) % n
			fails("other index", hs[i], j, n, proof)
			fails("other leaf", hs[j], i, n, proof)
			k := rapid.IntRange(0, len(proof)-1).Draw(t, "element")
			bad := append([]Hash(nil), proof...)
			bad[k][rapid.IntRange(0, 31).Draw(t, "pbyte")] ^= 1
			fails("changed path element", hs[i], i, n, bad)
			fails("path element dropped", hs[i], i, n, proof[:len(proof)-1])
		}
		fails("path element added", hs[i], i, n, append(append([]Hash(nil), proof...), root))
		fails("index out of range", hs[i], n, n, proof)
		otherRoot := root
		otherRoot[0] ^= 1
		if err := VerifyInclusion(hs[i], i, n, proof, otherRoot); !errors.Is(err, ErrProof) {
			t.Fatalf("other root: VerifyInclusion = %v, want ErrProof", err)
		}
	})
}

func BenchmarkInclusionProofs10000(b *testing.B) {
	hs := leaves(10000)
	for b.Loop() {
		InclusionProofs(hs)
	}
}
