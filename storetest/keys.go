package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/chronicle-es/chronicle"
)

func keyStore(t *testing.T, b Backend) chronicle.KeyStore {
	t.Helper()
	ks, ok := untracked(b).(chronicle.KeyStore)
	if !ok {
		t.Fatalf("%T does not implement chronicle.KeyStore", untracked(b))
	}
	return ks
}

// testDataKeys: one live key per subject, even when many callers create it
// at once; erasure keeps a tombstone, answers the same time again, and a
// later key for the same subject is a new one.
func testDataKeys(t *testing.T, h Harness) {
	ks := keyStore(t, h.Open(t, Options{}))
	ctx := context.Background()

	if _, err := ks.SubjectKey(ctx, "cust_1"); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("SubjectKey(none) error = %v, want ErrNotFound", err)
	}
	if _, err := ks.EraseSubject(ctx, "cust_1"); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("EraseSubject(unknown) error = %v, want ErrNotFound", err)
	}

	// Concurrent creators agree on one key.
	const n = 8
	got := make([]chronicle.DataKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = ks.CreateDataKey(ctx, chronicle.DataKey{
				ID: fmt.Sprintf("k1-%d", i), Subject: "cust_1", Wrapped: []byte(fmt.Sprintf("wrapped-%d", i))})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreateDataKey %d: %v", i, errs[i])
		}
		if got[i].ID != got[0].ID || !bytes.Equal(got[i].Wrapped, got[0].Wrapped) {
			t.Fatalf("CreateDataKey %d = %s, creator 0 got %s: two live keys", i, got[i].ID, got[0].ID)
		}
	}
	live := got[0]
	if want := "wrapped-" + live.ID[len("k1-"):]; string(live.Wrapped) != want || live.Subject != "cust_1" || live.CreatedAt.IsZero() {
		t.Fatalf("live key = %+v, want wrapped %q, subject cust_1, a creation time", live, want)
	}
	if k, err := ks.SubjectKey(ctx, "cust_1"); err != nil || k.ID != live.ID {
		t.Fatalf("SubjectKey = %s, %v; want %s", k.ID, err, live.ID)
	}
	if _, err := ks.CreateDataKey(ctx, chronicle.DataKey{ID: "k2", Subject: "cust_2", Wrapped: []byte("w2")}); err != nil {
		t.Fatal(err)
	}
	keys, err := ks.DataKeys(ctx, []string{live.ID, "k2", "nope"})
	if err != nil || len(keys) != 2 {
		t.Fatalf("DataKeys = %+v, %v; want 2 keys", keys, err)
	}

	at, err := ks.EraseSubject(ctx, "cust_1")
	if err != nil || at.IsZero() {
		t.Fatalf("EraseSubject = %v, %v", at, err)
	}
	if _, err := ks.SubjectKey(ctx, "cust_1"); !errors.Is(err, chronicle.ErrNotFound) {
		t.Fatalf("SubjectKey(erased) error = %v, want ErrNotFound", err)
	}
	keys, err = ks.DataKeys(ctx, []string{live.ID, "k2"})
	if err != nil || len(keys) != 1 || keys[0].ID != "k2" {
		t.Fatalf("DataKeys after erasure = %+v, %v; want only k2", keys, err)
	}
	again, err := ks.EraseSubject(ctx, "cust_1")
	if err != nil || !again.Equal(at) {
		t.Fatalf("EraseSubject again = %v, %v; want %v", again, err, at)
	}

	// Ordering again later: a new key, with a new id.
	k3, err := ks.CreateDataKey(ctx, chronicle.DataKey{ID: "k3", Subject: "cust_1", Wrapped: []byte("w3")})
	if err != nil || k3.ID != "k3" {
		t.Fatalf("CreateDataKey after erasure = %s, %v; want k3", k3.ID, err)
	}
	if _, err := ks.CreateDataKey(ctx, chronicle.DataKey{ID: live.ID, Subject: "cust_9", Wrapped: []byte("w")}); err == nil {
		if k, _ := ks.SubjectKey(ctx, "cust_9"); k.ID == live.ID {
			t.Fatalf("an erased key id was used again")
		}
	}

	// The key check value is stored once.
	c1, err := ks.KeyCheck(ctx, []byte("check-1"))
	if err != nil || string(c1) != "check-1" {
		t.Fatalf("KeyCheck = %q, %v", c1, err)
	}
	c2, err := ks.KeyCheck(ctx, []byte("check-2"))
	if err != nil || string(c2) != "check-1" {
		t.Fatalf("KeyCheck again = %q, %v; want the first value", c2, err)
	}
}
