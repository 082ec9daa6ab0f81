package audit_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// export makes a signed bundle the way an exporter would: the events of
// streams "order-o0".."order-o<streams-1>" interleaved in read order, sealed in
// groups of sealSizes (the rest is the unsealed tail).
func export(t *testing.T, streams, events int, sealSizes ...int) (*audit.Bundle, ed25519.PublicKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &audit.Bundle{Proofs: []audit.Proof{}, PublicKeys: []audit.PublicKey{{KeyID: audit.KeyID(pub), PublicKey: audit.EncodePublicKey(pub)}}}
	heads := map[string]audit.Hash{}
	at := time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)
	var hashes []audit.Hash
	for i := range events {
		stream := fmt.Sprintf("order-o%d", i%streams)
		e := audit.Event{
			PrevHash: heads[stream], StreamID: stream, Version: int64(i/streams + 1),
			EventID: fmt.Sprintf("0190d1a2-0000-7000-8000-%012d", i), Type: "Noted", SchemaVersion: 1,
			RecordedAt: at.Add(time.Duration(i) * time.Millisecond),
			Data:       json.RawMessage(fmt.Sprintf(`{"n": %d, "text": "é\t\"%d\""}`, i, i)),
		}
		h, err := audit.HashEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		heads[stream] = h
		hashes = append(hashes, h)
		b.Events = append(b.Events, audit.BundleEvent{
			Position: int64(i + 1), Checkpoint: audit.CheckpointString(chronicle.Checkpoint{TxID: uint64(i + 1), Position: int64(i + 1)}), StreamID: stream, Version: e.Version,
			EventID: e.EventID, Type: e.Type, SchemaVersion: e.SchemaVersion, Data: e.Data, Metadata: json.RawMessage("null"),
			RecordedAt: e.RecordedAt.Format(audit.TimeFormat), Hash: h.String(), PrevHash: e.PrevHash.String(),
		})
	}
	prev, next := audit.ZeroHash, 0
	for i, n := range sealSizes {
		covered := hashes[next : next+n]
		s := audit.Seal{Seq: int64(i + 1), LastCheckpoint: audit.CheckpointString(chronicle.Checkpoint{}), Count: int64(n), Root: audit.MerkleRoot(covered),
			PrevSealHash: prev, SealedAt: at.Add(time.Duration(i+1) * time.Second)}
		if next+n > 0 {
			s.LastCheckpoint = b.Events[next+n-1].Checkpoint
		}
		h := audit.SealHash(s)
		b.Seals = append(b.Seals, audit.BundleSeal{Seq: s.Seq, LastCheckpoint: s.LastCheckpoint, Count: s.Count,
			Root: s.Root.String(), PrevSealHash: prev.String(), SealedAt: s.SealedAt.Format(audit.TimeFormat),
			SealHash: h.String(), KeyID: audit.KeyID(pub), Signature: audit.Sign(key, h)})
		for j := range covered {
			var path []string
			for _, p := range audit.InclusionProof(covered, j) {
				path = append(path, p.String())
			}
			if path == nil {
				path = []string{}
			}
			b.Proofs = append(b.Proofs, audit.Proof{Position: int64(next + j + 1), Seq: s.Seq, Index: int64(j), Path: path})
		}
		prev, next = h, next+n
	}
	// The bundle must survive its own encoding.
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = audit.DecodeBundle(raw); err != nil {
		t.Fatal(err)
	}
	return b, pub
}

// keep keeps the events of one stream, and their proofs.
func keep(b *audit.Bundle, stream string) {
	var events []audit.BundleEvent
	var proofs []audit.Proof
	kept := map[int64]bool{}
	for _, e := range b.Events {
		if e.StreamID == stream {
			events = append(events, e)
			kept[e.Position] = true
		}
	}
	for _, p := range b.Proofs {
		if kept[p.Position] {
			proofs = append(proofs, p)
		}
	}
	b.Events, b.Proofs = events, proofs
}

func TestCheckWithProofs(t *testing.T) {
	b, pub := export(t, 3, 40, 7, 0, 1, 16, 9) // 7 events unsealed
	if err := audit.Check(b, audit.Options{PublicKey: pub}); err != nil {
		t.Fatalf("Check(whole bundle, proofs) = %v", err)
	}
	b.Proofs = nil
	if err := audit.Check(b, audit.Options{PublicKey: pub}); err != nil {
		t.Fatalf("Check(whole bundle, no proofs) = %v", err)
	}
	for s := range 3 {
		b, pub := export(t, 3, 40, 7, 0, 1, 16, 9)
		keep(b, fmt.Sprintf("order-o%d", s))
		if err := audit.Check(b, audit.Options{PublicKey: pub}); err != nil {
			t.Fatalf("Check(stream %d, proofs) = %v", s, err)
		}
	}
}

func TestCheckFailsOnBadProofs(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(b *audit.Bundle)
		pos  int64 // the position named
	}{
		"no proofs in a partial bundle": {func(b *audit.Bundle) { b.Proofs = []audit.Proof{} }, 0},
		"index":                         {func(b *audit.Bundle) { b.Proofs[2].Index++ }, 7},
		"index of the last leaf":        {func(b *audit.Bundle) { b.Proofs[0].Index = 6 }, 1},
		"seq":                           {func(b *audit.Bundle) { b.Proofs[2].Seq++ }, 7},
		"unknown seq":                   {func(b *audit.Bundle) { b.Proofs[2].Seq = 9 }, 7},
		"path element": {func(b *audit.Bundle) {
			p := b.Proofs[3].Path
			p[0] = p[len(p)-1]
		}, 10},
		"path element dropped": {func(b *audit.Bundle) { b.Proofs[3].Path = b.Proofs[3].Path[1:] }, 10},
		"proof dropped":        {func(b *audit.Bundle) { b.Proofs = append(b.Proofs[:1:1], b.Proofs[2:]...) }, 4},
		"proofs swapped": {func(b *audit.Bundle) {
			b.Proofs[1].Position, b.Proofs[2].Position = b.Proofs[2].Position, b.Proofs[1].Position
		}, 4},
		"proof of another event": {func(b *audit.Bundle) { b.Proofs[0].Position = 2 }, 1},
		"two proofs":             {func(b *audit.Bundle) { b.Proofs = append(b.Proofs, b.Proofs[0]) }, 1},
	} {
		t.Run(name, func(t *testing.T) {
			b, pub := export(t, 3, 40, 7, 0, 1, 16, 9)
			keep(b, "order-o0")
			c.edit(b)
			err := audit.Check(b, audit.Options{PublicKey: pub})
			var ie *audit.IntegrityError
			if !errors.As(err, &ie) {
				t.Fatalf("Check = %v, want an *IntegrityError", err)
			}
			if c.pos != 0 && ie.Position != c.pos {
				t.Errorf("Check = %v, want it to name position %d", err, c.pos)
			}
		})
	}
}

// The unsealed tail is only hashed and chained: an event removed from its
// end cannot be seen. Inside a seal it is found.
func TestUnsealedTailIsNotSealed(t *testing.T) {
	b, pub := export(t, 1, 10, 6) // events 7..10 unsealed
	b.Events = b.Events[:9]
	if err := audit.Check(b, audit.Options{PublicKey: pub}); err != nil {
		t.Fatalf("Check(last unsealed event removed) = %v, want nil: the tail is not sealed", err)
	}
	b.Events = b.Events[:5]
	b.Proofs = nil
	if err := audit.Check(b, audit.Options{PublicKey: pub}); !errors.Is(err, audit.ErrIntegrity) {
		t.Fatalf("Check(last sealed event removed) = %v, want ErrIntegrity", err)
	}
}

// Sealed events need their proofs: the last sealed events, rewritten (their
// hashes and chain recomputed) with their proofs left out, are not the
// unsealed tail, whose events come after the last seal's last_checkpoint.
func TestCheckFailsOnSealedEventsWithoutProofs(t *testing.T) {
	b, pub := export(t, 1, 8, 6) // events 7 and 8 unsealed
	if err := audit.Check(b, audit.Options{PublicKey: pub}); err != nil {
		t.Fatalf("Check(untouched) = %v", err)
	}
	if got := audit.Unsealed(b); got != 2 {
		t.Errorf("Unsealed = %d, want 2", got)
	}
	b.Events[4].Data = json.RawMessage(`{"n": 4, "forged": true}`)
	rehash(t, b, 4)
	b.Proofs = b.Proofs[:4]
	err := audit.Check(b, audit.Options{PublicKey: pub})
	var ie *audit.IntegrityError
	if !errors.As(err, &ie) || ie.Position != 5 || !strings.Contains(err.Error(), "seal 1 covers it") {
		t.Fatalf("Check(events 5 and 6 rewritten, their proofs left out) = %v, want position 5 named: seal 1 covers it", err)
	}
}

// rehash recomputes the hashes of the events from index from on, chained.
func rehash(t *testing.T, b *audit.Bundle, from int) {
	t.Helper()
	heads := map[string]string{}
	for i := range b.Events {
		e := &b.Events[i]
		if i >= from {
			if h, ok := heads[e.StreamID]; ok {
				e.PrevHash = h
			}
			prev, err := audit.ParseHash(e.PrevHash)
			if err != nil {
				t.Fatal(err)
			}
			at, err := time.Parse(audit.TimeFormat, e.RecordedAt)
			if err != nil {
				t.Fatal(err)
			}
			h, err := audit.HashEvent(audit.Event{PrevHash: prev, StreamID: e.StreamID, Version: e.Version, EventID: e.EventID,
				Type: e.Type, SchemaVersion: e.SchemaVersion, RecordedAt: at, Data: e.Data, Metadata: e.Metadata})
			if err != nil {
				t.Fatal(err)
			}
			e.Hash = h.String()
		}
		heads[e.StreamID] = e.Hash
	}
}
