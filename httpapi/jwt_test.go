package httpapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// testKey is a signing key the test made, with the kid it is published under.
type testKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func newTestKeys(t testing.TB) []testKey {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, dk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []testKey{{"rsa-1", jose.RS256, rk}, {"ec-1", jose.ES256, ek}, {"ed-1", jose.EdDSA, dk}}
}

// writeKeySet publishes the keys' public halves as a JWK set file, by
// rename, as a deployment rotating keys would.
func writeKeySet(t testing.TB, path string, keys ...testKey) {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// sign returns a compact JWS of claims signed by k, with header kid
// (k's own unless given) and alg k.alg.
func sign(t testing.TB, k testKey, kid string, claims map[string]any) string {
	t.Helper()
	if kid == "" {
		kid = k.kid
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsigned returns a token with the given header, signed (when mac is
// not nil) with HMAC-SHA256 under mac: what a forger can make.
func unsigned(t *testing.T, header, claims map[string]any, mac []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	if mac == nil {
		return in + "."
	}
	h := hmac.New(sha256.New, mac)
	h.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

const (
	testIssuer   = "https://idp.example"
	testAudience = "chronicle-api"
)

func goodClaims(sub, role string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": sub, "chronicle_role": role,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
}

// with returns a copy of c with the fields of change set (nil: removed).
func with(c map[string]any, change map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range change {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func jwtEnv(t *testing.T, store backend, keySet string) *env {
	return newEnv(t, store, func(o *Options) {
		o.Tokens = []Token{{Name: "ops", Secret: "ops-secret", Role: RoleAdmin}}
		o.JWT = &JWTOptions{KeySetFile: keySet, Issuer: testIssuer, Audience: testAudience}
	})
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// TestJWT: a JWT signed by a key of the set, with the right issuer,
// audience and times, is accepted and its sub is the actor of what it
// appends; every other token is 401, for each kind of key.
func TestJWT(t *testing.T) {
	keys := newTestKeys(t)
	rsaPub, err := x509.MarshalPKIXPublicKey(keys[0].key.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	forEachBackend(t, func(t *testing.T, open func() backend) {
		path := filepath.Join(t.TempDir(), "jwks.json")
		writeKeySet(t, path, keys...)
		e := jwtEnv(t, open(), path)
		e.mustDo(req{method: "POST", path: "/orders", body: `{"order_id":"j0","customer_id":"c","total":100}`, header: bearer("ops-secret")}, http.StatusCreated)

		now := time.Now()
		for i, k := range keys {
			other := keys[(i+1)%len(keys)]
			t.Run(string(k.alg), func(t *testing.T) {
				// Accepted, and the sub names the actor.
				id := "j-" + k.kid
				e.mustDo(req{method: "POST", path: "/orders", body: `{"order_id":"` + id + `","customer_id":"c","total":100}`,
					header: bearer(sign(t, k, "", goodClaims("alice@"+k.kid, "write")))}, http.StatusCreated)
				if got := e.eventMeta(id, bearer("ops-secret"))[0]["actor"]; got != "alice@"+k.kid {
					t.Errorf("actor %q, want the sub alice@%s", got, k.kid)
				}
				good := goodClaims("bob", "read")
				for _, c := range []struct {
					name string
					tok  string
					want int
				}{
					{"valid", sign(t, k, "", good), 200},
					{"within leeway: expired 30 s ago", sign(t, k, "", with(good, map[string]any{"exp": now.Add(-30 * time.Second).Unix()})), 200},
					{"within leeway: valid in 30 s", sign(t, k, "", with(good, map[string]any{"nbf": now.Add(30 * time.Second).Unix()})), 200},
					{"audience in a list", sign(t, k, "", with(good, map[string]any{"aud": []string{"other", testAudience}})), 200},
					{"bad signature", tamper(sign(t, k, "", good)), 401},
					{"signed by another key under this kid", sign(t, testKey{k.kid, other.alg, other.key}, "", good), 401},
					{"alg none", unsigned(t, map[string]any{"alg": "none", "kid": k.kid, "typ": "JWT"}, good, nil), 401},
					{"unknown kid", sign(t, k, "nope", good), 401},
					{"no kid", unsigned(t, map[string]any{"alg": string(k.alg)}, good, nil), 401},
					{"alg of another key type", sign(t, testKey{k.kid, other.alg, other.key}, k.kid, good), 401},
					{"HS256 with the RSA public key (PEM) as secret", unsigned(t, map[string]any{"alg": "HS256", "kid": "rsa-1"}, good, rsaPEM), 401},
					{"HS256 with the RSA public key (DER) as secret", unsigned(t, map[string]any{"alg": "HS256", "kid": "rsa-1"}, good, rsaPub), 401},
					{"expired", sign(t, k, "", with(good, map[string]any{"exp": now.Add(-2 * time.Minute).Unix()})), 401},
					{"no exp", sign(t, k, "", with(good, map[string]any{"exp": nil})), 401},
					{"not yet valid", sign(t, k, "", with(good, map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})), 401},
					{"issued in the future", sign(t, k, "", with(good, map[string]any{"iat": now.Add(2 * time.Minute).Unix()})), 401},
					{"wrong issuer", sign(t, k, "", with(good, map[string]any{"iss": "https://evil.example"})), 401},
					{"no issuer", sign(t, k, "", with(good, map[string]any{"iss": nil})), 401},
					{"wrong audience", sign(t, k, "", with(good, map[string]any{"aud": "other"})), 401},
					{"no audience", sign(t, k, "", with(good, map[string]any{"aud": nil})), 401},
					{"no role", sign(t, k, "", with(good, map[string]any{"chronicle_role": nil})), 401},
					{"unknown role", sign(t, k, "", with(good, map[string]any{"chronicle_role": "root"})), 401},
					{"role not a string", sign(t, k, "", with(good, map[string]any{"chronicle_role": []string{"admin"}})), 401},
					{"no sub", sign(t, k, "", with(good, map[string]any{"sub": nil})), 401},
					{"empty sub", sign(t, k, "", with(good, map[string]any{"sub": ""})), 401},
					{"sub with a control character", sign(t, k, "", with(good, map[string]any{"sub": "a\nb"})), 401},
					{"sub with a bidirectional override", sign(t, k, "", with(good, map[string]any{"sub": "a\u202eb"})), 401},
					{"sub with a line separator", sign(t, k, "", with(good, map[string]any{"sub": "a\u2028b"})), 401},
					{"sub with a C1 control", sign(t, k, "", with(good, map[string]any{"sub": "a\u0085b"})), 401},
					// The actor would read as the static token's, or as auth off.
					{"sub naming a configured token", sign(t, k, "", with(good, map[string]any{"sub": "ops"})), 401},
					{"sub anonymous", sign(t, k, "", with(good, map[string]any{"sub": "anonymous"})), 401},
				} {
					t.Run(c.name, func(t *testing.T) {
						r := e.do(req{method: "GET", path: "/orders/j0", header: bearer(c.tok)})
						if c.want != 200 {
							p := isProblem(t, r, c.want)
							if r.header.Get("Www-Authenticate") == "" {
								t.Errorf("401 without WWW-Authenticate: %v", p)
							}
							return
						}
						if r.status != 200 {
							t.Fatalf("status %d, want 200\n%s", r.status, r.body)
						}
					})
				}
				// A read role cannot run a command: 403, not 401.
				r := e.do(req{method: "POST", path: "/orders", body: `{"customer_id":"c","total":100}`, header: bearer(sign(t, k, "", good))})
				isProblem(t, r, http.StatusForbidden)
			})
		}
	})
}

// tamper flips a character of the token's payload, keeping the signature.
func tamper(tok string) string {
	b := []byte(tok)
	for i := range b {
		if b[i] == '.' {
			i += 5
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			break
		}
	}
	return string(b)
}

// TestJWTKeyRotation: the JWK set file is read again when it changes: a
// token of a newly published key passes without a restart, and one of a
// removed key fails.
func TestJWTKeyRotation(t *testing.T) {
	keys := newTestKeys(t)
	oldKey, newKey := keys[1], testKey{"ec-2", jose.ES256, keys[1].key}
	k2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	newKey.key = k2
	forEachBackend(t, func(t *testing.T, open func() backend) {
		path := filepath.Join(t.TempDir(), "jwks.json")
		writeKeySet(t, path, oldKey)
		e := jwtEnv(t, open(), path)
		get := func(k testKey) int {
			return e.do(req{method: "GET", path: "/orders", header: bearer(sign(t, k, "", goodClaims("carol", "read")))}).status
		}
		if got := get(oldKey); got != 200 {
			t.Fatalf("old key before rotation: %d, want 200", got)
		}
		if got := get(newKey); got != 401 {
			t.Fatalf("new key before rotation: %d, want 401", got)
		}

		writeKeySet(t, path, newKey)
		deadline := time.Now().Add(20 * time.Second)
		for get(newKey) != 200 {
			if time.Now().After(deadline) {
				t.Fatal("a token of the new key still fails 20 s after the rotation")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := get(oldKey); got != 401 {
			t.Errorf("removed key after rotation: %d, want 401", got)
		}

		// A broken file keeps the last good keys.
		if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(20 * time.Second)
		for !strings.Contains(e.logs.String(), "JWK set not reloaded") {
			if time.Now().After(deadline) {
				t.Fatal("a broken JWK set file was never noticed")
			}
			get(newKey)
			time.Sleep(50 * time.Millisecond)
		}
		if got := get(newKey); got != 200 {
			t.Errorf("after a broken file: %d, want 200 with the last good keys", got)
		}
	})
}

// TestJWTKeySetRefused: a key set the server cannot use fully stops it
// from starting, with the reason.
func TestJWTKeySetRefused(t *testing.T) {
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, body string }{
		{"not json", "{"},
		{"empty", `{"keys":[]}`},
		{"symmetric", `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`},
		{"small RSA", jwkJSON(t, jose.JSONWebKey{Key: &small.PublicKey, KeyID: "r"})},
		{"P-384", jwkJSON(t, jose.JSONWebKey{Key: &p384.PublicKey, KeyID: "p"})},
		{"no kid", jwkJSON(t, jose.JSONWebKey{Key: p384.Public()})},
		{"alg that does not fit the key", jwkJSON(t, jose.JSONWebKey{Key: &small.PublicKey, KeyID: "r", Algorithm: "HS256"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "jwks.json")
			if err := os.WriteFile(path, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := newJWTVerifier(JWTOptions{KeySetFile: path, Issuer: "i", Audience: "a"}, nil); err == nil {
				t.Error("no error")
			}
		})
	}
}

func jwkJSON(t *testing.T, k jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// BenchmarkJWTVerify measures verifying one token per key type, the cost a
// JWT adds to each request.
func BenchmarkJWTVerify(b *testing.B) {
	keys := newTestKeys(b)
	path := filepath.Join(b.TempDir(), "jwks.json")
	writeKeySet(b, path, keys...)
	v, err := newJWTVerifier(JWTOptions{KeySetFile: path, Issuer: testIssuer, Audience: testAudience}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range keys {
		tok := sign(b, k, "", goodClaims("bench", "read"))
		b.Run(string(k.alg), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := v.verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
