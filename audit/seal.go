package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Seal is what a seal's hash covers: seal seq covers the Count events after
// seal seq-1's end up to LastCheckpoint, in the log's read order, with Root
// their Merkle root.
type Seal struct {
	Seq            int64
	LastCheckpoint string // an opaque checkpoint, as the API writes it
	Count          int64
	Root           Hash
	PrevSealHash   Hash // ZeroHash for seq 1
	SealedAt       time.Time
}

// SealHash is SHA-256 of the lines seq, last_checkpoint, count, root,
// prev_seal_hash, sealed_at (UTC, TimeFormat) joined by "\n".
func SealHash(s Seal) Hash {
	lines := []string{
		strconv.FormatInt(s.Seq, 10),
		s.LastCheckpoint,
		strconv.FormatInt(s.Count, 10),
		s.Root.String(),
		s.PrevSealHash.String(),
		s.SealedAt.UTC().Format(TimeFormat),
	}
	return sha256.Sum256([]byte(strings.Join(lines, "\n")))
}

// ErrKey: a key or signature is malformed, or a signature does not verify.
var ErrKey = errors.New("audit: bad key or signature")

// KeyID is the first 16 hex digits of SHA-256 of the raw 32-byte public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign returns the signature of a seal: base64 (standard, padded) Ed25519
// over the ASCII text of its seal hash.
func Sign(key ed25519.PrivateKey, sealHash Hash) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(sealHash.String())))
}

// VerifySignature checks sig, as Sign writes it, over sealHash. It returns
// nil or an error matching ErrKey.
func VerifySignature(pub ed25519.PublicKey, sealHash Hash, sig string) error {
	b, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil || len(b) != ed25519.SignatureSize || base64.StdEncoding.EncodeToString(b) != sig {
		return fmt.Errorf("%w: signature is not base64 of %d bytes", ErrKey, ed25519.SignatureSize)
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(sealHash.String()), b) {
		return fmt.Errorf("%w: signature does not verify", ErrKey)
	}
	return nil
}

// EncodePublicKey is a public key as the API lists it: base64 (standard,
// padded) of the raw 32 bytes.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// DecodePublicKey parses base64 (standard, padded) of a raw 32-byte Ed25519
// public key. It returns an error matching ErrKey for anything else.
func DecodePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is not base64 of %d bytes", ErrKey, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// ParsePrivateKeyPEM parses an Ed25519 private key in a PKCS#8 PEM block
// ("PRIVATE KEY", as `openssl genpkey -algorithm ed25519` writes it). It
// returns an error matching ErrKey for anything else.
func ParsePrivateKeyPEM(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: no PEM \"PRIVATE KEY\" block", ErrKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T, not an Ed25519 key", ErrKey, k)
	}
	return key, nil
}

// ParsePublicKeyPEM parses an Ed25519 public key in a PKIX PEM block
// ("PUBLIC KEY", as `openssl pkey -pubout` writes it). It returns an error
// matching ErrKey for anything else.
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: no PEM \"PUBLIC KEY\" block", ErrKey)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	key, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T, not an Ed25519 key", ErrKey, k)
	}
	return key, nil
}
