package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/personal"
)

// Distinctive values: personal ones must never be found at rest, the
// carrier (not personal) must.
const (
	erName    = "Quintessa Marvelwood"
	erLine1   = "77 Obscure Row"
	erCity    = "Zanzibarville"
	erPostal  = "ZX-4242"
	erSigned  = "Quintessa M. Signs"
	erCarrier = "Carrierwhale Express"
)

var erSecrets = []string{erName, erLine1, erCity, erPostal, erSigned}

func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func mustCall(t *testing.T, method, url, body string) string {
	t.Helper()
	code, b := call(t, method, url, body)
	if code >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, code, b)
	}
	return b
}

// placeOrder creates an order with more than 50 events (so a snapshot is
// taken), a shipping address and a signed delivery.
func placeOrder(t *testing.T, base, id, customer string) {
	t.Helper()
	mustCall(t, "POST", base+"/orders", `{"order_id":"`+id+`","customer_id":"`+customer+`","items":[{"sku":"SKU-0","quantity":1,"unit_price":100}]}`)
	mustCall(t, "PUT", base+"/orders/"+id+"/shipping-address",
		`{"name":"`+erName+`","line1":"`+erLine1+`","city":"`+erCity+`","postal_code":"`+erPostal+`","country":"NL"}`)
	for i := 1; i <= 50; i++ {
		mustCall(t, "POST", base+"/orders/"+id+"/items", fmt.Sprintf(`{"sku":"SKU-%d","quantity":1,"unit_price":1}`, i))
	}
	mustCall(t, "POST", base+"/orders/"+id+"/payments", `{"method":"card","amount":150}`)
	mustCall(t, "POST", base+"/orders/"+id+"/shipments", `{"carrier":"`+erCarrier+`","tracking":"TRK-1"}`)
	mustCall(t, "POST", base+"/orders/"+id+"/delivery", `{"signed_by":"`+erSigned+`"}`)
}

// feedShows waits until GET /events shows every event of order id (as
// many as its version). On PostgreSQL the feed shows an event once no
// transaction that began before its commit is still open on the server,
// and other tests' transactions on a shared server can be.
func feedShows(t *testing.T, base, id string) {
	t.Helper()
	var o struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal([]byte(mustCall(t, "GET", base+"/orders/"+id, "")), &o); err != nil || o.Version == 0 {
		t.Fatalf("order %s: version %d, %v", id, o.Version, err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		n, after := 0, ""
		for {
			var p struct {
				Events []struct {
					StreamID string `json:"stream_id"`
				} `json:"events"`
				Next string `json:"next"`
			}
			if err := json.Unmarshal([]byte(mustCall(t, "GET", base+"/events?limit=1000"+after, "")), &p); err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Events {
				if e.StreamID == "order-"+id {
					n++
				}
			}
			if len(p.Events) == 0 {
				break
			}
			after = "&after=" + url.QueryEscape(p.Next)
		}
		if n == o.Version {
			return
		}
		if n > o.Version || time.Now().After(deadline) {
			t.Fatalf("GET /events shows %d events of order %s, want %d", n, id, o.Version)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// views returns every view of order id that serve and the CLI offer.
func views(t *testing.T, base string, c *cli, id, customer string, at time.Time) map[string]string {
	t.Helper()
	feedShows(t, base, id)
	out := map[string]string{
		"state":         mustCall(t, "GET", base+"/orders/"+id+"?min_version=55", ""),
		"version":       mustCall(t, "GET", base+"/orders/"+id+"?version=3", ""),
		"as_of":         mustCall(t, "GET", base+"/orders/"+id+"?as_of="+at.UTC().Format(time.RFC3339Nano), ""),
		"list":          mustCall(t, "GET", base+"/orders?customer_id="+customer, ""),
		"events":        mustCall(t, "GET", base+"/orders/"+id+"/events", ""),
		"events_text":   mustCall(t, "GET", base+"/orders/"+id+"/events?format=text", ""),
		"feed":          mustCall(t, "GET", base+"/events?limit=1000", ""),
		"feed_delivery": mustCall(t, "GET", base+"/events?types=OrderDelivered", ""),
	}
	for name, args := range map[string][]string{
		"cli_timeline":      {"timeline", id, "--version", "55"},
		"cli_timeline_json": {"timeline", id, "--json"},
	} {
		stdout, stderr, code := c.run(args...)
		if code != 0 {
			t.Fatalf("chronicle %v: exit %d: %s", args, code, stderr)
		}
		out[name] = stdout
	}
	return out
}

func TestErasure(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		testErasure(t, "sqlite://"+filepath.Join(dir, "chronicle.db"), filepath.Join(dir, "master.key"))
	})
	t.Run("postgres", func(t *testing.T) {
		testErasure(t, pgStoreURL(t), masterKeyFile(t))
	})
}

// testErasure: after DELETE /customers/{id}/personal-data every view shows
// "[erased]" for each personal field and nothing else changes; the store's
// files never held the plaintext, and no longer hold the data key.
func testErasure(t *testing.T, store, keyFile string) {
	env := map[string]string{"CHRONICLE_STORE": store}
	if _, err := os.Stat(keyFile); err == nil {
		env[envMasterKey] = keyFile
	} // else: SQLite makes it

	base := startInProcess(t, env)
	c := newCLI(t, env)

	placeOrder(t, base, "er1", "cust_er")
	placeOrder(t, base, "er2", "cust_keep")
	at := time.Now()
	before := views(t, base, c, "er1", "cust_er", at)
	for name, v := range before {
		if !strings.Contains(v, erCity) && name != "feed_delivery" && name != "version" && !strings.Contains(v, erSigned) {
			t.Errorf("%s before erasure shows no personal data:\n%s", name, v)
		}
	}
	key := dataKey(t, store, keyFile, "cust_er")
	// Only ciphertext ever reached the store.
	noPlaintextInFiles(t, store, nil)

	code, body := call(t, "DELETE", base+"/customers/cust_er/personal-data", "")
	var e struct {
		CustomerID string    `json:"customer_id"`
		ErasedAt   time.Time `json:"erased_at"`
		Orders     []string  `json:"orders"`
	}
	if err := json.Unmarshal([]byte(body), &e); code != 200 || err != nil || e.CustomerID != "cust_er" || e.ErasedAt.IsZero() || fmt.Sprint(e.Orders) != "[er1]" {
		t.Fatalf("DELETE personal-data: %d %s", code, body)
	}
	if code, again := call(t, "DELETE", base+"/customers/cust_er/personal-data", ""); code != 200 || again != body {
		t.Fatalf("DELETE again: %d %s, want the same body %s", code, again, body)
	}
	if code, b := call(t, "DELETE", base+"/customers/cust_nobody/personal-data", ""); code != 404 {
		t.Fatalf("DELETE unknown customer: %d %s", code, b)
	}

	after := views(t, base, c, "er1", "cust_er", at)
	for name, v := range after {
		// Nothing else changed: the view is the old one with each personal
		// value replaced.
		want := before[name]
		for _, s := range erSecrets {
			want = strings.ReplaceAll(want, s, personal.Erased)
		}
		if name == "feed" || name == "feed_delivery" {
			// The other customer's order is in the feed too, unerased.
			want, v = feedOf(t, want, "order-er1"), feedOf(t, v, "order-er1")
		}
		for _, s := range erSecrets {
			if strings.Contains(v, s) {
				t.Errorf("%s after erasure shows %q:\n%.2000s", name, s, v)
			}
		}
		if v != want {
			t.Errorf("%s after erasure:\n%.3000s\nwant:\n%.3000s", name, v, want)
		}
	}
	if other := mustCall(t, "GET", base+"/orders/er2", ""); !strings.Contains(other, erName) {
		t.Errorf("another customer's order lost its data: %s", other)
	}
	if _, stderr, code := c.run("verify"); code != 0 {
		t.Errorf("verify after erasure: exit %d: %s", code, stderr)
	}
	stdout, stderr, code := c.run("erase", "cust_keep")
	if code != 0 || !strings.Contains(stdout, `"customer_id":"cust_keep"`) || !strings.Contains(stdout, `"orders":["er2"]`) {
		t.Fatalf("chronicle erase: exit %d: %s%s", code, stdout, stderr)
	}
	if other := mustCall(t, "GET", base+"/orders/er2", ""); strings.Contains(other, erName) {
		t.Errorf("chronicle erase left serve showing the data (a stale cache): %s", other)
	}

	// Ordering again: a new key, the old order stays erased.
	mustCall(t, "POST", base+"/orders", `{"order_id":"er3","customer_id":"cust_er","items":[{"sku":"S","quantity":1,"unit_price":1}]}`)
	mustCall(t, "PUT", base+"/orders/er3/shipping-address", `{"name":"New Name","line1":"l","city":"c","postal_code":"p","country":"NL"}`)
	if got := mustCall(t, "GET", base+"/orders/er3?min_version=2", ""); !strings.Contains(got, "New Name") {
		t.Errorf("the new order after erasure: %s", got)
	}
	if got := mustCall(t, "GET", base+"/orders/er1", ""); strings.Contains(got, erName) {
		t.Errorf("the erased order after ordering again: %s", got)
	}

	noPlaintextInFiles(t, store, key)
}

// feedOf keeps the events of one stream from a feed page.
func feedOf(t *testing.T, page, stream string) string {
	t.Helper()
	var p struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal([]byte(page), &p); err != nil {
		t.Fatalf("feed page: %v", err)
	}
	var keep []map[string]any
	for _, e := range p.Events {
		if e["stream_id"] == stream {
			keep = append(keep, e)
		}
	}
	b, _ := json.Marshal(keep)
	return string(b)
}

// dataKey returns the subject's data key, wrapped as stored and unwrapped.
func dataKey(t *testing.T, store, keyFile, subject string) [][]byte {
	t.Helper()
	ctx := context.Background()
	s, err := storeurl.OpenURL(ctx, store, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k, err := s.SubjectKey(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	master, err := personal.ReadMasterKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := aes.NewCipher(master)
	aead, _ := cipher.NewGCM(b)
	raw, err := aead.Open(nil, k.Wrapped[:12], k.Wrapped[12:], []byte("chronicle data key\x00"+k.ID+"\x00"+subject))
	if err != nil {
		t.Fatalf("unwrap: %v", err)
	}
	return [][]byte{k.Wrapped, raw}
}

// noPlaintextInFiles greps the store's files: SQLite's database and WAL
// (before and after a checkpoint), PostgreSQL's table and index files of
// the store's schema (after a CHECKPOINT).
func noPlaintextInFiles(t *testing.T, store string, key [][]byte) {
	t.Helper()
	check := func(what string, files map[string][]byte) {
		t.Helper()
		var all []byte
		for name, b := range files {
			all = append(all, b...)
			for _, s := range erSecrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s: %s holds %q", what, name, s)
				}
			}
			for i, k := range key {
				if bytes.Contains(b, k) {
					t.Errorf("%s: %s holds the erased data key (%s)", what, name, []string{"wrapped", "raw"}[i])
				}
			}
		}
		if !bytes.Contains(all, []byte(erCarrier)) {
			t.Errorf("%s: the carrier %q is nowhere in %d files: the grep proves nothing", what, erCarrier, len(files))
		}
	}
	loc, err := storeurl.Parse(store)
	if err != nil {
		t.Fatal(err)
	}
	if loc.Kind == storeurl.SQLite {
		read := func() map[string][]byte {
			files := map[string][]byte{}
			for _, f := range []string{loc.Path, loc.Path + "-wal"} {
				if b, err := os.ReadFile(f); err == nil {
					files[f] = b
				}
			}
			return files
		}
		before := read()
		delete(before, loc.Path) // the events may still be only in the WAL
		for name, b := range before {
			for _, s := range erSecrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("before the checkpoint: %s holds %q", name, s)
				}
			}
		}
		s, err := storeurl.Open(context.Background(), loc, storeurl.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// serve's readers may hold the WAL for a moment.
		for deadline := time.Now().Add(30 * time.Second); ; {
			var busy, log, done int
			err := s.SQLDB().QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done)
			if err != nil {
				t.Fatal(err)
			}
			if busy == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("checkpoint still busy after 30 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		check("after a checkpoint", read())
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("CHRONICLE_TEST_POSTGRES"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT c.relname, pg_read_binary_file(pg_relation_filepath(c.oid))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'i', 't') AND pg_relation_filepath(c.oid) IS NOT NULL
UNION ALL
SELECT t.relname, pg_read_binary_file(pg_relation_filepath(t.oid))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE n.nspname = $1`, loc.Schema)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for rows.Next() {
		var name string
		var b []byte
		if err := rows.Scan(&name, &b); err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	check("after CHECKPOINT", files)
}

// TestMasterKey: keygen makes a key; a SQLite store makes master.key (0600)
// beside its file and refuses another key; an in-memory store gets a key of
// its own; PostgreSQL refuses to start without one, saying how to make it.
func TestMasterKey(t *testing.T) {
	c := newCLI(t, nil)
	out, _, code := c.run("keygen")
	if _, err := personal.ParseMasterKey([]byte(out)); code != 0 || err != nil {
		t.Fatalf("keygen: exit %d, %q: %v", code, out, err)
	}

	dir := t.TempDir()
	store := "sqlite://" + filepath.Join(dir, "chronicle.db")
	if _, stderr, code := c.run("demo", "--orders", "3", "--store", store); code != 0 {
		t.Fatalf("demo on a new SQLite store: exit %d: %s", code, stderr)
	}
	if _, stderr, code := c.run("timeline", "nope", "--store", store); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("timeline: exit %d: %s", code, stderr)
	}
	keyFile := filepath.Join(dir, "master.key")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.key: %v, %v", fi, err)
	}
	// The key moved away: no new one is made beside a store whose data
	// keys it could not unwrap.
	moved := filepath.Join(t.TempDir(), "master.key")
	if err := os.Rename(keyFile, moved); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"timeline", "nope", "--store", store},
		{"copy", "--from", store, "--to", "sqlite://" + filepath.Join(t.TempDir(), "copy.db")},
	} {
		_, stderr, code := c.run(args...)
		if code != 1 || !strings.Contains(stderr, "no master key: "+keyFile+" is missing beside") {
			t.Fatalf("%v without its master.key: exit %d: %s", args, code, stderr)
		}
		if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v without its master.key made one: %v", args, err)
		}
	}
	if _, stderr, code := c.run("timeline", "nope", "--store", store, "--master-key", moved); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("timeline with the moved key: exit %d: %s", code, stderr)
	}
	if err := os.Rename(moved, keyFile); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := c.run("timeline", "nope", "--store", store, "--master-key", other)
	if code != 1 || !strings.Contains(stderr, "master key does not match") {
		t.Fatalf("another master key: exit %d: %s", code, stderr)
	}
	if _, stderr, code := c.run("timeline", "nope", "--store", "sqlite::memory:"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("in-memory store: exit %d: %s", code, stderr)
	}

	_, stderr, code = c.run("timeline", "nope", "--store", "postgres://nobody@127.0.0.1:1/x?sslmode=disable")
	if code != 2 || !strings.Contains(stderr, "chronicle keygen > master.key") {
		t.Fatalf("PostgreSQL without a master key: exit %d: %s", code, stderr)
	}
}

// TestTokenInjection: a stored token (an audit export shows them) pasted
// into a field a client writes is refused before anything is appended, so
// no response ever decrypts it for that client; nor does an error message
// that quotes a path.
func TestTokenInjection(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		testTokenInjection(t, "sqlite://"+filepath.Join(dir, "chronicle.db"), filepath.Join(dir, "master.key"))
	})
	t.Run("postgres", func(t *testing.T) {
		testTokenInjection(t, pgStoreURL(t), masterKeyFile(t))
	})
}

func testTokenInjection(t *testing.T, store, keyFile string) {
	env := map[string]string{"CHRONICLE_STORE": store}
	if _, err := os.Stat(keyFile); err == nil {
		env[envMasterKey] = keyFile
	}
	base := startInProcess(t, env)
	mustCall(t, "POST", base+"/orders", `{"order_id":"victim","customer_id":"cust_victim","items":[{"sku":"S","quantity":1,"unit_price":1}]}`)
	mustCall(t, "PUT", base+"/orders/victim/shipping-address",
		`{"name":"`+erName+`","line1":"`+erLine1+`","city":"`+erCity+`","postal_code":"`+erPostal+`","country":"NL"}`)
	mustCall(t, "POST", base+"/orders", `{"order_id":"mine","customer_id":"cust_attacker","items":[{"sku":"S","quantity":1,"unit_price":1}]}`)

	// The victim's name as stored.
	s, err := storeurl.OpenURL(context.Background(), store, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.ReadStream(context.Background(), "order-victim", chronicle.ReadStreamOptions{})
	s.Close()
	if err != nil || len(evs) != 2 {
		t.Fatalf("victim's events: %d, %v", len(evs), err)
	}
	var addr struct{ Name string }
	if err := json.Unmarshal(evs[1].Data, &addr); err != nil || !strings.HasPrefix(addr.Name, personal.Prefix) {
		t.Fatalf("stored address: %s, %v", evs[1].Data, err)
	}
	tok := addr.Name
	escaped := strings.Replace(tok, ":", `\u003a`, 1)

	for _, c := range []struct{ method, path, body, corr string }{
		{"PUT", "/orders/mine/shipping-address", `{"name":"A","line1":"` + tok + `","city":"c","postal_code":"p","country":"NL"}`, ""},
		{"POST", "/orders/mine/items", `{"sku":"S2","quantity":1,"unit_price":1}`, tok},
		{"POST", "/orders/mine/cancellation", `{"reason":"` + escaped + `"}`, ""},
		{"POST", "/orders/mine/cancellation", `{"reason":"see ` + tok + `"}`, ""},
		{"GET", "/orders/" + tok, "", ""},
		{"DELETE", "/orders/mine/items/" + tok, "", ""},
	} {
		req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.corr != "" {
			req.Header.Set("X-Correlation-Id", c.corr)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode < 400 || res.StatusCode >= 500 || strings.Contains(string(b), erName) {
			t.Errorf("%s %s (correlation id %q): %d %s; want a 4xx that reveals nothing", c.method, c.path, c.corr, res.StatusCode, b)
		}
	}
	got := mustCall(t, "GET", base+"/orders/mine", "")
	if !strings.Contains(got, `"version":1`) || strings.Contains(got, erName) {
		t.Errorf("the attacker's order after the attempts: %s", got)
	}
	feedShows(t, base, "mine")
	views := map[string]string{
		"events":      mustCall(t, "GET", base+"/orders/mine/events", ""),
		"events_text": mustCall(t, "GET", base+"/orders/mine/events?format=text", ""),
		"feed":        feedOf(t, mustCall(t, "GET", base+"/events", ""), "order-mine"),
	}
	for name, v := range views {
		if strings.Contains(v, erName) || !strings.Contains(v, "cust_attacker") {
			t.Errorf("%s of the attacker's order: %s", name, v)
		}
	}
}

// chronicle erase lists the customer's orders from the read model, which a
// store just copied has not built yet: it must catch up with the log first,
// not answer an empty list. A customer id no order can have is a usage
// error, before anything is opened.
func TestEraseCatchesUpTheReadModel(t *testing.T) {
	dir := t.TempDir()
	src := "sqlite://" + filepath.Join(dir, "src.db")
	dst := "sqlite://" + filepath.Join(dir, "dst.db")
	keyFile := filepath.Join(dir, "master.key")
	c := newCLI(t, nil)
	key, _, _ := c.run("keygen")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CHRONICLE_STORE": src, envMasterKey: keyFile}
	base := startInProcess(t, env)
	placeOrder(t, base, "cp1", "cust_cp")
	mustCall(t, "POST", base+"/orders", `{"order_id":"cp2","customer_id":"cust_cp"}`)

	if _, stderr, code := c.run("copy", "--from", src, "--to", dst, "--master-key", keyFile); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	stdout, stderr, code := c.run("erase", "cust_cp", "--store", dst, "--master-key", keyFile)
	if code != 0 || !strings.Contains(stdout, `"orders":["cp2","cp1"]`) {
		t.Fatalf("erase on the copy: exit %d: %s%s", code, stdout, stderr)
	}
	for _, id := range []string{"", "a b", "x/y"} {
		if stdout, stderr, code := c.run("erase", id, "--store", dst, "--master-key", keyFile); code != 2 || stdout != "" {
			t.Errorf("erase %q: exit %d, stdout %q, stderr %q; want a usage error", id, code, stdout, stderr)
		}
	}
}

// TestErasureAfterResumedCopy: on a PostgreSQL target of a copy run again
// (as after a kill), erasing a customer leaves its data key in none of the
// store's files: the copy run again must not have rewritten the data keys'
// rows, whose old versions an erasure would not purge.
func TestErasureAfterResumedCopy(t *testing.T) {
	dir := t.TempDir()
	src, keyFile, dst := "sqlite://"+filepath.Join(dir, "chronicle.db"), filepath.Join(dir, "master.key"), pgStoreURL(t)
	env := map[string]string{"CHRONICLE_STORE": src}
	base := startInProcess(t, env)
	placeOrder(t, base, "er1", "cust_er")
	for i := range 20 {
		id := fmt.Sprintf("o%d", i)
		mustCall(t, "POST", base+"/orders", fmt.Sprintf(`{"order_id":"%s","customer_id":"cust_%d","items":[{"sku":"S","quantity":1,"unit_price":1}]}`, id, i))
		mustCall(t, "PUT", base+"/orders/"+id+"/shipping-address", `{"name":"N","line1":"l","city":"c","postal_code":"p","country":"NL"}`)
	}
	c := newCLI(t, nil)
	for run := range 2 {
		if stdout, stderr, code := c.run("copy", "--from", src, "--to", dst, "--master-key", keyFile); code != 0 {
			t.Fatalf("copy run %d: exit %d:\n%s%s", run+1, code, stdout, stderr)
		}
	}
	key := dataKey(t, dst, keyFile, "cust_er")
	if stdout, stderr, code := c.run("erase", "cust_er", "--store", dst, "--master-key", keyFile); code != 0 {
		t.Fatalf("erase: exit %d:\n%s%s", code, stdout, stderr)
	}
	noPlaintextInFiles(t, dst, key)
}
