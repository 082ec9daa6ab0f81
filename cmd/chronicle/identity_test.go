package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/storeurl"
)

// TestServeWithJWT: serve --jwks-file --jwt-issuer --jwt-audience accepts a
// JWT of the set (its sub is the actor of what it appends), turns auth on
// so that serve may listen on the network, and refuses an incomplete set
// of flags or an unusable key set.
func TestServeWithJWT(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Use: "sig"}}})
	if err := os.WriteFile(jwks, b, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(signer).Claims(map[string]any{
		"iss": "https://idp", "aud": "chronicle", "sub": "dana", "role": "write",
		"exp": time.Now().Add(time.Hour).Unix(),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--jwks-file", jwks, "--jwt-issuer", "https://idp", "--jwt-audience", "chronicle", "--jwt-role-claim", "role"}
	base := startInProcess(t, nil, flags...)

	send := func(method, path, body, token string) *http.Response {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := send("GET", "/projections", "", ""); res.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", res.StatusCode)
	}
	res := send("POST", "/orders", `{"order_id":"jw1","customer_id":"c","total":100}`, tok)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("create with the JWT: %d, want 201", res.StatusCode)
	}
	res = send("GET", "/orders/jw1/events", "", tok)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `"actor":"dana"`) {
		t.Errorf("the timeline does not name the JWT's sub as actor:\n%s", body)
	}

	// A JWK set turns auth on by itself: serve may then listen beyond loopback.
	_, stderr, _ := newCLI(t, nil).run(append([]string{"serve", "--addr", "0.0.0.0:-1", "--store", tempStore(t)}, flags...)...)
	if strings.Contains(stderr, "without auth") {
		t.Errorf("serve with a JWK set still refuses the network: %s", stderr)
	}

	for _, args := range [][]string{
		{"--jwks-file", jwks},
		{"--jwks-file", jwks, "--jwt-issuer", "i"},
		{"--jwt-issuer", "i", "--jwt-audience", "a"},
	} {
		_, stderr, code := newCLI(t, nil).run(append([]string{"serve", "--addr", "127.0.0.1:0", "--store", tempStore(t)}, args...)...)
		if code != 2 || !strings.Contains(stderr, "--jwks-file") {
			t.Errorf("serve %v: exit %d, stderr %q, want a usage error", args, code, stderr)
		}
	}
	_, stderr, code := newCLI(t, nil).run("serve", "--addr", "127.0.0.1:0", "--store", tempStore(t),
		"--jwks-file", filepath.Join(dir, "missing.json"), "--jwt-issuer", "i", "--jwt-audience", "a")
	if code != 1 || !strings.Contains(stderr, "missing.json") {
		t.Errorf("missing JWK set: exit %d, stderr %q", code, stderr)
	}
}

// TestDemoRecordsActor: events the CLI appends name the OS user as actor
// ("cli:" and the user name) and carry a request id.
func TestDemoRecordsActor(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	store := tempStore(t)
	if _, stderr, code := newCLI(t, nil).run("demo", "--orders", "2", "--store", store); code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	loc, err := storeurl.Parse(store)
	if err != nil {
		t.Fatal(err)
	}
	s, err := storeurl.Open(t.Context(), loc, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, err := s.ReadAll(t.Context(), chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 {
		t.Fatal("demo appended nothing")
	}
	for _, e := range evs {
		var m map[string]string
		if err := json.Unmarshal(e.Metadata, &m); err != nil {
			t.Fatalf("event %d: metadata %s: %v", e.Position, e.Metadata, err)
		}
		if m["actor"] != "cli:"+u.Username || m["request_id"] == "" || m["correlation_id"] == "" {
			t.Fatalf("event %d: metadata %v, want actor cli:%s, a request_id and a correlation_id", e.Position, m, u.Username)
		}
	}
}
