package audit_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/audit"
)

func event() audit.Event {
	return audit.Event{
		StreamID: "order-o1", Version: 1, EventID: "0190d1a2-0000-7000-8000-000000000001",
		Type: "OrderCreated", SchemaVersion: 1,
		RecordedAt: time.Date(2026, 12, 3, 11, 0, 0, 160000000, time.UTC),
		Data:       json.RawMessage(`{"total": 101, "note": "tab\there"}`),
	}
}

func mustHash(t *testing.T, e audit.Event) audit.Hash {
	t.Helper()
	h, err := audit.HashEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// What the hash covers is the canonical form: equal JSON, equal hash.
func TestHashEventCanonicalForm(t *testing.T) {
	base := mustHash(t, event())
	same := map[string]func(e *audit.Event){
		"metadata null":      func(e *audit.Event) { e.Metadata = json.RawMessage("null") },
		"metadata {}":        func(e *audit.Event) { e.Metadata = json.RawMessage(" { } ") },
		"data reordered":     func(e *audit.Event) { e.Data = json.RawMessage(`{ "note":"tab\u0009here","total":101.0 }`) },
		"recorded_at in CET": func(e *audit.Event) { e.RecordedAt = e.RecordedAt.In(time.FixedZone("CET", 3600)) },
	}
	for name, edit := range same {
		e := event()
		edit(&e)
		if got := mustHash(t, e); got != base {
			t.Errorf("%s: hash %s, want %s", name, got, base)
		}
	}
	differ := map[string]func(e *audit.Event){
		"prev_hash":      func(e *audit.Event) { e.PrevHash[31] = 1 },
		"stream_id":      func(e *audit.Event) { e.StreamID += "x" },
		"version":        func(e *audit.Event) { e.Version++ },
		"event_id":       func(e *audit.Event) { e.EventID += "x" },
		"type":           func(e *audit.Event) { e.Type += "x" },
		"schema_version": func(e *audit.Event) { e.SchemaVersion++ },
		"recorded_at":    func(e *audit.Event) { e.RecordedAt = e.RecordedAt.Add(time.Microsecond) },
		"data":           func(e *audit.Event) { e.Data = json.RawMessage(`{"total":102,"note":"tab\there"}`) },
		"metadata":       func(e *audit.Event) { e.Metadata = json.RawMessage(`{"actor":"alice"}`) },
		// The fields are lines: moving text across a line break changes the hash.
		"line shifted": func(e *audit.Event) { e.StreamID, e.EventID = e.StreamID+"\n"+e.EventID, "" },
	}
	for name, edit := range differ {
		e := event()
		edit(&e)
		if got := mustHash(t, e); got == base {
			t.Errorf("%s changed, hash unchanged", name)
		}
	}
	e := event()
	e.Data = json.RawMessage(`{"a":1,"a":2}`)
	if _, err := audit.HashEvent(e); !errors.Is(err, audit.ErrDuplicateKey) {
		t.Errorf("HashEvent(duplicate key) = %v, want ErrDuplicateKey", err)
	}
}

func TestCheckStream(t *testing.T) {
	var events []audit.Event
	var hashes []audit.Hash
	prev := audit.ZeroHash
	for v := int64(1); v <= 4; v++ {
		e := event()
		e.Version, e.PrevHash = v, prev
		prev = mustHash(t, e)
		events, hashes = append(events, e), append(hashes, prev)
	}
	if err := audit.CheckStream(events, hashes); err != nil {
		t.Fatalf("CheckStream(good chain) = %v", err)
	}
	for name, c := range map[string]struct {
		edit    func(es []audit.Event, hs []audit.Hash) ([]audit.Event, []audit.Hash)
		version int64
	}{
		"data changed": {func(es []audit.Event, hs []audit.Hash) ([]audit.Event, []audit.Hash) {
			es[2].Data = json.RawMessage(`{}`)
			return es, hs
		}, 3},
		"hash changed": {func(es []audit.Event, hs []audit.Hash) ([]audit.Event, []audit.Hash) {
			hs[1][0] ^= 1
			return es, hs
		}, 2},
		"event removed": {func(es []audit.Event, hs []audit.Hash) ([]audit.Event, []audit.Hash) {
			return append(es[:1:1], es[2:]...), append(hs[:1:1], hs[2:]...)
		}, 3},
		"forged version rehashed": {func(es []audit.Event, hs []audit.Hash) ([]audit.Event, []audit.Hash) {
			es[1].Type = "Forged"
			hs[1] = mustHash(t, es[1])
			return es, hs
		}, 3},
		"version 1 not first": {func(es []audit.Event, hs []audit.Hash) ([]audit.Event, []audit.Hash) {
			es[0].PrevHash[0] = 1
			hs[0] = mustHash(t, es[0])
			return es, hs
		}, 1},
	} {
		es, hs := c.edit(append([]audit.Event(nil), events...), append([]audit.Hash(nil), hashes...))
		err := audit.CheckStream(es, hs)
		var ie *audit.IntegrityError
		if !errors.As(err, &ie) || ie.Version != c.version {
			t.Errorf("%s: CheckStream = %v, want an *IntegrityError naming version %d", name, err, c.version)
		}
	}
}

func TestSealSignature(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := audit.Seal{Seq: 1, LastCheckpoint: "cp5", Count: 5, Root: audit.MerkleRoot(nil),
		SealedAt: time.Date(2026, 12, 3, 11, 0, 1, 123000000, time.UTC)}
	h := audit.SealHash(s)
	sig := audit.Sign(key, h)
	if err := audit.VerifySignature(pub, h, sig); err != nil {
		t.Fatalf("VerifySignature(own signature) = %v", err)
	}
	s.Count++
	if err := audit.VerifySignature(pub, audit.SealHash(s), sig); !errors.Is(err, audit.ErrKey) {
		t.Fatalf("VerifySignature(other seal) = %v, want ErrKey", err)
	}
	if id := audit.KeyID(pub); len(id) != 16 {
		t.Errorf("KeyID = %q, want 16 hex digits", id)
	}

	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil || !got.Equal(key) {
		t.Fatalf("ParsePrivateKeyPEM = %v, want the key", err)
	}
	der, err = x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	gotPub, err := audit.ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("ParsePublicKeyPEM = %v, want the key", err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err = x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"ecdsa key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"not pem":   []byte("not a key"),
		"bad der":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := audit.ParsePrivateKeyPEM(b); !errors.Is(err, audit.ErrKey) {
			t.Errorf("ParsePrivateKeyPEM(%s) = %v, want ErrKey", name, err)
		}
	}
}
