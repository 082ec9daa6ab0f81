package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	goodBundle     = "../../audit/testdata/vectors/audit-bundle.json"
	tamperedBundle = "../../audit/testdata/vectors/audit-bundle-tampered.json"
)

// vectorKey is the signing key of the test vectors, as the bundle lists it.
func vectorKey(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(goodBundle)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		PublicKeys []struct {
			PublicKey string `json:"public_key"`
		} `json:"public_keys"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.PublicKeys) != 1 {
		t.Fatalf("vector public keys: %v", err)
	}
	return v.PublicKeys[0].PublicKey
}

func TestAuditCheck(t *testing.T) {
	c := newCLI(t, nil)
	key := vectorKey(t)
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw))
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "seal.pub")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	other, _, _ := ed25519.GenerateKey(nil)

	for _, args := range [][]string{
		{"audit", "check", goodBundle},
		{"audit", "check", goodBundle, "--public-key", key},
		{"audit", "check", goodBundle, "--public-key", pemFile},
	} {
		out, stderr, code := c.run(args...)
		if code != 0 || !strings.Contains(out, "ok: 23 events (0 unsealed: after the last seal, hashed and chained only), 5 seals") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 0 and ok", args, code, out, stderr)
		}
	}
	for _, c2 := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "check", tamperedBundle}, "position 8 (order-o3 v2): hash does not match"},
		{[]string{"audit", "check", goodBundle, "--public-key", base64.StdEncoding.EncodeToString(other)}, "seal 1: signed by key"},
	} {
		_, stderr, code := c.run(c2.args...)
		if code != 1 || !strings.Contains(stderr, c2.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", c2.args, code, stderr, c2.want)
		}
	}
	for _, args := range [][]string{
		{"audit"},
		{"audit", "frobnicate"},
		{"audit", "check"},
		{"audit", "check", goodBundle, goodBundle},
		{"audit", "check", goodBundle, "--public-key", "not-a-key"},
		{"audit", "check", goodBundle, "--public-key", "AAAA"},
	} {
		if _, stderr, code := c.run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, stderr)
		}
	}
	if _, stderr, code := c.run("audit", "check", filepath.Join(t.TempDir(), "missing.json")); code != 1 {
		t.Errorf("missing file: exit %d, want 1 (stderr %q)", code, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"events":[],"events":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := c.run("audit", "check", bad); code != 1 || !strings.Contains(stderr, "malformed bundle") {
		t.Errorf("malformed bundle: exit %d, stderr %q; want 1, malformed bundle", code, stderr)
	}
}
