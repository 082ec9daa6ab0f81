package personal_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/proccpu"
	"github.com/chronicle-es/chronicle/internal/testbackends"
	"github.com/chronicle-es/chronicle/order"
	"github.com/chronicle-es/chronicle/personal"
)

func newKeyring(t *testing.T, b testbackends.Backend, master []byte) *personal.Keyring {
	t.Helper()
	k, err := personal.NewKeyring(context.Background(), b.(chronicle.KeyStore), master)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func masterKey(t *testing.T) []byte {
	t.Helper()
	k, err := personal.ParseMasterKey(personal.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func appendOrder(t *testing.T, s chronicle.Store, id, customer, name, signedBy string) {
	t.Helper()
	ctx := context.Background()
	evs := []chronicle.Event{
		{Type: order.TypeOrderCreated, SchemaVersion: 3, Data: []byte(`{"customer_id":"` + customer + `","currency":"USD","items":[],"total":100}`)},
		{Type: order.TypeShippingAddressChanged, Data: []byte(`{"name":"` + name + `","line1":"1 Secret Lane","city":"Hushville","postal_code":"99999","country":"US"}`)},
	}
	if _, err := s.Append(ctx, "order-"+id, chronicle.NoStream, evs); err != nil {
		t.Fatalf("append %s: %v", id, err)
	}
	// A later append takes the subject from the stream.
	if _, err := s.Append(ctx, "order-"+id, chronicle.Any, []chronicle.Event{
		{Type: order.TypeOrderShipped, Data: []byte(`{"carrier":"Parcelwing","tracking":"T1"}`)},
		{Type: order.TypeOrderDelivered, Data: []byte(`{"signed_by":"` + signedBy + `"}`)},
	}); err != nil {
		t.Fatalf("append %s: %v", id, err)
	}
}

func readJSON(t *testing.T, s chronicle.Store, stream string) []byte {
	t.Helper()
	evs, err := s.ReadStream(context.Background(), stream, chronicle.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, e := range evs {
		b.Write(e.Data)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// TestEncryptRevealErase: personal fields reach the store as tokens only,
// reveal as plaintext, and as "[erased]" after erasure, in this keyring and
// in another one (another process) that had the key cached; nothing else
// changes, and the customer's next order gets a new key.
func TestEncryptRevealErase(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		master := masterKey(t)
		k1, k2 := newKeyring(t, b, master), newKeyring(t, b, master)
		s := personal.NewStore(b, k1, order.PersonalData())
		appendOrder(t, s, "o1", "cust_1", "Zebulon Quartz", "Zebulon Q.")
		appendOrder(t, s, "o2", "cust_2", "Ottoline Brie", "O. Brie")

		stored := readJSON(t, b, "order-o1")
		for _, secret := range []string{"Zebulon", "Secret Lane", "Hushville", "99999"} {
			if bytes.Contains(stored, []byte(secret)) {
				t.Fatalf("stored events hold %q:\n%s", secret, stored)
			}
		}
		for _, kept := range []string{"Parcelwing", `"country":"US"`, "cust_1", personal.Prefix} {
			if !bytes.Contains(stored, []byte(kept)) {
				t.Fatalf("stored events lack %q:\n%s", kept, stored)
			}
		}

		for _, k := range []*personal.Keyring{k1, k2} {
			got, err := k.Reveal(ctx, stored, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range bytes.Split(bytes.TrimSpace(got), []byte("\n")) {
				if !json.Valid(line) {
					t.Fatalf("revealed invalid JSON: %s", line)
				}
			}
			if !bytes.Contains(got, []byte(`"name":"Zebulon Quartz"`)) ||
				!bytes.Contains(got, []byte(`"signed_by":"Zebulon Q."`)) || !bytes.Contains(got, []byte(`"postal_code":"99999"`)) {
				t.Fatalf("revealed:\n%s", got)
			}
		}
		text, err := k1.Reveal(ctx, []byte("signed_by: "+tokenOf(t, stored, "signed_by")), false)
		if err != nil || string(text) != "signed_by: Zebulon Q." {
			t.Fatalf("Reveal(text) = %q, %v", text, err)
		}

		at, err := k1.Erase(ctx, "cust_1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k1.Erase(ctx, "cust_nobody"); !errors.Is(err, chronicle.ErrNotFound) {
			t.Fatalf("erase unknown: %v, want ErrNotFound", err)
		}
		if after := readJSON(t, b, "order-o1"); !bytes.Equal(after, stored) {
			t.Fatalf("erasure changed stored events")
		}
		for _, k := range []*personal.Keyring{k1, k2} {
			got, err := k.Reveal(ctx, stored, true)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(got, []byte("Zebulon")) || bytes.Contains(got, []byte("Hushville")) {
				t.Fatalf("erased data revealed:\n%s", got)
			}
			if n := bytes.Count(got, []byte(`"[erased]"`)); n != 5 {
				t.Fatalf("%d erased fields, want 5:\n%s", n, got)
			}
			if !bytes.Contains(got, []byte("Parcelwing")) || !bytes.Contains(got, []byte(`"total":100`)) {
				t.Fatalf("erasure changed other fields:\n%s", got)
			}
			other, err := k.Reveal(ctx, readJSON(t, b, "order-o2"), true)
			if err != nil || !bytes.Contains(other, []byte("Ottoline Brie")) {
				t.Fatalf("other customer's data: %s, %v", other, err)
			}
		}

		// k2 (another process) had the key cached, and learns of the
		// erasure only from the store.
		if at2, err := k2.Erase(ctx, "cust_1"); err != nil || !at2.Equal(at) {
			t.Fatalf("erase again = %v, %v; want %v", at2, err, at)
		}

		// Ordering again: a new key; the old order stays erased.
		appendOrder(t, s, "o3", "cust_1", "Zebulon Again", "Z.")
		got, err := k2.Reveal(ctx, append(readJSON(t, b, "order-o3"), stored...), true)
		if err != nil || !bytes.Contains(got, []byte("Zebulon Again")) || bytes.Contains(got, []byte("Zebulon Quartz")) {
			t.Fatalf("after ordering again: %s, %v", got, err)
		}
		if tokenKey(tokenOf(t, readJSON(t, b, "order-o3"), "name")) == tokenKey(tokenOf(t, stored, "name")) {
			t.Fatalf("the new order uses the erased key")
		}
	})
}

func tokenOf(t *testing.T, data []byte, field string) string {
	t.Helper()
	i := bytes.Index(data, []byte(`"`+field+`":"`))
	if i < 0 {
		t.Fatalf("no %s in %s", field, data)
	}
	rest := data[i+len(field)+4:]
	return string(rest[:bytes.IndexByte(rest, '"')])
}

func tokenKey(tok string) string { return strings.Split(tok, ":")[2] }

// TestWrongMasterKey: a store is refused to a master key other than the one
// its data keys were wrapped with.
func TestWrongMasterKey(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		newKeyring(t, b, masterKey(t))
		_, err := personal.NewKeyring(context.Background(), b.(chronicle.KeyStore), masterKey(t))
		if !errors.Is(err, personal.ErrWrongMasterKey) {
			t.Fatalf("NewKeyring(other key) error = %v, want ErrWrongMasterKey", err)
		}
	})
}

// TestSealAnyValue: a personal field of any JSON type, under a key spelled
// with escapes, is stored as a token and revealed as the same value, also
// when the token sits inside a longer string.
func TestSealAnyValue(t *testing.T) {
	ctx := context.Background()
	b := testbackends.SQLite(t, testbackends.Options{})
	k := newKeyring(t, b, masterKey(t))
	s := personal.NewStore(b, k, personal.NewPolicy(personal.Rule{Type: "Signed", Fields: []string{"who", "where"}, Subject: "person"}))
	data := `{"person":"p1","w\u0068o":{"first":"Ada","last":"Lovelace"},"where":["Marylebone",1815],"note":"kept"}`
	if _, err := s.Append(ctx, "doc-1", chronicle.NoStream, []chronicle.Event{{Type: "Signed", Data: []byte(data)}}); err != nil {
		t.Fatal(err)
	}
	stored := readJSON(t, b, "doc-1")
	if bytes.Contains(stored, []byte("Lovelace")) || bytes.Contains(stored, []byte("Marylebone")) || !bytes.Contains(stored, []byte("kept")) {
		t.Fatalf("stored: %s", stored)
	}
	got, err := k.Reveal(ctx, stored, true)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("revealed %s: %v", got, err)
	}
	if want := `map[note:kept person:p1 where:[Marylebone 1815] who:map[first:Ada last:Lovelace]]`; fmt.Sprint(v) != want {
		t.Fatalf("revealed %v, want %s", v, want)
	}
	// The data is stored as written, its escaped name included.
	after, ok := strings.CutPrefix(string(stored), `{"person":"p1","w\u0068o":"`)
	if !ok {
		t.Fatalf("stored: %s, want the members in their order", stored)
	}
	tok := tokenOf(t, []byte(`"who":"`+after), "who")
	inner, err := k.Reveal(ctx, []byte(`{"s":"by `+tok+`!"}`), true)
	if err != nil || !json.Valid(inner) || !strings.Contains(string(inner), `Lovelace`) {
		t.Fatalf("token inside a string revealed as %s, %v", inner, err)
	}
}

// TestCreateMasterKeyOnce: processes creating the key file at once agree
// on one key.
func TestCreateMasterKeyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, err := personal.CreateMasterKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if !bytes.Equal(k, keys[0]) || len(k) != 32 {
			t.Fatalf("keys differ: %x vs %x", k, keys[0])
		}
	}
}

// TestRetryIdempotent: a retried append of personal data (same event ids,
// same content) returns the original result and writes nothing, as any
// append does; the same ids with other personal content are refused.
func TestRetryIdempotent(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		k := newKeyring(t, b, masterKey(t))
		s := personal.NewStore(b, k, order.PersonalData())
		created := chronicle.Event{ID: chronicle.NewEventID(), Type: order.TypeOrderCreated, SchemaVersion: 3,
			Data: []byte(`{"customer_id":"cust_r","currency":"USD","items":[],"total":1}`)}
		address := func(name string) []chronicle.Event {
			return []chronicle.Event{{ID: "0b5c1f5e-6f7a-4c1e-9a55-3d7a2b9e8c01", Type: order.TypeShippingAddressChanged,
				Data: []byte(`{"name":"` + name + `","line1":"1 Lane","city":"Town","postal_code":"1","country":"US"}`)}}
		}
		first, err := s.Append(ctx, "order-r", chronicle.NoStream, []chronicle.Event{created})
		if err != nil {
			t.Fatal(err)
		}
		second, err := s.Append(ctx, "order-r", chronicle.Exact(1), address("Ada Retry"))
		if err != nil {
			t.Fatal(err)
		}
		stored := readJSON(t, b, "order-r")
		for _, r := range []struct {
			exp  chronicle.ExpectedVersion
			evs  []chronicle.Event
			want chronicle.AppendResult
		}{
			{chronicle.Exact(1), address("Ada Retry"), second},
			{chronicle.Any, address("Ada Retry"), second},
			{chronicle.NoStream, []chronicle.Event{created}, first},
		} {
			got, err := s.Append(ctx, "order-r", r.exp, r.evs)
			if err != nil || got != r.want {
				t.Fatalf("retry = %+v, %v; want the original %+v", got, err, r.want)
			}
		}
		evs := address("Ada Retry")
		evs[0].ID = strings.ToUpper(evs[0].ID)
		if got, err := s.Append(ctx, "order-r", chronicle.Exact(1), evs); err != nil || got != second {
			t.Fatalf("retry with uppercase id = %+v, %v; want %+v", got, err, second)
		}
		if _, err := s.Append(ctx, "order-r", chronicle.Exact(1), address("Eve Other")); !errors.Is(err, chronicle.ErrDuplicateEvent) {
			t.Fatalf("same id, other personal content: %v, want ErrDuplicateEvent", err)
		}
		if after := readJSON(t, b, "order-r"); !bytes.Equal(after, stored) {
			t.Fatalf("retries changed the stream:\n%s\nwas:\n%s", after, stored)
		}
	})
}

// TestRandomNonceToken: a token written with a random nonce (as every token
// once was) reveals as before.
func TestRandomNonceToken(t *testing.T) {
	ctx := context.Background()
	b := testbackends.SQLite(t, testbackends.Options{})
	master := masterKey(t)
	k := newKeyring(t, b, master)
	if err := k.CreateKey(ctx, "cust_old"); err != nil {
		t.Fatal(err)
	}
	dk, err := b.(chronicle.KeyStore).SubjectKey(ctx, "cust_old")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := gcm(t, master).Open(nil, dk.Wrapped[:12], dk.Wrapped[12:], []byte("chronicle data key\x00"+dk.ID+"\x00cust_old"))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	sealed := gcm(t, raw).Seal(nonce, nonce, []byte(`"Old Form"`), []byte(personal.Prefix+dk.ID))
	tok := personal.Prefix + dk.ID + ":" + base64.RawURLEncoding.EncodeToString(sealed)
	got, err := k.Reveal(ctx, []byte(`{"name":"`+tok+`"}`), true)
	if err != nil || string(got) != `{"name":"Old Form"}` {
		t.Fatalf("Reveal = %s, %v", got, err)
	}
}

func gcm(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

// BenchmarkReveal: what revealing one response costs, its key query
// included (an order with a shipping address: four tokens of one key).
func BenchmarkReveal(b *testing.B) {
	testbackends.ForEachB(b, func(b *testing.B, be testbackends.Backend) {
		ctx := context.Background()
		master, _ := personal.ParseMasterKey(personal.NewMasterKey())
		k, err := personal.NewKeyring(ctx, be.(chronicle.KeyStore), master)
		if err != nil {
			b.Fatal(err)
		}
		s := personal.NewStore(be, k, order.PersonalData())
		if _, err := s.Append(ctx, "order-b", chronicle.NoStream, []chronicle.Event{
			{Type: order.TypeOrderCreated, SchemaVersion: 3, Data: []byte(`{"customer_id":"cust_b","currency":"USD","items":[],"total":1}`)},
			{Type: order.TypeShippingAddressChanged, Data: []byte(`{"name":"Ada","line1":"1 Lane","city":"Town","postal_code":"1","country":"US"}`)},
		}); err != nil {
			b.Fatal(err)
		}
		evs, err := be.ReadStream(ctx, "order-b", chronicle.ReadStreamOptions{})
		if err != nil {
			b.Fatal(err)
		}
		body := evs[1].Data
		b.ResetTimer()
		for b.Loop() {
			if _, err := k.Reveal(ctx, body, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRefusesTokens: no event holding the token prefix in a string, in
// its data or metadata, a key or a value, escaped or not, reaches the
// store through Store: only Store's encryption writes tokens.
func TestRefusesTokens(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		s := personal.NewStore(b, newKeyring(t, b, masterKey(t)), order.PersonalData())
		for _, e := range []chronicle.Event{
			{Type: "Note", Data: []byte(`{"text":"see chronicle:pd1:abc:def"}`)},
			{Type: "Note", Data: []byte(`{"text":["chronicle\u003apd1:abc:def"]}`)},
			{Type: "Note", Data: []byte(`{"chronicle\u003Apd1:abc:def":1}`)},
			{Type: "Note", Data: []byte(`{}`), Metadata: []byte(`{"correlation_id":"chronicle:pd1:abc:def"}`)},
		} {
			if _, err := s.Append(ctx, "note-1", chronicle.Any, []chronicle.Event{e}); !errors.Is(err, chronicle.ErrInvalid) {
				t.Errorf("append %s %s: %v, want ErrInvalid", e.Data, e.Metadata, err)
			}
		}
		if _, err := b.ReadStream(ctx, "note-1", chronicle.ReadStreamOptions{}); !errors.Is(err, chronicle.ErrStreamNotFound) {
			t.Fatalf("refused appends wrote: %v", err)
		}
		if _, err := s.Append(ctx, "note-1", chronicle.NoStream, []chronicle.Event{
			{Type: "Note", Data: []byte(`{"text":"caf\u00e9 chronicle: pd1"}`)},
		}); err != nil {
			t.Fatalf("an event without the prefix: %v", err)
		}
	})
}

// BenchmarkAppendAddress: what encryption adds to an append that carries
// personal data (an order created with its shipping address, W1's append
// plus an address), against the same events appended in the clear, and
// against clear values as long as the tokens (what the larger row alone
// costs). Three rounds alternate them; the customers' keys exist after the
// first (a new customer's first order also writes its key: see
// docs/audit.md).
func BenchmarkAppendAddress(b *testing.B) {
	testbackends.ForEachB(b, func(b *testing.B, be testbackends.Backend) {
		ctx := context.Background()
		master, _ := personal.ParseMasterKey(personal.NewMasterKey())
		k, err := personal.NewKeyring(ctx, be.(chronicle.KeyStore), master)
		if err != nil {
			b.Fatal(err)
		}
		run := 0
		for range 3 {
			for _, v := range []struct {
				name string
				s    chronicle.Store
			}{{"clear", be}, {"encrypted", personal.NewStore(be, k, order.PersonalData())}, {"clear-sized", be}} {
				b.Run(v.name, func(b *testing.B) {
					run++
					i := 0
					cpu := proccpu.Used()
					for b.Loop() {
						i++
						cust := fmt.Sprintf("cust_%d", i%100) // customers order again
						if _, err := v.s.Append(ctx, fmt.Sprintf("order-%d-%d", run, i), chronicle.NoStream, []chronicle.Event{
							{Type: order.TypeOrderCreated, SchemaVersion: 3, Data: []byte(`{"customer_id":"` + cust + `","currency":"USD","items":[{"sku":"SKU-1001","quantity":2,"unit_price":2500}],"total":5000}`)},
							{Type: order.TypeShippingAddressChanged, Data: address(v.name == "clear-sized")},
						}); err != nil {
							b.Fatal(err)
						}
					}
					// The process's CPU (SQLite's writer included) is steadier
					// than the wall clock on a shared machine.
					b.ReportMetric(float64((proccpu.Used()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
				})
			}
		}
	})
}

// address is the data of a ShippingAddressChanged, its personal values in
// the clear, or as long as their tokens (sized).
func address(sized bool) []byte {
	if !sized {
		return []byte(`{"name":"Ada Lovelace","line1":"12 St James's Square","city":"London","postal_code":"SW1Y 4JH","country":"GB"}`)
	}
	v := func(c string, n int) string {
		return personal.Prefix + strings.Repeat("k", 22) + ":" + strings.Repeat(c, n)
	}
	return []byte(`{"name":"` + v("n", 56) + `","line1":"` + v("l", 67) + `","city":"` + v("c", 48) + `","postal_code":"` + v("p", 51) + `","country":"GB"}`)
}

// TestRefusesInvalidPersonalData: an event whose personal fields are not
// valid JSON is refused as the store refuses any invalid data, and nothing
// is written: the in-place sealing never turns invalid data into valid.
func TestRefusesInvalidPersonalData(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		s := personal.NewStore(b, newKeyring(t, b, masterKey(t)), order.PersonalData())
		for _, data := range []string{
			`{"name":tru,"line1":"x","city":"c","postal_code":"p","country":"NL"}`,
			`{"name":"Ada","line1":"x","city":01,"postal_code":"p","country":"NL"}`,
			`{"name":"Ada","line1":"x" "city":"c"}`,
			`{"name":"Ada","city":"c",}`,
			`{"name":"Ada"} trailing`,
		} {
			_, err := s.Append(ctx, "order-bad", chronicle.NoStream, []chronicle.Event{
				{Type: order.TypeOrderCreated, SchemaVersion: 3, Data: []byte(`{"customer_id":"cust_1","currency":"USD","items":[],"total":0}`)},
				{Type: order.TypeShippingAddressChanged, Data: []byte(data)},
			})
			if !errors.Is(err, chronicle.ErrInvalid) {
				t.Errorf("append %s: %v, want ErrInvalid", data, err)
			}
		}
		if _, err := b.ReadStream(ctx, "order-bad", chronicle.ReadStreamOptions{}); !errors.Is(err, chronicle.ErrStreamNotFound) {
			t.Fatalf("refused appends wrote: %v", err)
		}
	})
}
