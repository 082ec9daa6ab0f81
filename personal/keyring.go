package personal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chronicle-es/chronicle"
)

// Errors.
var (
	// ErrWrongMasterKey: the master key is not the one the store's data
	// keys were wrapped with.
	ErrWrongMasterKey = errors.New("personal: the master key does not match this store's data keys (another key file?)")
	// ErrNoSubject: an event holds personal data but names no subject, and
	// its stream has no event that does.
	ErrNoSubject = errors.New("personal: personal data without a subject")
)

// Erased is what a field whose key was erased reads as.
const Erased = "[erased]"

// maxCachedKeys bounds each of the keyring's caches (unwrapped keys by id,
// and by subject for writes): a few MiB at most.
const maxCachedKeys = 10_000

// SubjectKeyTTL is how long a writer reuses a subject's key without asking
// the store again. An erasure by another process is noticed by writers
// within it; readers notice at once (Reveal asks every time).
const SubjectKeyTTL = 10 * time.Second

// Keyring holds the master key and caches unwrapped data keys.
type Keyring struct {
	ks     chronicle.KeyStore
	master cipher.AEAD

	mu        sync.Mutex
	byID      map[string]dataKey
	bySubject map[string]dataKey
}

type dataKey struct {
	id, subject string
	aead        cipher.AEAD
	nonceKey    []byte    // derives synthetic nonces (see seal)
	at          time.Time // when read from the store (bySubject's TTL)
}

// NewKeyring returns a keyring over ks with master (32 bytes). The first
// keyring of a store records a check value of its master key there; a
// later one with another key fails with ErrWrongMasterKey.
func NewKeyring(ctx context.Context, ks chronicle.KeyStore, master []byte) (*Keyring, error) {
	aead, err := newAEAD(master)
	if err != nil {
		return nil, fmt.Errorf("personal: master key: %w", err)
	}
	check := keyCheck(master)
	stored, err := ks.KeyCheck(ctx, check)
	if err != nil {
		return nil, fmt.Errorf("personal: %w", err)
	}
	if !hmac.Equal(stored, check) {
		return nil, ErrWrongMasterKey
	}
	return &Keyring{ks: ks, master: aead, byID: map[string]dataKey{}, bySubject: map[string]dataKey{}}, nil
}

// keyCheck is a value that identifies the master key without revealing it.
func keyCheck(master []byte) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("chronicle master key check v1"))
	return m.Sum(nil)[:16]
}

// nonceKey derives from a data key the key of its synthetic nonces: HMAC
// with a fixed label, so that it is independent of the AES key.
func nonceKey(raw []byte) []byte {
	m := hmac.New(sha256.New, raw)
	m.Write([]byte("chronicle pd1 nonce key"))
	return m.Sum(nil)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("want 32 bytes, have %d", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// wrapAAD binds a wrapped key to its id and subject: a row cannot lend its
// key to another.
func wrapAAD(id, subject string) []byte {
	return []byte("chronicle data key\x00" + id + "\x00" + subject)
}

func (k *Keyring) unwrap(dk chronicle.DataKey) (dataKey, error) {
	ns := k.master.NonceSize()
	if len(dk.Wrapped) < ns {
		return dataKey{}, fmt.Errorf("personal: data key %s: too short", dk.ID)
	}
	raw, err := k.master.Open(nil, dk.Wrapped[:ns], dk.Wrapped[ns:], wrapAAD(dk.ID, dk.Subject))
	if err != nil {
		return dataKey{}, fmt.Errorf("personal: data key %s: %w", dk.ID, ErrWrongMasterKey)
	}
	aead, err := newAEAD(raw)
	nonceKey := nonceKey(raw)
	clear(raw)
	if err != nil {
		return dataKey{}, fmt.Errorf("personal: data key %s: %w", dk.ID, err)
	}
	return dataKey{id: dk.ID, subject: dk.Subject, aead: aead, nonceKey: nonceKey, at: time.Now()}, nil
}

// subjectKey returns the subject's live key, making one on first use.
func (k *Keyring) subjectKey(ctx context.Context, subject string) (dataKey, error) {
	k.mu.Lock()
	dk, ok := k.bySubject[subject]
	k.mu.Unlock()
	if ok && time.Since(dk.at) < SubjectKeyTTL {
		return dk, nil
	}
	stored, err := k.ks.SubjectKey(ctx, subject)
	if errors.Is(err, chronicle.ErrNotFound) {
		stored, err = k.newKey(ctx, subject)
	}
	if err != nil {
		return dataKey{}, err
	}
	if dk, err = k.unwrap(stored); err != nil {
		return dataKey{}, err
	}
	k.mu.Lock()
	put(k.bySubject, subject, dk)
	put(k.byID, dk.id, dk)
	k.mu.Unlock()
	return dk, nil
}

func (k *Keyring) newKey(ctx context.Context, subject string) (chronicle.DataKey, error) {
	raw := make([]byte, 32)
	id := make([]byte, 16)
	nonce := make([]byte, k.master.NonceSize())
	for _, b := range [][]byte{raw, id, nonce} {
		if _, err := rand.Read(b); err != nil {
			return chronicle.DataKey{}, err
		}
	}
	dk := chronicle.DataKey{ID: base64.RawURLEncoding.EncodeToString(id), Subject: subject}
	dk.Wrapped = k.master.Seal(nonce, nonce, raw, wrapAAD(dk.ID, subject))
	clear(raw)
	return k.ks.CreateDataKey(ctx, dk)
}

// put adds to a cache, emptying it first when full: simple, and bounded.
func put(m map[string]dataKey, key string, dk dataKey) {
	if len(m) >= maxCachedKeys {
		clear(m)
	}
	m[key] = dk
}

// liveKeys returns the keys among ids that are live now, asking the store
// every time (so that an erasure anywhere is seen at once) but unwrapping
// only keys not cached yet. Erased keys are dropped from the caches.
func (k *Keyring) liveKeys(ctx context.Context, ids []string) (map[string]cipher.AEAD, error) {
	stored, err := k.ks.DataKeys(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("personal: %w", err)
	}
	live := make(map[string]cipher.AEAD, len(stored))
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range stored {
		dk, ok := k.byID[s.ID]
		if !ok {
			if dk, err = k.unwrap(s); err != nil {
				return nil, err
			}
			put(k.byID, dk.id, dk)
		}
		live[s.ID] = dk.aead
	}
	for _, id := range ids {
		if _, ok := live[id]; !ok {
			k.forgetLocked(id)
		}
	}
	return live, nil
}

func (k *Keyring) forgetLocked(id string) {
	if dk, ok := k.byID[id]; ok {
		delete(k.byID, id)
		if s, ok := k.bySubject[dk.subject]; ok && s.id == id {
			delete(k.bySubject, dk.subject)
		}
	}
}

// Erase destroys the subject's data key (see chronicle.KeyStore.EraseSubject)
// and drops it from the caches: from then on every field it encrypted
// reveals as Erased, and the subject's next personal data gets a new key.
// It returns the time of the subject's latest erasure.
// Errors: chronicle.ErrNotFound when the subject never had a key.
func (k *Keyring) Erase(ctx context.Context, subject string) (time.Time, error) {
	at, err := k.ks.EraseSubject(ctx, subject)
	k.mu.Lock()
	if dk, ok := k.bySubject[subject]; ok {
		k.forgetLocked(dk.id)
	}
	delete(k.bySubject, subject)
	for id, dk := range k.byID {
		if dk.subject == subject {
			delete(k.byID, id)
		}
	}
	k.mu.Unlock()
	return at, err
}

// CreateKey makes sure the subject has a live data key (erasing a subject
// with none then leaves a tombstone).
func (k *Keyring) CreateKey(ctx context.Context, subject string) error {
	_, err := k.subjectKey(ctx, subject)
	return err
}
