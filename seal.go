package chronicle

import (
	"context"
	"errors"
	"fmt"
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
	// End is where the seal ends in this store when another store made it
	// (chronicle copy): the checkpoint of the event that LastCheckpoint
	// names there. Zero for the store's own seals. Not covered by SealHash:
	// checkpoints are each store's own.
	End Checkpoint
}

// LocalEnd returns the checkpoint, in this store, of the seal's last
// event: End when set, else LastCheckpoint.
func (s Seal) LocalEnd() Checkpoint {
	if s.End != (Checkpoint{}) {
		return s.End
	}
	return s.LastCheckpoint
}

// SealKey is a public key that signed seals: KeyID and the raw 32-byte
// Ed25519 public key.
type SealKey struct {
	KeyID     string
	PublicKey []byte
	// FirstSeal is the seq of the first seal it signed, as the store
	// recorded it (SealKeys only; ImportSeals and AddSeal ignore it).
	FirstSeal int64
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
	// Census counts the stored events in one snapshot, for a check that
	// read the log with ReadAll from the zero checkpoint up to end: every
	// stored event is one that check read, one after end, one not readable
	// yet, or a stray (see LogCensus). At most limit strays are returned.
	Census(ctx context.Context, end Checkpoint, limit int) (LogCensus, error)
}

// LogCensus is what SealStore.Census counts. Total - After - Pending -
// len(Strays) is the number of events ReadAll returns from the zero
// checkpoint up to the given end, when there are at most limit strays.
type LogCensus struct {
	Total   int64 // every row of the events table
	After   int64 // events ReadAll returns after the given end
	Pending int64 // committed but not readable yet: behind a transaction still open (PostgreSQL)
	// Strays are stored events that ReadAll never returns from the zero
	// checkpoint on, while stream reads do: only a row inserted behind
	// the store's back is one (SQLite: a position not above 0;
	// PostgreSQL: a tx_id that no committed transaction has).
	Strays []RecordedEvent
}

// CheckImportedSeals checks what Importer.ImportSeals needs of seals:
// each the next of the one before (seq + 1, chained by prev_seal_hash),
// and each seal of events with its End.
// Errors: ErrSealConflict, *InvalidError.
func CheckImportedSeals(seals []Seal) error {
	for i, s := range seals {
		if i > 0 && (s.Seq != seals[i-1].Seq+1 || s.PrevSealHash != seals[i-1].SealHash) {
			return fmt.Errorf("%w: seal %d after seal %d", ErrSealConflict, s.Seq, seals[i-1].Seq)
		}
		if s.Count > 0 && s.End == (Checkpoint{}) {
			return &InvalidError{Field: fmt.Sprintf("seals[%d].End", i), Reason: "a seal of events needs its end in this store"}
		}
	}
	return nil
}

// FirstSignedBy returns the seq of the first of seals signed by keyID: the
// first_seal of an imported key. ok is false when none of them is: the key
// is imported with the seals it first signs, so that its first_seal is
// right whichever batch brings it.
func FirstSignedBy(seals []Seal, keyID string) (seq int64, ok bool) {
	for _, s := range seals {
		if s.KeyID == keyID {
			return s.Seq, true
		}
	}
	return 0, false
}
