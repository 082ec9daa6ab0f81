package chronicle

import (
	"context"
	"time"
)

// DataKey is a data key as a KeyStore keeps it: wrapped (encrypted by a
// master key the store never sees), so the store alone cannot decrypt
// anything.
type DataKey struct {
	ID        string // unique, never reused: ciphertexts name it
	Subject   string // whose personal data it encrypts, e.g. a customer id
	Wrapped   []byte // nil once erased
	CreatedAt time.Time
	ErasedAt  time.Time // zero while the key is live
}

// KeyStore keeps the data keys of personal data (one live key per subject)
// and the check value of the master key that wraps them. Erasing a key is
// the only way to erase personal data from an immutable log: what it
// encrypted becomes noise.
type KeyStore interface {
	// CreateDataKey stores k as its subject's live key unless the subject
	// has one already, and returns the subject's live key: k, or the one
	// another caller stored first (so concurrent callers, in any process,
	// agree on one key).
	CreateDataKey(ctx context.Context, k DataKey) (DataKey, error)

	// SubjectKey returns the subject's live key.
	// Errors: ErrNotFound when it has none (never had one, or erased).
	SubjectKey(ctx context.Context, subject string) (DataKey, error)

	// DataKeys returns the live keys among ids; erased and unknown ids are
	// left out.
	DataKeys(ctx context.Context, ids []string) ([]DataKey, error)

	// EraseSubject destroys the subject's live key, if any, keeping its id,
	// subject and erasure time (a tombstone), and returns the time of the
	// subject's latest erasure: erasing again changes nothing and returns
	// the same time. The wrapped key is gone from the store's files when it
	// returns, as far as the backend can purge them (see its docs).
	// Errors: ErrNotFound when the subject never had a key.
	EraseSubject(ctx context.Context, subject string) (time.Time, error)

	// KeyCheck returns the store's master key check value, storing check
	// first when the store has none yet.
	KeyCheck(ctx context.Context, check []byte) ([]byte, error)
}
