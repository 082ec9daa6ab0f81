package httpapi

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	// go-jose over golang-jwt/jwt v5 and lestrrat-go/jwx v3: the fastest of
	// the three at verifying an ES256 token (about 0.2 ms against 0.34 and
	// 0.31-0.45), no dependency beyond itself (jwx brings 20 modules), and it
	// parses JWK sets itself (curve points checked), where golang-jwt would
	// need a hand-written JWK decoder.
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/chronicle-es/chronicle/internal/freetext"
)

// JWTOptions turn on bearer JWTs issued by an identity provider.
type JWTOptions struct {
	// KeySetFile is a JWK set (RFC 7517) of the provider's public keys:
	// RSA (2048 bits or more; RS256), EC P-256 (ES256) or Ed25519 (EdDSA),
	// each with a distinct "kid". It is read again when it changes, so keys
	// rotate without a restart.
	KeySetFile string
	// Issuer and Audience must match the token's "iss" and "aud".
	Issuer   string
	Audience string
	// RoleClaim names the claim holding the role: read, write or admin.
	// Default DefaultRoleClaim.
	RoleClaim string
}

// DefaultRoleClaim is JWTOptions.RoleClaim when left empty.
const DefaultRoleClaim = "chronicle_role"

// jwtLeeway is the clock skew allowed on exp, nbf and iat.
const jwtLeeway = 60 * time.Second

// keySetRecheck is how often, at most, the key set file is looked at for
// a change: a stat per second costs nothing, and rotation needs no more.
const keySetRecheck = time.Second

// maxKeySetBytes bounds the key set file; real ones hold a few keys.
const maxKeySetBytes = 1 << 20

// maxSubject bounds the "sub" claim, which every event the holder appends
// records as its actor.
const maxSubject = 255

// ErrJWT is what every refused JWT matches; *JWTError says why.
var ErrJWT = errors.New("httpapi: JWT refused")

// JWTError is why a JWT was refused. The client is told only 401; the
// reason goes to the server log.
type JWTError struct{ Reason string }

func (e *JWTError) Error() string        { return "JWT refused: " + e.Reason }
func (e *JWTError) Is(target error) bool { return target == ErrJWT }

func jwtErrorf(format string, args ...any) error {
	return &JWTError{Reason: fmt.Sprintf(format, args...)}
}

// jwtKey is a verification key and the one algorithm it is used with.
type jwtKey struct {
	alg jose.SignatureAlgorithm
	key any
}

// keySet is the key set file as last read.
type keySet struct {
	keys map[string]jwtKey // by kid
	info os.FileInfo
}

// jwtVerifier checks bearer JWTs against the key set file.
type jwtVerifier struct {
	opts    JWTOptions
	log     *slog.Logger
	keys    atomic.Pointer[keySet]
	checked atomic.Int64 // UnixNano of the last look at the file
}

// newJWTVerifier reads the key set; it must hold at least one key.
func newJWTVerifier(opts JWTOptions, log *slog.Logger) (*jwtVerifier, error) {
	switch {
	case opts.KeySetFile == "":
		return nil, errors.New("jwt: a JWK set file is required")
	case opts.Issuer == "":
		return nil, errors.New("jwt: an issuer is required")
	case opts.Audience == "":
		return nil, errors.New("jwt: an audience is required")
	}
	if opts.RoleClaim == "" {
		opts.RoleClaim = DefaultRoleClaim
	}
	ks, err := readKeySet(opts.KeySetFile)
	if err != nil {
		return nil, err
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("jwt: JWK set %s holds no key", opts.KeySetFile)
	}
	v := &jwtVerifier{opts: opts, log: log}
	v.keys.Store(ks)
	v.checked.Store(time.Now().UnixNano())
	return v, nil
}

// current returns the key set, read again first when the file changed
// (at most one look per keySetRecheck, by one request). A file that no
// longer reads leaves the last good set in use, and is logged.
func (v *jwtVerifier) current() *keySet {
	ks := v.keys.Load()
	now := time.Now().UnixNano()
	last := v.checked.Load()
	if now-last < int64(keySetRecheck) || !v.checked.CompareAndSwap(last, now) {
		return ks
	}
	fi, err := os.Stat(v.opts.KeySetFile)
	if err == nil && os.SameFile(fi, ks.info) && fi.ModTime().Equal(ks.info.ModTime()) && fi.Size() == ks.info.Size() {
		return ks
	}
	next, err := readKeySet(v.opts.KeySetFile)
	if err != nil {
		v.log.Warn("JWK set not reloaded; the previous keys stay in use", slog.String("error", err.Error()))
		return ks
	}
	v.keys.Store(next)
	v.log.Info("JWK set reloaded", slog.String("file", v.opts.KeySetFile), slog.Int("keys", len(next.keys)))
	return next
}

// readKeySet reads and checks a JWK set file.
func readKeySet(path string) (*keySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("jwt: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeySetBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwt: read %s: %w", path, err)
	}
	if len(b) > maxKeySetBytes {
		return nil, fmt.Errorf("jwt: JWK set %s is larger than %d bytes", path, maxKeySetBytes)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("jwt: JWK set %s: %w", path, err)
	}
	ks := &keySet{keys: make(map[string]jwtKey, len(raw.Keys)), info: fi}
	for i, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil {
			return nil, fmt.Errorf("jwt: JWK set %s: key %d: %w", path, i+1, err)
		}
		jk, err := verificationKey(k)
		if err != nil {
			return nil, fmt.Errorf("jwt: JWK set %s: key %d (kid %q): %w", path, i+1, k.KeyID, err)
		}
		if k.KeyID == "" {
			return nil, fmt.Errorf("jwt: JWK set %s: key %d has no kid", path, i+1)
		}
		if _, dup := ks.keys[k.KeyID]; dup {
			return nil, fmt.Errorf("jwt: JWK set %s: kid %q is used twice", path, k.KeyID)
		}
		ks.keys[k.KeyID] = jk
	}
	return ks, nil
}

// verificationKey returns k's public key and the algorithm its type
// implies. A token is verified with that algorithm only, whatever its
// header claims, so an RSA public key can never serve as an HMAC secret.
func verificationKey(k jose.JSONWebKey) (jwtKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return jwtKey{}, fmt.Errorf("use %q is not sig", k.Use)
	}
	pub := k.Key
	switch p := pub.(type) {
	case *rsa.PrivateKey:
		pub = &p.PublicKey
	case *ecdsa.PrivateKey:
		pub = &p.PublicKey
	case ed25519.PrivateKey:
		pub = p.Public()
	}
	var alg jose.SignatureAlgorithm
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < 2048 {
			return jwtKey{}, fmt.Errorf("an RSA key of %d bits (want 2048 or more)", p.N.BitLen())
		}
		alg = jose.RS256
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return jwtKey{}, fmt.Errorf("an EC key on %s (want P-256)", p.Curve.Params().Name)
		}
		alg = jose.ES256
	case ed25519.PublicKey:
		alg = jose.EdDSA
	default:
		return jwtKey{}, fmt.Errorf("a %T key (want RSA, EC P-256 or Ed25519)", k.Key)
	}
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return jwtKey{}, fmt.Errorf("alg %s (this key signs %s)", k.Algorithm, alg)
	}
	return jwtKey{alg: alg, key: pub}, nil
}

// verify checks a compact JWS and returns its subject and role.
// Errors: *JWTError (ErrJWT).
func (v *jwtVerifier) verify(token string) (string, Role, error) {
	tok, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		return "", RoleNone, jwtErrorf("%v", err)
	}
	if len(tok.Headers) != 1 {
		return "", RoleNone, jwtErrorf("want one signature")
	}
	h := tok.Headers[0]
	k, ok := v.current().keys[h.KeyID]
	if !ok {
		return "", RoleNone, jwtErrorf("no key with kid %q", h.KeyID)
	}
	if h.Algorithm != string(k.alg) {
		return "", RoleNone, jwtErrorf("alg %s for a key that signs %s", h.Algorithm, k.alg)
	}
	var std josejwt.Claims
	var extra map[string]any
	if err := tok.Claims(k.key, &std, &extra); err != nil {
		return "", RoleNone, jwtErrorf("%v", err)
	}
	if std.Expiry == nil {
		return "", RoleNone, jwtErrorf("no exp")
	}
	err = std.ValidateWithLeeway(josejwt.Expected{
		Issuer:      v.opts.Issuer,
		AnyAudience: josejwt.Audience{v.opts.Audience},
		Time:        time.Now(),
	}, jwtLeeway)
	if err != nil {
		return "", RoleNone, jwtErrorf("%v", err)
	}
	if !validSubject(std.Subject) {
		return "", RoleNone, jwtErrorf("sub missing, longer than %d bytes or not printable", maxSubject)
	}
	name, _ := extra[v.opts.RoleClaim].(string)
	role, err := ParseRole(name)
	if err != nil {
		return "", RoleNone, jwtErrorf("claim %s: want read, write or admin", v.opts.RoleClaim)
	}
	return std.Subject, role, nil
}

// validSubject reports whether sub can name an actor: non-empty, UTF-8,
// at most maxSubject bytes, and none of the characters free text may not
// hold (controls, bidirectional overrides, line separators), which could
// make one actor read as another in the timeline and the console.
func validSubject(sub string) bool {
	if sub == "" || len(sub) > maxSubject || !utf8.ValidString(sub) {
		return false
	}
	return !strings.ContainsFunc(sub, freetext.Forbidden)
}
