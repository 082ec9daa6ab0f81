package chronicle

import (
	"context"
	"errors"
	"time"
)

// Seal is a stored seal of the global log (package audit defines how its
// root and hash are computed): seal Seq covers the Count events after seal
// Seq-1's LastCheckpoint up to its own, in the log's read order.
type Seal struct {
	Seq            int64
	LastCheckpoint Checkpoint
	Count          int64
	Root           [32]byte
	PrevSealHash   [32]byte // all zeros for seq 1
	SealedAt       time.Time
	SealHash       [32]byte
	KeyID          string // "" when unsigned
	Signature      string // "" when unsigned
}

// SealKey is a public key that signed seals: KeyID and the raw 32-byte
// Ed25519 public key.
type SealKey struct {
	KeyID     string
	PublicKey []byte
}

// ErrSealConflict: a seal is not the one after the latest stored seal
// (another sealer stored that seq first, or the seal does not chain to it).
var ErrSealConflict = errors.New("chronicle: seal conflict")

// SealStore is implemented by stores that keep the seals of their log.
// Seals, like events, are never updated or removed.
type SealStore interface {
	// AddSeal stores s as the seal after the latest one. When s is signed,
	// key is the key that signed it; it is added to the store's keys unless
	// listed already. Errors: ErrSealConflict when s.Seq is not the latest
	// seal's seq + 1 or s.PrevSealHash not its seal hash (a concurrent
	// sealer won); ErrClosed.
	AddSeal(ctx context.Context, s Seal, key *SealKey) error
	// Seals returns at most limit seals with seq > after, in seq order;
	// limit 0 means all of them.
	Seals(ctx context.Context, after int64, limit int) ([]Seal, error)
	// LatestSeal returns the seal with the highest seq.
	// Errors: ErrNotFound before the first seal.
	LatestSeal(ctx context.Context) (Seal, error)
	// SealKeys returns every key that ever signed a seal, in the order
	// they were first used.
	SealKeys(ctx context.Context) ([]SealKey, error)
}
