package seal

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
)

// VerifyOptions are the choices of Verify.
type VerifyOptions struct {
	// Anchor, when set, is the seal_hash (hex) of a seal kept elsewhere:
	// the store's seal chain must still hold it. Without an anchor a
	// suffix of seals removed together with their events goes unseen.
	Anchor string
	// PublicKey, when set, is the only key seals may be signed with, and
	// every seal must be signed with it; the store's listed keys are then
	// not trusted (whoever can rewrite the seals can list a key of their
	// own). Without it, signatures are checked against the store's keys.
	PublicKey ed25519.PublicKey
}

// Report sums up what Verify checked.
type Report struct {
	Events   int64 // events whose hash and chain link were checked
	Streams  int
	Seals    int64
	Unsealed int64 // events after the last seal: hashed and chained only
}

// Verify recomputes, from the store, every event's hash from its stored
// form, every stream's chain, and every seal: its seq, its link to the
// previous seal, its seal_hash, its signature against the store's seal
// keys, and that its count events after the previous seal, in read order,
// end at its last_checkpoint with its Merkle root. With opts.Anchor, the
// chain must also hold that seal. It reads the log once, in read order,
// then checks with the store's Census that it saw every stored event but
// those appended since.
//
// It returns an *audit.IntegrityError (matching audit.ErrIntegrity) naming
// what broke: the first event, in read order, whose hash or chain link does
// not hold (by position, stream and version); else a stored event that the
// log's reader never returns (the same); else the first seal that does not
// hold (by seq); else a missing anchor. Or the store's error.
func Verify(ctx context.Context, store Store, opts VerifyOptions) (Report, error) {
	var rep Report
	var anchor audit.Hash
	if opts.Anchor != "" {
		var err error
		if anchor, err = audit.ParseHash(opts.Anchor); err != nil {
			return rep, fmt.Errorf("verify: anchor: %w", err)
		}
	}
	seals, err := store.Seals(ctx, 0, 0)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	listed, err := store.SealKeys(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	keys, err := sealKeys(listed)
	if err != nil {
		return rep, err
	}
	if opts.PublicKey != nil {
		keys = map[string]ed25519.PublicKey{audit.KeyID(opts.PublicKey): opts.PublicKey}
	}
	v := verifier{seals: seals, keys: keys, pinned: opts.PublicKey != nil, heads: map[string]streamHead{}, signs: map[string]int{}}
	v.sealErr = v.startSeal()
	var cp chronicle.Checkpoint
	for {
		page, err := store.ReadAll(ctx, cp, chronicle.ReadAllOptions{Limit: 5000})
		if err != nil {
			return rep, fmt.Errorf("verify: read the log: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if err := v.event(e); err != nil {
				return rep, err
			}
		}
		cp = page[len(page)-1].Checkpoint()
	}
	if err := census(ctx, store, cp, v.events); err != nil {
		return rep, err
	}
	if v.sealErr == nil && v.i < len(seals) {
		s := seals[v.i]
		v.sealErr = &audit.IntegrityError{Seal: s.Seq, Reason: fmt.Sprintf(
			"covers %d events, but the log has only %d after seal %d's", s.Count, len(v.leaves), s.Seq-1)}
	}
	if v.sealErr == nil && !v.pinned {
		v.sealErr = v.unusedKey(listed)
	}
	if v.sealErr != nil {
		return rep, v.sealErr
	}
	if opts.Anchor != "" && !v.holds(anchor) {
		return rep, fmt.Errorf("%w: the anchor %s is not the seal_hash of any of the store's %d seals: seals were removed or rewritten",
			audit.ErrIntegrity, anchor, len(seals))
	}
	rep = Report{Events: v.events, Streams: len(v.heads), Seals: int64(len(seals)), Unsealed: int64(len(v.leaves))}
	return rep, nil
}

// census checks that the walk of the log, which checked n events up to
// end, saw every stored event but those appended since: a row that only
// stream reads return (inserted behind the store's back) would otherwise
// be served as part of its stream without ever being checked.
func census(ctx context.Context, store Store, end chronicle.Checkpoint, n int64) error {
	c, err := store.Census(ctx, end, 1)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if len(c.Strays) > 0 {
		e := c.Strays[0]
		return &audit.IntegrityError{Position: e.Position, StreamID: e.StreamID, Version: e.Version,
			Reason: "is not in the global log's order: stream reads return it, the log's reader never does (a row inserted behind chronicle's back)"}
	}
	if upToEnd := c.Total - c.After - c.Pending; upToEnd != n {
		return fmt.Errorf("%w: the events table holds %d events up to the log's end at position %d, the log's read returned %d: events were inserted or removed behind chronicle's back while it ran",
			audit.ErrIntegrity, upToEnd, end.Position, n)
	}
	return nil
}

func sealKeys(list []chronicle.SealKey) (map[string]ed25519.PublicKey, error) {
	keys := make(map[string]ed25519.PublicKey, len(list))
	for _, k := range list {
		if len(k.PublicKey) != ed25519.PublicKeySize || audit.KeyID(k.PublicKey) != k.KeyID {
			return nil, &audit.IntegrityError{Reason: fmt.Sprintf("seal key %s: not the key of its key_id", k.KeyID)}
		}
		keys[k.KeyID] = ed25519.PublicKey(k.PublicKey)
	}
	return keys, nil
}

type streamHead struct {
	version int64
	hash    [32]byte
}

// verifier checks the log one event at a time against the seals. An
// event's own failure (its hash, its stream's chain) ends the check at
// once; a seal's is kept while the events go on being checked, since an
// event removed or changed also breaks its seal and is better named by
// itself.
type verifier struct {
	seals  []chronicle.Seal
	keys   map[string]ed25519.PublicKey
	heads  map[string]streamHead
	events int64

	pinned bool           // keys is the one key every seal must be signed with
	signed int64          // the first signed seal so far: every later one must be signed too
	signs  map[string]int // seals signed, by key_id

	i       int          // the seal the next event belongs to; len(seals) once past the last
	leaves  []audit.Hash // the events of seal i so far (or of the unsealed tail)
	sealErr error        // the first seal that failed; seals are no longer followed after it
}

func (v *verifier) event(e chronicle.RecordedEvent) error {
	fail := func(format string, a ...any) error {
		return &audit.IntegrityError{Position: e.Position, StreamID: e.StreamID, Version: e.Version, Reason: fmt.Sprintf(format, a...)}
	}
	head, seen := v.heads[e.StreamID]
	switch {
	case !seen && e.Version != 1:
		return fail("is the first event of its stream in the log: versions 1 to %d are missing", e.Version-1)
	case seen && e.Version != head.version+1:
		return fail("follows version %d of its stream: %s", head.version, gap(head.version, e.Version))
	case e.Version == 1 && e.PrevHash != audit.ZeroHash:
		return fail("prev_hash of version 1 is not 64 zeros")
	case seen && e.PrevHash != head.hash:
		return fail("prev_hash is not the hash of version %d", head.version)
	}
	h, err := audit.HashEvent(audit.FromRecorded(e, e.PrevHash))
	if err != nil {
		return fail("cannot hash: %v", err)
	}
	if h != e.Hash {
		return fail("hash does not match the event's stored contents (recomputed %s, stored %s)", h, audit.Hash(e.Hash))
	}
	v.heads[e.StreamID] = streamHead{e.Version, e.Hash}
	v.events++
	v.leaves = append(v.leaves, e.Hash)
	if v.sealErr != nil || v.i == len(v.seals) || int64(len(v.leaves)) < v.seals[v.i].Count {
		return nil
	}
	s := v.seals[v.i]
	if end := s.LocalEnd(); e.Checkpoint() != end {
		v.sealErr = &audit.IntegrityError{Seal: s.Seq, Reason: fmt.Sprintf(
			"its %d events end at position %d (%s v%d), not at its last_checkpoint (position %d): events were removed or inserted",
			s.Count, e.Position, e.StreamID, e.Version, end.Position)}
		return nil
	}
	if root := audit.MerkleRoot(v.leaves); root != s.Root {
		v.sealErr = &audit.IntegrityError{Seal: s.Seq, Reason: fmt.Sprintf(
			"root does not match the Merkle root of its %d events (recomputed %s): events were changed, reordered or replaced", s.Count, root)}
		return nil
	}
	v.i++
	v.leaves = v.leaves[:0]
	v.sealErr = v.startSeal()
	return nil
}

func gap(last, next int64) string {
	switch {
	case next <= last:
		return "repeated or out of order"
	case next == last+2:
		return fmt.Sprintf("version %d is missing", last+1)
	default:
		return fmt.Sprintf("versions %d to %d are missing", last+1, next-1)
	}
}

// startSeal checks seal i's own fields, and skips seals of no events.
func (v *verifier) startSeal() error {
	for ; v.i < len(v.seals); v.i++ {
		s := v.seals[v.i]
		var prev chronicle.Seal
		if v.i > 0 {
			prev = v.seals[v.i-1]
		}
		if err := checkSeal(s, prev, v.keys, v.pinned); err != nil {
			return err
		}
		// Signatures are not in seal_hash: whoever rewrites a seal, and so
		// every seal after it, can only leave them unsigned.
		switch {
		case s.KeyID != "":
			v.signs[s.KeyID]++
			if v.signed == 0 {
				v.signed = s.Seq
			}
		case v.pinned:
			return &audit.IntegrityError{Seal: s.Seq, Reason: "is not signed, and a public key was given"}
		case v.signed != 0:
			return &audit.IntegrityError{Seal: s.Seq, Reason: fmt.Sprintf(
				"is not signed, but seal %d before it is: once a key signed a seal, every later seal is signed", v.signed)}
		}
		if s.Count > 0 {
			return nil
		}
	}
	return nil
}

func checkSeal(s, prev chronicle.Seal, keys map[string]ed25519.PublicKey, pinned bool) error {
	fail := func(format string, a ...any) error {
		return &audit.IntegrityError{Seal: s.Seq, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case s.Seq != prev.Seq+1:
		return fail("follows seal %d: seals %d to %d are missing", prev.Seq, prev.Seq+1, s.Seq-1)
	case s.PrevSealHash != prev.SealHash && prev.Seq == 0:
		return fail("prev_seal_hash of seal 1 is not 64 zeros")
	case s.PrevSealHash != prev.SealHash:
		return fail("prev_seal_hash is not the seal_hash of seal %d", prev.Seq)
	case s.Count < 0:
		return fail("count is negative")
	case s.Count == 0 && (s.Root != audit.MerkleRoot(nil) || s.LocalEnd() != prev.LocalEnd()):
		return fail("covers no events but has a root or moves last_checkpoint")
	}
	if h := audit.SealHash(audit.SealOf(s)); h != s.SealHash {
		return fail("seal_hash does not match the seal's fields (recomputed %s, stored %s)", h, audit.Hash(s.SealHash))
	}
	if s.KeyID == "" && s.Signature == "" {
		return nil
	}
	key := keys[s.KeyID]
	switch {
	case key == nil && pinned:
		return fail("signed by key %q, not by the given public key", s.KeyID)
	case key == nil:
		return fail("signed by key %q, which the store does not list", s.KeyID)
	}
	if err := audit.VerifySignature(key, s.SealHash, s.Signature); err != nil {
		return fail("signature: %v", err)
	}
	return nil
}

// unusedKey fails when a key the store lists as having signed a seal signs
// none of them: the signatures were removed, which the seals' own chain
// does not show when all of them were (nothing signed precedes them).
func (v *verifier) unusedKey(listed []chronicle.SealKey) error {
	var last int64
	if len(v.seals) > 0 {
		last = v.seals[len(v.seals)-1].Seq
	}
	for _, k := range listed {
		// A key first used after the seals read (a live store) is no
		// sign of anything.
		if v.signs[k.KeyID] > 0 || k.FirstSeal > last {
			continue
		}
		reason := fmt.Sprintf("the store lists key %s as first signing seal %d, but no seal is signed by it: signatures were removed", k.KeyID, k.FirstSeal)
		if k.FirstSeal >= 1 && v.seals[k.FirstSeal-1].Seq == k.FirstSeal {
			return &audit.IntegrityError{Seal: k.FirstSeal, Reason: "is not signed: " + reason}
		}
		return fmt.Errorf("%w: %s", audit.ErrIntegrity, reason)
	}
	return nil
}

// holds reports whether a seal of the chain has seal hash h.
func (v *verifier) holds(h audit.Hash) bool {
	for _, s := range v.seals {
		if s.SealHash == h {
			return true
		}
	}
	return false
}
