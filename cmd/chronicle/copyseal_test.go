package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/seal"
)

// signingKeyFile writes a new Ed25519 signing key as serve --signing-key
// reads it.
func signingKeyFile(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "seal.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}

// TestCopySeals copies a signed, sealed store with an unsealed tail, in
// two runs (the second resumes after seals added since): the seals come
// along as made, so that verify --integrity with the source's
// latest seal as the anchor passes on the target, the target lists the
// same seals, its sealer goes on with the next seq chained to the last
// copied one, and an audit bundle of the target checks against the
// source's public key.
func TestCopySeals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst func(t *testing.T) string
	}{
		{"sqlite_to_postgres", tempStore, pgStoreURL},
		{"postgres_to_sqlite", pgStoreURL, tempStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			keyFile := masterKeyFile(t)
			key, sigFile := signingKeyFile(t)
			pub := audit.EncodePublicKey(key.Public().(ed25519.PublicKey))
			src, dst := tc.src(t), tc.dst(t)

			fillStore(t, src, keyFile, 700)
			s, err := storeurl.OpenURL(ctx, src, storeurl.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sealer := seal.New(s, seal.Options{MaxEvents: 150, Key: key})
			for range 2 {
				if _, ok, err := sealer.SealOnce(ctx); err != nil || !ok {
					t.Fatalf("SealOnce: %v, %v", ok, err)
				}
			}
			// A first copy takes two seals; the second goes on from them.
			c := newCLI(t, nil)
			if out, errs, code := c.run("copy", "--from", src, "--to", dst, "--master-key", keyFile); code != 0 {
				t.Fatalf("copy: exit %d:\n%s%s", code, out, errs)
			}
			for {
				_, ok, err := sealer.SealOnce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
			}
			want, err := s.Seals(ctx, 0, 0)
			s.Close()
			if err != nil || len(want) < 5 {
				t.Fatalf("the source holds %d seals (%v), want at least 5", len(want), err)
			}
			const tail = 3 // left unsealed: the target's sealer seals them
			appendRaw(t, src, "o-tail",
				ev("OrderCreated", 1, `{"customer_id":"cust_tail","total":100}`),
				ev("PaymentReceived", 1, `{"method":"card","amount":100}`),
				ev("OrderShipped", 1, `{"carrier":"ups","tracking":"T1"}`))
			anchor := audit.Hash(want[len(want)-1].SealHash).String()

			if out, errs, code := c.run("copy", "--from", src, "--to", dst, "--master-key", keyFile); code != 0 {
				t.Fatalf("copy again: exit %d:\n%s%s", code, out, errs)
			}
			env := map[string]string{envMasterKey: keyFile}
			if out, errs, code := newCLI(t, env).run("verify", "--integrity", "--anchor", anchor, "--store", dst); code != 0 {
				t.Fatalf("verify --integrity --anchor on the target: exit %d: %s%s", code, out, errs)
			}

			base := startInProcess(t, map[string]string{"CHRONICLE_STORE": dst, envMasterKey: keyFile}, "--signing-key", sigFile)
			var got []audit.BundleSeal
			deadline := time.Now().Add(30 * time.Second)
			for len(got) <= len(want) {
				if time.Now().After(deadline) {
					t.Fatalf("the target's sealer added no seal after the %d copied within 30s (it lists %d)", len(want), len(got))
				}
				time.Sleep(20 * time.Millisecond)
				res, err := http.Get(base + "/audit/seals?limit=1000")
				if err != nil {
					t.Fatal(err)
				}
				var list struct{ Seals []audit.BundleSeal }
				err = json.NewDecoder(res.Body).Decode(&list)
				res.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				got = list.Seals
			}
			for i, w := range want {
				if got[i] != audit.BundleSealOf(w) {
					t.Fatalf("seal %d on the target:\n%+v\nsource:\n%+v", w.Seq, got[i], audit.BundleSealOf(w))
				}
			}
			next, last := got[len(want)], got[len(want)-1]
			if next.Seq != last.Seq+1 || next.PrevSealHash != last.SealHash || next.Count != tail || next.Signature == "" {
				t.Fatalf("the target's first seal %+v does not follow the copied seal %d (%s) over the %d unsealed events",
					next, last.Seq, last.SealHash, tail)
			}

			bundle, errs, code := newCLI(t, env).run("audit", "export", "--store", dst)
			if code != 0 {
				t.Fatalf("audit export on the target: exit %d: %s", code, errs)
			}
			path := filepath.Join(t.TempDir(), "bundle.json")
			if err := os.WriteFile(path, []byte(bundle), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, errs, code := c.run("audit", "check", path, "--public-key", pub); code != 0 {
				t.Fatalf("audit check of the target's bundle with the source's key: exit %d: %s%s", code, out, errs)
			}
			if out, errs, code := newCLI(t, env).run("verify", "--integrity", "--anchor", next.SealHash, "--store", dst); code != 0 {
				t.Fatalf("verify --integrity after the target's own seal: exit %d: %s%s", code, out, errs)
			}
		})
	}
}
