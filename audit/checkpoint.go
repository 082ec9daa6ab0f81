package audit

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/chronicle-es/chronicle"
)

// checkpointEncoding is URL-safe and canonical: one string per checkpoint.
var checkpointEncoding = base64.RawURLEncoding.Strict()

// CheckpointString is a checkpoint as the API writes it (GET /events'
// checkpoint, a seal's last_checkpoint): 22 URL-safe characters, base64 of
// the transaction id and the position, 8 bytes each, big-endian.
func CheckpointString(cp chronicle.Checkpoint) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], cp.TxID)
	binary.BigEndian.PutUint64(b[8:], uint64(cp.Position))
	return checkpointEncoding.EncodeToString(b[:])
}

// ErrCheckpoint: a string is not one CheckpointString writes.
var ErrCheckpoint = errors.New("audit: bad checkpoint")

// ParseCheckpoint decodes a string of CheckpointString.
// Errors: ErrCheckpoint.
func ParseCheckpoint(s string) (chronicle.Checkpoint, error) {
	bad := fmt.Errorf("%w: %.40q", ErrCheckpoint, s)
	b, err := checkpointEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return chronicle.Checkpoint{}, bad
	}
	cp := chronicle.Checkpoint{TxID: binary.BigEndian.Uint64(b[:8]), Position: int64(binary.BigEndian.Uint64(b[8:]))}
	if cp.Position < 0 || (cp.TxID == 0) != (cp.Position == 0) {
		return chronicle.Checkpoint{}, bad
	}
	return cp, nil
}

// SealOf returns what a stored seal's hash covers.
func SealOf(s chronicle.Seal) Seal {
	return Seal{
		Seq: s.Seq, LastCheckpoint: CheckpointString(s.LastCheckpoint), Count: s.Count,
		Root: s.Root, PrevSealHash: s.PrevSealHash, SealedAt: s.SealedAt,
	}
}

// BundleSealOf returns a stored seal as bundles and the API write it.
func BundleSealOf(s chronicle.Seal) BundleSeal {
	return BundleSeal{
		Seq: s.Seq, LastCheckpoint: CheckpointString(s.LastCheckpoint), Count: s.Count,
		Root: Hash(s.Root).String(), PrevSealHash: Hash(s.PrevSealHash).String(),
		SealedAt: s.SealedAt.UTC().Format(TimeFormat), SealHash: Hash(s.SealHash).String(),
		KeyID: s.KeyID, Signature: s.Signature,
	}
}

// BundleEventOf returns a stored event as bundles write it: its stored
// (not upcasted) data and metadata.
func BundleEventOf(e chronicle.RecordedEvent) BundleEvent {
	meta := e.Metadata
	if len(meta) == 0 {
		meta = []byte("null")
	}
	return BundleEvent{
		Position: e.Position, Checkpoint: CheckpointString(e.Checkpoint()), StreamID: e.StreamID,
		Version: e.Version, EventID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion,
		Data: e.Data, Metadata: meta, RecordedAt: e.RecordedAt.UTC().Format(TimeFormat),
		Hash: Hash(e.Hash).String(), PrevHash: Hash(e.PrevHash).String(),
	}
}
