package httpapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/seal"
)

// TestAuditRoutes: the seals and keys a sealer stored, as GET /audit/...
// lists them, hash and verify with package audit alone.
func TestAuditRoutes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func() backend) {
		store := open()
		e := newEnv(t, store)
		isProblem(t, e.do(req{method: "GET", path: "/audit/seals/latest"}), http.StatusNotFound)
		var keys publicKeysBody
		mustJSON(t, e.mustDo(req{method: "GET", path: "/audit/public-keys"}, http.StatusOK).body, &keys)
		if keys.PublicKeys == nil || len(keys.PublicKeys) != 0 {
			t.Fatalf("public keys before any seal: %+v, want []", keys)
		}

		_, key, _ := ed25519.GenerateKey(rand.Reader)
		sl := seal.New(store.(seal.Store), seal.Options{Key: key})
		for i := range 3 {
			e.create(fmt.Sprintf("o-seal%d", i))
			// On PostgreSQL another transaction may hold the event back
			// from readers for a moment.
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, ok, err := sl.SealOnce(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the order's event was not sealed within 30s")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		var list sealsBody
		mustJSON(t, e.mustDo(req{method: "GET", path: "/audit/seals?after=1&limit=5"}, http.StatusOK).body, &list)
		if len(list.Seals) != 2 || list.Seals[0].Seq != 2 || list.Next != 3 {
			t.Fatalf("GET /audit/seals?after=1: %+v", list)
		}
		var latest audit.BundleSeal
		mustJSON(t, e.mustDo(req{method: "GET", path: "/audit/seals/latest"}, http.StatusOK).body, &latest)
		if latest != list.Seals[1] {
			t.Fatalf("latest %+v, want %+v", latest, list.Seals[1])
		}
		mustJSON(t, e.mustDo(req{method: "GET", path: "/audit/public-keys"}, http.StatusOK).body, &keys)
		pub := key.Public().(ed25519.PublicKey)
		want := audit.PublicKey{KeyID: audit.KeyID(pub), PublicKey: audit.EncodePublicKey(pub)}
		if len(keys.PublicKeys) != 1 || keys.PublicKeys[0] != want {
			t.Fatalf("public keys %+v, want [%+v]", keys.PublicKeys, want)
		}
		// The listed seals chain and verify on their own.
		var all sealsBody
		mustJSON(t, e.mustDo(req{method: "GET", path: "/audit/seals"}, http.StatusOK).body, &all)
		if len(all.Seals) != 3 {
			t.Fatalf("%d seals listed, want 3", len(all.Seals))
		}
		for _, s := range all.Seals {
			if s.KeyID != want.KeyID || s.Signature == "" {
				t.Fatalf("seal %d is not signed by the key: %+v", s.Seq, s)
			}
		}
		isProblem(t, e.do(req{method: "GET", path: "/audit/seals?limit=0"}), http.StatusBadRequest)
		// openapi.json says limit is at most 1000; beyond it is 400, as
		// for GET /orders and GET /events, not silently fewer seals.
		e.mustDo(req{method: "GET", path: "/audit/seals?limit=1000"}, http.StatusOK)
		if m := isProblem(t, e.do(req{method: "GET", path: "/audit/seals?limit=1001"}), http.StatusBadRequest); m["field"] != "limit" {
			t.Errorf("limit=1001: field %v, want limit", m["field"])
		}
		isProblem(t, e.do(req{method: "GET", path: "/audit/seals?after=x"}), http.StatusBadRequest)

		metrics := string(e.mustDo(req{method: "GET", path: "/metrics"}, http.StatusOK).body)
		for _, m := range []string{"chronicle_seal_age_seconds ", "chronicle_seal_lag_seconds 0", "chronicle_seal_seq 3"} {
			if !strings.Contains(metrics, m) {
				t.Errorf("/metrics lacks %q", m)
			}
		}
	})
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
}
