package personal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"

	"bytes"
	"encoding/json"
	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"io"
	"testing"
	"unicode/utf8"
)

// decodedMembers returns the top-level members of a valid JSON object as
// encoding/json reads them: names decoded, values compacted.
func decodedMembers(t *testing.T, data []byte) (names []string, values []string) {
	d := json.NewDecoder(bytes.NewReader(data))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", data)
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			t.Fatal(err)
		}
		names, values = append(names, tok.(string)), append(values, c.String())
	}
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Token(); err != io.EOF {
		t.Fatalf("trailing data after the object: %v", err)
	}
	return names, values
}

func checkMembers(t *testing.T, data []byte) {
	ms, ok := members(data, nil)
	var v any
	// The store refuses invalid UTF-8, which encoding/json would replace.
	isObject := utf8.Valid(data) && json.Unmarshal(data, &v) == nil
	if isObject {
		_, isObject = v.(map[string]any)
	}
	if !isObject {
		return // boundaries only: the store refuses what is not valid
	}
	if !ok {
		t.Fatalf("members(%s) = not an object", data)
	}
	names, values := decodedMembers(t, data)
	if len(ms) != len(names) {
		t.Fatalf("members(%s): %d members, want %d", data, len(ms), len(names))
	}
	for i, m := range ms {
		if !m.named(data, names[i]) {
			t.Errorf("member %d of %s: name %s, want %q", i, data, data[m.nameStart:m.nameEnd], names[i])
		}
		var c bytes.Buffer
		if err := json.Compact(&c, data[m.valueStart:m.valueEnd]); err != nil || c.String() != values[i] {
			t.Errorf("member %d of %s: value %s, want %s", i, data, data[m.valueStart:m.valueEnd], values[i])
		}
	}
}

func TestMembers(t *testing.T) {
	for _, data := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : "x,}]" , "b":[1,{"c":"]"}],"d":{"e":[]},"f":true,"g":null,"h":-1.5e3}`,
		`{"w\u0068o":"\"quoted\\"}`, "{\n\t\"a\"\r:\n[ ]\n}\n",
	} {
		checkMembers(t, []byte(data))
	}
	for _, data := range []string{``, `[]`, `"a"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":"x}`, `{"a":[1}`, `{} x`} {
		if _, ok := members([]byte(data), nil); ok {
			t.Errorf("members(%s) read it as an object", data)
		}
	}
}

func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":[1,"]"]},"c":"\u0041"}`, `{"name":"Ada","line1":"12 St James's Square"}`, "{\"\xb3\":\"\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkMembers(t, data) })
}

// discard is a store whose appends go nowhere: BenchmarkSeal measures the
// encryption's own work, without the store's.
type discard struct{ chronicle.Store }

func (discard) Append(context.Context, string, chronicle.ExpectedVersion, []chronicle.Event) (chronicle.AppendResult, error) {
	return chronicle.AppendResult{}, nil
}

// BenchmarkSeal: the Go work encryption adds to an append of an order
// created with its shipping address (two events, four personal fields).
func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	be := testbackends.SQLite(b, testbackends.Options{})
	master, _ := ParseMasterKey(NewMasterKey())
	k, err := NewKeyring(ctx, be.(chronicle.KeyStore), master)
	if err != nil {
		b.Fatal(err)
	}
	s := NewStore(discard{be}, k, NewPolicy(
		Rule{Type: "OrderCreated", Subject: "customer_id"},
		Rule{Type: "ShippingAddressChanged", Fields: []string{"name", "line1", "city", "postal_code"}},
	))
	events := []chronicle.Event{
		{ID: "0190c6d2-5f1a-7b4e-9c3d-2a1b0c9d8e7f", Type: "OrderCreated", Data: []byte(`{"customer_id":"cust_1","currency":"USD","items":[{"sku":"SKU-1001","quantity":2,"unit_price":2500}],"total":5000}`)},
		{ID: "0190c6d2-5f1a-7b4e-9c3d-2a1b0c9d8e80", Type: "ShippingAddressChanged", Data: []byte(`{"name":"Ada Lovelace","line1":"12 St James's Square","city":"London","postal_code":"SW1Y 4JH","country":"GB"}`)},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, "order-1", chronicle.NoStream, events); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSyntheticNonce: a token's nonce is the HMAC of its length-prefixed
// key id, lower-cased event id, field and value (what makes a retried
// append encrypt alike, across releases too), and it decrypts to the value.
func TestSyntheticNonce(t *testing.T) {
	block, err := aes.NewCipher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	dk := dataKey{id: "dk1", aead: aead, nonceKey: bytes.Repeat([]byte{9}, 32)}
	sl := newSealer(dk, "0190C6D2-5F1A-7B4E-9C3D-2A1B0C9D8E7F")
	for _, f := range []struct{ name, value string }{{"name", `"Ada"`}, {"line1", `{"n":12}`}, {"name", `"Ada"`}} {
		tok, err := sl.appendToken(nil, f.name, []byte(f.value))
		if err != nil {
			t.Fatal(err)
		}
		payload, ok := strings.CutPrefix(string(tok), Prefix+"dk1:")
		if !ok {
			t.Fatalf("token %s", tok)
		}
		m := hmac.New(sha256.New, dk.nonceKey)
		for _, p := range []string{"dk1", "0190c6d2-5f1a-7b4e-9c3d-2a1b0c9d8e7f", f.name, f.value} {
			m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(p))))
			m.Write([]byte(p))
		}
		raw, _ := base64.RawURLEncoding.DecodeString(payload)
		if want := m.Sum(nil)[:12]; !bytes.Equal(raw[:12], want) {
			t.Errorf("%s: nonce %x, want %x", f.name, raw[:12], want)
		}
		if v, err := open(aead, "dk1", payload); err != nil || string(v) != f.value {
			t.Errorf("%s: opens to %s, %v", f.name, v, err)
		}
	}
}
