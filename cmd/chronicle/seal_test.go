package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/seal"
)

// TestAuditExport: an export, of every order or of some, passes audit
// check against the sealing key; an export with any one field edited
// fails it.
func TestAuditExport(t *testing.T) {
	for _, be := range []struct {
		name string
		url  func(t *testing.T) string
	}{{"sqlite", tempStore}, {"postgres", pgStoreURL}} {
		t.Run(be.name, func(t *testing.T) {
			l := newSealedLog(t, be.url(t))
			c := newCLI(t, keyEnv(t))
			pub := audit.EncodePublicKey(l.key.Public().(ed25519.PublicKey))
			dir := t.TempDir()
			check := func(name string, bundle []byte) (string, int) {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, bundle, 0o600); err != nil {
					t.Fatal(err)
				}
				out, errs, code := c.run("audit", "check", path, "--public-key", pub)
				return out + errs, code
			}

			all, errs, code := c.run("audit", "export", "--store", l.url)
			if code != 0 {
				t.Fatalf("audit export: exit %d: %s", code, errs)
			}
			if out, code := check("all.json", []byte(all)); code != 0 {
				t.Fatalf("audit check of the whole export: exit %d: %s", code, out)
			}
			some, errs, code := c.run("audit", "export", "o1", "o3", "--store", l.url)
			if code != 0 {
				t.Fatalf("audit export o1 o3: exit %d: %s", code, errs)
			}
			b, err := audit.DecodeBundle([]byte(some))
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Events) != 8 || len(b.Proofs) != 8 || len(b.Seals) != 4 || len(b.PublicKeys) != 1 {
				t.Fatalf("export of o1 and o3: %d events, %d proofs, %d seals, %d keys; want 8, 8, 4, 1",
					len(b.Events), len(b.Proofs), len(b.Seals), len(b.PublicKeys))
			}
			for _, e := range b.Events {
				if e.StreamID != "order-o1" && e.StreamID != "order-o3" {
					t.Fatalf("export of o1 and o3 holds %s", e.StreamID)
				}
			}
			if out, code := check("some.json", []byte(some)); code != 0 {
				t.Fatalf("audit check of the export of o1 and o3: exit %d: %s", code, out)
			}

			// An order of the unsealed tail only, and the whole log with it.
			appendRaw(t, l.url, "o9", ev("Tested", 1, `{"order":"o9"}`))
			for _, args := range [][]string{{"o9"}, nil} {
				bundle, errs, code := c.run(append([]string{"audit", "export", "--store", l.url}, args...)...)
				if code != 0 {
					t.Fatalf("audit export %v: exit %d: %s", args, code, errs)
				}
				if out, code := check("tail.json", []byte(bundle)); code != 0 {
					t.Fatalf("audit check of the export of %v with an unsealed tail: exit %d: %s", args, code, out)
				}
			}

			// Every field of an event (one that ends a seal: the
			// checkpoint of the others is not sealed), of a seal, of a
			// proof and of a key.
			var doc map[string]any
			if err := json.Unmarshal([]byte(some), &doc); err != nil {
				t.Fatal(err)
			}
			if out, code := check("again.json", mustMarshal(t, doc)); code != 0 {
				t.Fatalf("the export, decoded and encoded again: exit %d: %s", code, out)
			}
			lastOfSeal := -1
			for i, e := range b.Events {
				if e.Checkpoint == b.Seals[1].LastCheckpoint {
					lastOfSeal = i
				}
			}
			if lastOfSeal < 0 {
				t.Fatal("no exported event ends seal 2")
			}
			parts := []struct {
				list  string
				index int
			}{{"events", lastOfSeal}, {"seals", 1}, {"proofs", 3}, {"public_keys", 0}}
			edits := 0
			for _, p := range parts {
				obj := doc[p.list].([]any)[p.index].(map[string]any)
				for field, v := range obj {
					obj[field] = mutate(v)
					out, code := check("edited.json", mustMarshal(t, doc))
					obj[field] = v
					if code != 1 {
						t.Errorf("%s[%d].%s edited (%v -> %v): audit check exit %d, want 1: %s", p.list, p.index, field, v, mutate(v), code, out)
					}
					edits++
				}
			}
			if want := 12 + 9 + 4 + 2; edits != want {
				t.Fatalf("%d fields edited, want %d", edits, want)
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate returns v changed a little: a number plus one, a string with its
// last character changed, an object with a key more, an array with its
// first element changed.
func mutate(v any) any {
	switch v := v.(type) {
	case float64:
		return v + 1
	case string:
		if v == "" {
			return "x"
		}
		last := v[len(v)-1]
		alt := byte('A')
		switch {
		case last == '0':
			alt = '1'
		case last >= '1' && last <= '9':
			alt = '0'
		case last == 'a':
			alt = 'b'
		case last >= 'b' && last <= 'f':
			alt = 'a'
		case last == 'A':
			alt = 'B'
		}
		return v[:len(v)-1] + string(alt)
	case map[string]any:
		m := map[string]any{"tampered": true}
		for k, x := range v {
			m[k] = x
		}
		return m
	case nil:
		return map[string]any{"tampered": true}
	case []any:
		if len(v) == 0 {
			return []any{strings.Repeat("0", 64)}
		}
		return append([]any{mutate(v[0])}, v[1:]...)
	}
	panic(fmt.Sprintf("mutate %T", v))
}

// TestServeSeals: serve with --signing-key seals what it is sent within
// about a second, and, while it runs, verify --integrity (anchored on its
// latest seal) and an export checked offline pass on its SQLite store.
func TestServeSeals(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "seal.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	store := tempStore(t)
	base := startInProcess(t, map[string]string{"CHRONICLE_STORE": store}, "--signing-key", keyFile)
	for range 3 {
		createOrderOverHTTP(t, base)
	}
	var latest audit.BundleSeal
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(base + "/audit/seals/latest")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == http.StatusOK {
			err = json.NewDecoder(res.Body).Decode(&latest)
		}
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		if latest.Seq > 0 {
			res, err := http.Get(base + "/audit/seals?limit=1000")
			if err != nil {
				t.Fatal(err)
			}
			var list struct{ Seals []audit.BundleSeal }
			json.NewDecoder(res.Body).Decode(&list)
			res.Body.Close()
			for _, s := range list.Seals {
				total += s.Count
			}
		}
		if total == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3 orders created, seals cover %d events after 30s", total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if latest.KeyID != audit.KeyID(key.Public().(ed25519.PublicKey)) || latest.Signature == "" {
		t.Fatalf("latest seal %+v is not signed by the signing key", latest)
	}
	c := newCLI(t, nil) // SQLite: the master.key serve made beside the store
	if out, errs, code := c.run("verify", "--integrity", "--anchor", latest.SealHash, "--store", store); code != 0 {
		t.Fatalf("verify --integrity on a live store: exit %d: %s%s", code, out, errs)
	}
	bundle, errs, code := c.run("audit", "export", "--store", store)
	if code != 0 {
		t.Fatalf("audit export on a live store: exit %d: %s", code, errs)
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(path, []byte(bundle), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := c.run("audit", "check", path, "--public-key", audit.EncodePublicKey(key.Public().(ed25519.PublicKey))); code != 0 {
		t.Fatalf("audit check: exit %d: %s%s", code, out, errs)
	}
}

// TestServeRefusesASignedStoreWithoutItsKey: serve without --signing-key on
// a store whose seals are signed would make no seal (an unsigned one after
// signed ones fails verify --integrity) and say so only in its log: it
// refuses to start instead, naming the latest seal's key.
func TestServeRefusesASignedStoreWithoutItsKey(t *testing.T) {
	store := tempStore(t)
	appendRaw(t, store, "o-signed", ev("OrderCreated", 1, `{"customer_id":"c","total":100}`))
	key, _ := signingKeyFile(t)
	s, err := storeurl.OpenURL(context.Background(), store, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sealed, ok, err := seal.New(s, seal.Options{Key: key}).SealOnce(context.Background())
	s.Close()
	if err != nil || !ok {
		t.Fatalf("SealOnce: %v, %v", ok, err)
	}
	// Bounded: a serve that starts runs until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err = m.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--store", store})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "--signing-key") || !strings.Contains(err.Error(), sealed.KeyID) || exitCode(err) != 1 {
		t.Fatalf("serve without the signing key: %v (exit %d); want a refusal naming key %s", err, exitCode(err), sealed.KeyID)
	}
}
