package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Bundle is the self-contained export of `chronicle audit export`: stored
// events in the log's read order, the seals, inclusion proofs and the public
// keys that signed the seals.
type Bundle struct {
	Events     []BundleEvent `json:"events"`
	Seals      []BundleSeal  `json:"seals"`
	Proofs     []Proof       `json:"proofs"`
	PublicKeys []PublicKey   `json:"public_keys"`
}

// BundleEvent is a stored event as a bundle holds it. Data and Metadata are
// the stored form (not upcasted).
type BundleEvent struct {
	Position      int64           `json:"position"`
	Checkpoint    string          `json:"checkpoint"`
	StreamID      string          `json:"stream_id"`
	Version       int64           `json:"version"`
	EventID       string          `json:"event_id"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	Data          json.RawMessage `json:"data"`
	Metadata      json.RawMessage `json:"metadata"`
	RecordedAt    string          `json:"recorded_at"` // TimeFormat
	Hash          string          `json:"hash"`
	PrevHash      string          `json:"prev_hash"`
}

// BundleSeal is a seal as a bundle holds it. KeyID and Signature are empty
// for a seal made without a signing key.
type BundleSeal struct {
	Seq            int64  `json:"seq"`
	LastCheckpoint string `json:"last_checkpoint"`
	Count          int64  `json:"count"`
	Root           string `json:"root"`
	PrevSealHash   string `json:"prev_seal_hash"`
	SealedAt       string `json:"sealed_at"` // TimeFormat
	SealHash       string `json:"seal_hash"`
	KeyID          string `json:"key_id,omitempty"`
	Signature      string `json:"signature,omitempty"`
	// EndCheckpoint, in a bundle of a store that a copy made, is the
	// checkpoint there of the seal's last event: its last_checkpoint is
	// the store's that made it. Not covered by the seal_hash.
	EndCheckpoint string `json:"end_checkpoint,omitempty"`
}

// End returns the checkpoint, in the bundle's events, of the seal's last
// event: EndCheckpoint when set, else LastCheckpoint.
func (s BundleSeal) End() string {
	if s.EndCheckpoint != "" {
		return s.EndCheckpoint
	}
	return s.LastCheckpoint
}

// Proof says that the event at Position is leaf Index (0-based) of seal
// Seq's Merkle tree, whose Count leaves are the seal's events; Path is the
// RFC 6962 audit path, from the leaf up.
type Proof struct {
	Position int64    `json:"position"`
	Seq      int64    `json:"seq"`
	Index    int64    `json:"index"`
	Path     []string `json:"path"`
}

// PublicKey is a seal-signing key: base64 of the raw 32-byte Ed25519 public
// key, and its KeyID.
type PublicKey struct {
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
}

// ErrBundle: the bundle is not one JSON object of exactly the bundle's
// shape.
var ErrBundle = errors.New("audit: malformed bundle")

// DecodeBundle parses a bundle strictly: one JSON object with exactly the
// fields of Bundle and its parts (names spelled exactly, none missing except
// an unsigned seal's key_id and signature, none unknown), no duplicate keys,
// no lone surrogates. It returns an error matching ErrBundle.
func DecodeBundle(b []byte) (*Bundle, error) {
	canon, err := Canonicalize(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var bundle Bundle
	if err := dec.Decode(&bundle); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	// encoding/json matches names without regard to case and leaves missing
	// fields zero: the bundle must read back as exactly what was decoded.
	again, err := json.Marshal(&bundle)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	if again, err = Canonicalize(again); err != nil || !bytes.Equal(again, canon) {
		return nil, fmt.Errorf("%w: a field is missing, null, or its name is not spelled exactly", ErrBundle)
	}
	return &bundle, nil
}

// Options are the choices of Check.
type Options struct {
	// PublicKey, when set, is the only key seals may be signed with, and
	// every seal must be signed with it; the bundle's own public keys are
	// then not trusted. When nil, signed seals are checked against the
	// bundle's public keys, which shows that the bundle is consistent but not
	// who signed it.
	PublicKey ed25519.PublicKey
}

// Check verifies a bundle offline. In this order it checks: the public keys
// (each key_id is its key's KeyID); every event in bundle order (its hash
// recomputed from its fields; its prev_hash is the hash of its stream's
// previous version, 64 zeros for version 1; each stream's versions appear
// once, in order, with none missing from version 1 on); every seal in seq
// order (seqs 1, 2, ... with none missing; prev_seal_hash is the previous
// seal's seal_hash, 64 zeros for seq 1; seal_hash recomputed; the signature
// against its key; an empty seal has the empty root); and then that the
// seals cover the events:
//
//   - Without proofs, the bundle must hold every event of every seal: seal 1
//     covers the first count events, seal 2 the next ones, and so on; the
//     last event of each has the seal's last_checkpoint and their Merkle root
//     is the seal's root. Events after the last seal's are the unsealed tail.
//   - With proofs, each proof's event is leaf index of its seal's tree, its
//     audit path leads to the seal's root, and the last leaf of a seal has
//     the seal's last_checkpoint. Every event has a proof except an unsealed
//     tail: the last events, each with a checkpoint (as CheckpointString
//     writes it) after the last seal's last_checkpoint. Proofs follow the
//     bundle's order.
//
// It returns nil when everything holds, or an *IntegrityError (matching
// ErrIntegrity) naming the first failure: the event by position, stream and
// version, or the seal by seq, and what broke.
func Check(b *Bundle, opts Options) error {
	keys, err := checkKeys(b.PublicKeys)
	if err != nil {
		return err
	}
	hashes, err := checkEvents(b.Events)
	if err != nil {
		return err
	}
	roots, err := checkSeals(b.Seals, keys, opts)
	if err != nil {
		return err
	}
	if len(b.Proofs) == 0 {
		return checkCoverage(b, hashes, roots)
	}
	return checkProofs(b, hashes, roots)
}

func checkKeys(pks []PublicKey) (map[string]ed25519.PublicKey, error) {
	keys := make(map[string]ed25519.PublicKey)
	for _, pk := range pks {
		fail := func(reason string) error {
			return &IntegrityError{Reason: fmt.Sprintf("public key %q: %s", pk.KeyID, reason)}
		}
		k, err := DecodePublicKey(pk.PublicKey)
		switch {
		case err != nil:
			return nil, fail(err.Error())
		case KeyID(k) != pk.KeyID:
			return nil, fail(fmt.Sprintf("key_id is not that of its key (%s)", KeyID(k)))
		case keys[pk.KeyID] != nil:
			return nil, fail("listed twice")
		}
		keys[pk.KeyID] = k
	}
	return keys, nil
}

type streamHead struct {
	version int64
	hash    Hash
}

// checkEvents returns the events' hashes, in bundle order.
func checkEvents(events []BundleEvent) ([]Hash, error) {
	hashes := make([]Hash, len(events))
	heads := make(map[string]streamHead)
	positions := make(map[int64]bool)
	for i, e := range events {
		fail := func(format string, a ...any) error {
			return &IntegrityError{Position: e.Position, StreamID: e.StreamID, Version: e.Version, Reason: fmt.Sprintf(format, a...)}
		}
		if e.Position <= 0 || positions[e.Position] {
			return nil, fail("position is not positive, or repeated")
		}
		positions[e.Position] = true
		hash, err := ParseHash(e.Hash)
		if err != nil {
			return nil, fail("hash: %v", err)
		}
		prev, err := ParseHash(e.PrevHash)
		if err != nil {
			return nil, fail("prev_hash: %v", err)
		}
		at, err := parseTime(e.RecordedAt)
		if err != nil {
			return nil, fail("recorded_at: %v", err)
		}
		head, seen := heads[e.StreamID]
		switch {
		case e.Version < 1:
			return nil, fail("version is not positive")
		case !seen && e.Version != 1:
			return nil, fail("the bundle has no earlier version of this stream: %s", missing(1, e.Version-1))
		case seen && e.Version <= head.version:
			return nil, fail("comes after version %d of its stream: repeated or out of order", head.version)
		case seen && e.Version != head.version+1:
			return nil, fail("comes after version %d of its stream: %s", head.version, missing(head.version+1, e.Version-1))
		case e.Version == 1 && prev != ZeroHash:
			return nil, fail("prev_hash of version 1 is not 64 zeros")
		case seen && prev != head.hash:
			return nil, fail("prev_hash is not the hash of version %d", head.version)
		}
		got, err := HashEvent(Event{
			PrevHash: prev, StreamID: e.StreamID, Version: e.Version, EventID: e.EventID,
			Type: e.Type, SchemaVersion: e.SchemaVersion, RecordedAt: at,
			Data: e.Data, Metadata: e.Metadata,
		})
		if err != nil {
			return nil, fail("cannot hash: %v", err)
		}
		if got != hash {
			return nil, fail("hash does not match the event's contents (recomputed %s)", got)
		}
		heads[e.StreamID] = streamHead{e.Version, hash}
		hashes[i] = hash
	}
	return hashes, nil
}

// checkSeals returns the seals' roots, in bundle order.
func checkSeals(seals []BundleSeal, keys map[string]ed25519.PublicKey, opts Options) ([]Hash, error) {
	roots := make([]Hash, len(seals))
	prevHash := ZeroHash
	for i, s := range seals {
		fail := func(format string, a ...any) error {
			return &IntegrityError{Seal: s.Seq, Reason: fmt.Sprintf(format, a...)}
		}
		if s.Seq != int64(i)+1 {
			return nil, fail("seq %d is the bundle's seal number %d: seqs must be 1, 2, ... with none missing", s.Seq, i+1)
		}
		root, err := ParseHash(s.Root)
		if err != nil {
			return nil, fail("root: %v", err)
		}
		prev, err := ParseHash(s.PrevSealHash)
		if err != nil {
			return nil, fail("prev_seal_hash: %v", err)
		}
		sealHash, err := ParseHash(s.SealHash)
		if err != nil {
			return nil, fail("seal_hash: %v", err)
		}
		at, err := parseTime(s.SealedAt)
		if err != nil {
			return nil, fail("sealed_at: %v", err)
		}
		switch {
		case prev != prevHash && i == 0:
			return nil, fail("prev_seal_hash of seal 1 is not 64 zeros")
		case prev != prevHash:
			return nil, fail("prev_seal_hash is not the seal_hash of seal %d", s.Seq-1)
		case s.Count < 0:
			return nil, fail("count is negative")
		case s.Count == 0 && root != MerkleRoot(nil):
			return nil, fail("covers no events but its root is not the empty tree's")
		case s.Count == 0 && i > 0 && s.End() != seals[i-1].End():
			return nil, fail("covers no events but moves last_checkpoint")
		}
		want := SealHash(Seal{Seq: s.Seq, LastCheckpoint: s.LastCheckpoint, Count: s.Count, Root: root, PrevSealHash: prev, SealedAt: at})
		if want != sealHash {
			return nil, fail("seal_hash does not match the seal's fields (recomputed %s)", want)
		}
		if err := checkSignature(s, sealHash, keys, opts); err != nil {
			return nil, fail("%v", err)
		}
		prevHash, roots[i] = sealHash, root
	}
	return roots, nil
}

func checkSignature(s BundleSeal, sealHash Hash, keys map[string]ed25519.PublicKey, opts Options) error {
	if s.KeyID == "" && s.Signature == "" {
		if opts.PublicKey != nil {
			return errors.New("is not signed, and a public key was given")
		}
		return nil
	}
	if s.KeyID == "" || s.Signature == "" {
		return errors.New("has a key_id without a signature or a signature without a key_id")
	}
	key := keys[s.KeyID]
	if opts.PublicKey != nil {
		if s.KeyID != KeyID(opts.PublicKey) {
			return fmt.Errorf("signed by key %s, not by the given public key %s", s.KeyID, KeyID(opts.PublicKey))
		}
		key = opts.PublicKey
	}
	if key == nil {
		return fmt.Errorf("signed by key %s, which the bundle does not list", s.KeyID)
	}
	if err := VerifySignature(key, sealHash, s.Signature); err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	return nil
}

// checkCoverage checks a bundle without proofs: the seals cover its events
// in order, from the first.
func checkCoverage(b *Bundle, hashes []Hash, roots []Hash) error {
	next := 0
	for i, s := range b.Seals {
		fail := func(format string, a ...any) error {
			return &IntegrityError{Seal: s.Seq, Reason: fmt.Sprintf(format, a...)}
		}
		if s.Count > int64(len(hashes)-next) {
			return fail("covers %d events but the bundle has only %d after seal %d's, and no proofs", s.Count, len(hashes)-next, s.Seq-1)
		}
		end := next + int(s.Count)
		if s.Count > 0 && b.Events[end-1].Checkpoint != s.End() {
			last := b.Events[end-1]
			return fail("its last event in the bundle (position %d, %s v%d) has checkpoint %q, not last_checkpoint %q",
				last.Position, last.StreamID, last.Version, last.Checkpoint, s.End())
		}
		if got := MerkleRoot(hashes[next:end]); got != roots[i] {
			return fail("root does not match the Merkle root of its %d events in the bundle (recomputed %s)", s.Count, got)
		}
		next = end
	}
	return nil
}

// checkProofs checks a bundle with proofs, in the bundle's event order.
func checkProofs(b *Bundle, hashes []Hash, roots []Hash) error {
	proofs := make(map[int64]Proof, len(b.Proofs))
	for _, p := range b.Proofs {
		if _, dup := proofs[p.Position]; dup {
			return &IntegrityError{Position: p.Position, Reason: "has two proofs"}
		}
		proofs[p.Position] = p
	}
	used := 0
	var unproved *BundleEvent
	var last Proof // the previous proof in bundle order
	for i, e := range b.Events {
		fail := func(format string, a ...any) error {
			return &IntegrityError{Position: e.Position, StreamID: e.StreamID, Version: e.Version, Reason: fmt.Sprintf(format, a...)}
		}
		p, ok := proofs[e.Position]
		if !ok {
			if unproved == nil {
				unproved = &b.Events[i]
			}
			continue
		}
		used++
		if unproved != nil {
			e = *unproved
			return fail("has no inclusion proof, but sealed events follow it")
		}
		if p.Seq < 1 || p.Seq > int64(len(b.Seals)) {
			return fail("proof names seal %d, which the bundle does not hold", p.Seq)
		}
		s := b.Seals[p.Seq-1]
		if p.Index < 0 || p.Index >= s.Count {
			return fail("proof index %d is not a leaf of seal %d's %d", p.Index, p.Seq, s.Count)
		}
		if last.Seq != 0 && (p.Seq < last.Seq || p.Seq == last.Seq && p.Index <= last.Index) {
			return fail("proof (seal %d, leaf %d) is not after the previous event's (seal %d, leaf %d)", p.Seq, p.Index, last.Seq, last.Index)
		}
		if (p.Index == s.Count-1) != (e.Checkpoint == s.End()) {
			return fail("proof index %d of seal %d's %d leaves disagrees with the seal's last_checkpoint %q", p.Index, p.Seq, s.Count, s.End())
		}
		path := make([]Hash, len(p.Path))
		for j, h := range p.Path {
			var err error
			if path[j], err = ParseHash(h); err != nil {
				return fail("proof path: %v", err)
			}
		}
		if err := VerifyInclusion(hashes[i], int(p.Index), int(s.Count), path, roots[p.Seq-1]); err != nil {
			return fail("not in seal %d: %v", p.Seq, err)
		}
		last = p
	}
	if unproved != nil {
		if err := checkTail(b, b.Events[used:]); err != nil {
			return err
		}
	}
	if used != len(proofs) {
		for _, p := range b.Proofs {
			if !containsPosition(b.Events, p.Position) {
				return &IntegrityError{Position: p.Position, Reason: "has a proof but is not in the bundle"}
			}
		}
	}
	return nil
}

// checkTail checks that the events without a proof, the last of a
// bundle with proofs, are after every seal: otherwise the last sealed
// events, rewritten and with their proofs left out, would pass for the
// unsealed tail.
func checkTail(b *Bundle, tail []BundleEvent) error {
	var last *BundleSeal // the last seal of events: the others end before it
	for i := range b.Seals {
		if b.Seals[i].Count > 0 {
			last = &b.Seals[i]
		}
	}
	if last == nil {
		return nil
	}
	lastEnd, err := ParseCheckpoint(last.End())
	if err != nil {
		return &IntegrityError{Seal: last.Seq, Reason: fmt.Sprintf("last_checkpoint: %v", err)}
	}
	for _, e := range tail {
		fail := func(format string, a ...any) error {
			return &IntegrityError{Position: e.Position, StreamID: e.StreamID, Version: e.Version, Reason: fmt.Sprintf(format, a...)}
		}
		cp, err := ParseCheckpoint(e.Checkpoint)
		if err != nil {
			return fail("has no inclusion proof, and its checkpoint does not say whether a seal covers it: %v", err)
		}
		if lastEnd.Before(cp) {
			continue
		}
		covering := last.Seq
		for _, s := range b.Seals {
			if end, err := ParseCheckpoint(s.End()); s.Count > 0 && err == nil && !end.Before(cp) {
				covering = s.Seq
				break
			}
		}
		return fail("has no inclusion proof, but seal %d covers it (its checkpoint is not after the seal's last_checkpoint)", covering)
	}
	return nil
}

// Unsealed returns the number of a bundle's events that no seal covers
// (the unsealed tail, only hashed and chained), once Check accepted it.
func Unsealed(b *Bundle) int {
	if len(b.Proofs) > 0 {
		proved := make(map[int64]bool, len(b.Proofs))
		for _, p := range b.Proofs {
			proved[p.Position] = true
		}
		n := 0
		for _, e := range b.Events {
			if !proved[e.Position] {
				n++
			}
		}
		return n
	}
	n := len(b.Events)
	for _, s := range b.Seals {
		n -= int(s.Count)
	}
	return max(n, 0)
}

func containsPosition(events []BundleEvent, pos int64) bool {
	for _, e := range events {
		if e.Position == pos {
			return true
		}
	}
	return false
}

func missing(from, to int64) string {
	if from == to {
		return fmt.Sprintf("version %d is missing", from)
	}
	return fmt.Sprintf("versions %d to %d are missing", from, to)
}

// parseTime parses t in TimeFormat exactly, so that the hashed text is the
// bundle's text.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeFormat, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Format(TimeFormat) != s {
		return time.Time{}, fmt.Errorf("%q is not in the form %s", s, TimeFormat)
	}
	return t, nil
}
