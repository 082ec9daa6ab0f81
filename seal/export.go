package seal

import (
	"context"
	"fmt"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// Export returns an audit bundle of the events of streams (every event
// when streams is empty), stored (not upcasted) and in the log's read
// order; every seal (none when none of those events is sealed yet); for
// each sealed event its seal's seq and Merkle audit path; and the keys
// that signed the seals. It reads the whole log, since a
// proof needs every leaf of its seal, but keeps only one seal's hashes at a
// time.
//
// It returns the store's errors, or an error when the log does not match
// its seals (run Verify to learn what broke).
func Export(ctx context.Context, store Store, streams []string) (*audit.Bundle, error) {
	want := make(map[string]bool, len(streams))
	for _, s := range streams {
		want[s] = true
	}
	seals, err := store.Seals(ctx, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	keys, err := store.SealKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	b := &audit.Bundle{Events: []audit.BundleEvent{}, Seals: []audit.BundleSeal{}, Proofs: []audit.Proof{}, PublicKeys: []audit.PublicKey{}}
	for _, s := range seals {
		bs := audit.BundleSealOf(s)
		if s.End != (chronicle.Checkpoint{}) {
			bs.EndCheckpoint = audit.CheckpointString(s.End)
		}
		b.Seals = append(b.Seals, bs)
	}
	for _, k := range keys {
		b.PublicKeys = append(b.PublicKeys, audit.PublicKey{KeyID: k.KeyID, PublicKey: audit.EncodePublicKey(k.PublicKey)})
	}

	i := 0 // the seal the next event belongs to
	for i < len(seals) && seals[i].Count == 0 {
		i++
	}
	var leaves []audit.Hash
	var picked []int // indexes in leaves of the exported events of seal i
	sealDone := func() {
		s := seals[i]
		paths := audit.InclusionProofs(leaves)
		first := len(b.Events) - len(picked) // picked are the last events exported
		for k, j := range picked {
			path := make([]string, len(paths[j]))
			for k, h := range paths[j] {
				path[k] = h.String()
			}
			b.Proofs = append(b.Proofs, audit.Proof{Position: b.Events[first+k].Position, Seq: s.Seq, Index: int64(j), Path: path})
		}
		leaves, picked = leaves[:0], picked[:0]
		for i++; i < len(seals) && seals[i].Count == 0; i++ {
		}
	}
	var cp chronicle.Checkpoint
	for {
		page, err := store.ReadAll(ctx, cp, chronicle.ReadAllOptions{Limit: 5000})
		if err != nil {
			return nil, fmt.Errorf("export: read the log: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if len(want) == 0 || want[e.StreamID] {
				b.Events = append(b.Events, audit.BundleEventOf(e))
				if i < len(seals) {
					picked = append(picked, len(leaves))
				}
			}
			if i == len(seals) {
				continue // the unsealed tail
			}
			leaves = append(leaves, e.Hash)
			if int64(len(leaves)) == seals[i].Count {
				if e.Checkpoint() != seals[i].LocalEnd() {
					return nil, fmt.Errorf("export: seal %d does not end where its events do: run chronicle verify --integrity", seals[i].Seq)
				}
				sealDone()
			}
		}
		cp = page[len(page)-1].Checkpoint()
	}
	if i < len(seals) {
		return nil, fmt.Errorf("export: seal %d covers events the log does not hold: run chronicle verify --integrity", seals[i].Seq)
	}
	if len(want) > 0 && len(b.Proofs) == 0 {
		// None of these events is sealed yet: no seal covers them, and a
		// bundle of seals without proofs would claim to hold all their
		// events.
		b.Seals = []audit.BundleSeal{}
	}
	return b, nil
}
