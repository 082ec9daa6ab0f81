package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/storeurl"
	"github.com/chronicle-es/chronicle/pgstore"
	"github.com/chronicle-es/chronicle/projection"
)

// cli runs the command line in-process, as main would, and returns what it
// printed and its exit status.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T, env map[string]string) *cli { return &cli{t: t, env: env} }

func (c *cli) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return c.env[k] }}
	err := m.Run(context.Background(), args)
	if err != nil {
		errb.WriteString("chronicle: " + err.Error() + "\n")
	}
	return out.String(), errb.String(), exitCode(err)
}

// tempStore returns the URL of a new SQLite store in the test's temp dir.
func tempStore(t *testing.T) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "chronicle.db")
}

// appendRaw appends events to an order's stream, bypassing the domain (old
// schema versions included), through a store opened just for that.
func appendRaw(t *testing.T, url, orderID string, events ...chronicle.Event) {
	t.Helper()
	ctx := context.Background()
	s, err := storeurl.OpenURL(ctx, url, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Append(ctx, "order-"+orderID, chronicle.Any, events); err != nil {
		t.Fatal(err)
	}
}

func ev(typ string, schema int, data string) chronicle.Event {
	return chronicle.Event{Type: typ, SchemaVersion: schema, Data: json.RawMessage(data)}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t, nil)
	store := tempStore(t)
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"--bogus"},
		{"timeline"},
		{"timeline", "a", "b"},
		{"timeline", "bad id!", "--store", store},
		{"timeline", "ord_1", "--version", "x"},
		{"timeline", "ord_1", "--version", "0", "--store", store},
		{"timeline", "ord_1", "--version", "-1", "--store", store},
		{"timeline", "ord_1", "--at", "yesterday", "--store", store},
		{"timeline", "ord_1", "--store", "mysql://h/db"},
		{"projections"},
		{"projections", "frobnicate"},
		{"projections", "rebuild"},
		{"projections", "rebuild", "no_such_projection", "--store", store},
		{"verify", "extra"},
		{"verify", "--anchor", strings.Repeat("0", 64), "--store", store},
		{"verify", "--integrity", "--anchor", "not-a-hash", "--store", store},
		{"audit", "export", "bad id!", "--store", store},
		{"serve", "--addr", "nonsense", "--store", store},
		{"serve", "--log-format", "xml", "--store", store},
		{"bench", "--workload", "w11"},
		{"demo", "--orders", "0"},
	} {
		_, stderr, code := c.run(args...)
		if code != 2 {
			t.Errorf("chronicle %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), code, stderr)
		}
		if stderr == "" {
			t.Errorf("chronicle %s: nothing on stderr", strings.Join(args, " "))
		}
	}
}

func TestHelp(t *testing.T) {
	c := newCLI(t, nil)
	for _, args := range [][]string{{"--help"}, {"help", "timeline"}, {"serve", "--help"}, {"projections", "rebuild", "--help"}} {
		out, _, code := c.run(args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("chronicle %s: exit %d, output %q", strings.Join(args, " "), code, out)
		}
	}
}

func TestTimeline(t *testing.T) {
	store := tempStore(t)
	c := newCLI(t, map[string]string{storeurl.Env: store}) // the URL from the environment
	appendRaw(t, store, "ord_123",
		ev("OrderCreated", 1, `{"customer_id":"cust_456","total":9999}`), // schema v1, upcast on read
		ev("PaymentReceived", 1, `{"method":"card","amount":9999}`),
		ev("OrderShipped", 1, `{"carrier":"fedex","tracking":"FX123"}`),
		ev("OrderDelivered", 1, `{"signed_by":"J. Smith"}`),
	)

	out, stderr, code := c.run("timeline", "ord_123")
	want := `ord_123:
  v1 OrderCreated {customer: cust_456, total: $99.99}
  v2 PaymentReceived {method: card, amount: $99.99}
  v3 OrderShipped {carrier: fedex, tracking: FX123}
  v4 OrderDelivered {signed_by: J. Smith}
`
	if code != 0 || out != want {
		t.Errorf("timeline: exit %d, stderr %q, output:\n%s\nwant:\n%s", code, stderr, out, want)
	}

	out, _, code = c.run("timeline", "ord_123", "--json")
	var tl struct {
		OrderID string `json:"order_id"`
		Version int64  `json:"version"`
		Events  []struct {
			Version       int64           `json:"version"`
			Type          string          `json:"type"`
			SchemaVersion int             `json:"schema_version"`
			Data          json.RawMessage `json:"data"`
			Position      int64           `json:"position"`
			Hash          string          `json:"hash"`
			PrevHash      string          `json:"prev_hash"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &tl); err != nil || code != 0 {
		t.Fatalf("timeline --json: exit %d, %v:\n%s", code, err, out)
	}
	// The stored events' chain, in lowercase hex.
	prev := strings.Repeat("0", 64)
	for _, e := range tl.Events {
		if e.PrevHash != prev || len(e.Hash) != 64 || strings.Trim(e.Hash, "0123456789abcdef") != "" || e.Hash == prev {
			t.Errorf("timeline --json: v%d hash %q prev_hash %q, want prev_hash %q", e.Version, e.Hash, e.PrevHash, prev)
		}
		prev = e.Hash
	}
	if tl.OrderID != "ord_123" || tl.Version != 4 || len(tl.Events) != 4 {
		t.Fatalf("timeline --json:\n%s", out)
	}
	var created struct{ Currency string }
	if err := json.Unmarshal(tl.Events[0].Data, &created); err != nil || tl.Events[0].SchemaVersion != 3 || created.Currency != "USD" {
		t.Errorf("timeline --json: v1 OrderCreated not upcast: schema %d, data %s", tl.Events[0].SchemaVersion, tl.Events[0].Data)
	}

	out, _, code = c.run("timeline", "ord_123", "--version", "2")
	if code != 0 || !strings.HasSuffix(out, "}\n") || !strings.Contains(out, "state at v2:") || !strings.Contains(out, `"status": "paid"`) {
		t.Errorf("timeline --version 2: exit %d:\n%s", code, out)
	}
	out, _, code = c.run("timeline", "ord_123", "--at", "2999-01-01T00:00:00Z", "--json")
	var withState struct {
		State struct {
			Status  string `json:"status"`
			Version int64  `json:"version"`
		} `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &withState); err != nil || code != 0 || withState.State.Status != "delivered" || withState.State.Version != 4 {
		t.Errorf("timeline --at future --json: exit %d, %v, state %+v", code, err, withState.State)
	}

	for _, args := range [][]string{
		{"timeline", "ord_missing"},
		{"timeline", "ord_123", "--version", "9"},
		{"timeline", "ord_123", "--at", "2000-01-01T00:00:00Z"},
		{"audit", "export", "ord_123", "ord_missing"},
	} {
		if _, stderr, code := c.run(args...); code != 1 || stderr == "" {
			t.Errorf("chronicle %s: exit %d, stderr %q; want 1 and a message", strings.Join(args, " "), code, stderr)
		}
	}
}

func TestProjectionsAndVerify(t *testing.T) {
	store := tempStore(t)
	c := newCLI(t, nil)
	out, stderr, code := c.run("demo", "--orders", "40", "--seed", "7", "--store", store)
	if code != 0 || !strings.Contains(out, "40 orders") {
		t.Fatalf("demo: exit %d, %s %s", code, out, stderr)
	}
	out, _, code = c.run("projections", "list", "--store", store)
	if code != 0 || !strings.Contains(out, "order_summaries") || !strings.Contains(out, "order_status_history") {
		t.Errorf("projections list: exit %d:\n%s", code, out)
	}
	for _, name := range []string{"order_summaries", "order_status_history"} {
		out, stderr, code = c.run("projections", "rebuild", name, "--store", store)
		if code != 0 || !strings.Contains(out, "rebuilt "+name) || !strings.Contains(stderr, "swapped in") {
			t.Errorf("projections rebuild %s: exit %d:\n%s%s", name, code, out, stderr)
		}
	}
	out, _, code = c.run("projections", "list", "--json", "--store", store)
	var list struct {
		Projections []struct {
			Name      string `json:"name"`
			LagEvents int64  `json:"lag_events"`
		} `json:"projections"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list.Projections) != 2 {
		t.Fatalf("projections list --json: exit %d, %v:\n%s", code, err, out)
	}
	for _, p := range list.Projections {
		if p.LagEvents != 0 {
			t.Errorf("after rebuild, %s lags %d events", p.Name, p.LagEvents)
		}
	}
	out, _, code = c.run("verify", "--store", store)
	if code != 0 || !strings.HasPrefix(out, "ok:") {
		t.Errorf("verify: exit %d:\n%s", code, out)
	}

	// Corrupt the read model behind the store's back: verify must say so.
	s, err := storeurl.OpenURL(context.Background(), store, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SQLDB().Exec(`UPDATE order_summaries SET total = total + 1 WHERE order_id = (SELECT min(order_id) FROM order_summaries)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	out, stderr, code = c.run("verify", "--store", store)
	if code != 1 || !strings.Contains(out, "total") || !strings.Contains(stderr, "difference") {
		t.Errorf("verify of a corrupted read model: exit %d, stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
}

func TestBench(t *testing.T) {
	c := newCLI(t, nil)
	out, stderr, code := c.run("bench", "--clients", "2", "--warmup", "0s", "--duration", "300ms", "--store", tempStore(t),
		"--rounds", "1", "--fsync-probe", "50ms")
	if code != 0 || !strings.Contains(out, "ops/s") || !strings.Contains(out, "fsync/s") {
		t.Errorf("bench: exit %d:\n%s%s", code, out, stderr)
	}
}

// TestDefaultStore: a command that writes creates the default store; a
// read-only one refuses to, until then.
func TestDefaultStore(t *testing.T) {
	t.Chdir(t.TempDir())
	c := newCLI(t, nil)
	if _, stderr, code := c.run("verify"); code != 1 || !strings.Contains(stderr, "no store at chronicle-data/chronicle.db") {
		t.Fatalf("verify before the default store exists: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat("chronicle-data"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("verify made chronicle-data: %v", err)
	}
	if _, stderr, code := c.run("demo", "--orders", "1"); code != 0 {
		t.Fatalf("demo on the default store: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join("chronicle-data", "chronicle.db")); err != nil {
		t.Errorf("default store not created: %v", err)
	}
	if _, stderr, code := c.run("verify"); code != 0 {
		t.Fatalf("verify on the default store: exit %d: %s", code, stderr)
	}
}

func TestServeBadTokens(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "tokens")
	if err := os.WriteFile(bad, []byte("# comment\nnocolon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		env  map[string]string
		args []string
	}{
		{nil, []string{"--tokens-file", filepath.Join(dir, "missing")}},
		{nil, []string{"--tokens-file", bad}},
		{map[string]string{"CHRONICLE_TOKENS": "s3cret:emperor"}, nil},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--store", tempStore(t)}, tt.args...)
		_, stderr, code := newCLI(t, tt.env).run(args...)
		if code != 1 || !strings.Contains(stderr, "token") {
			t.Errorf("chronicle %s (env %v): exit %d, stderr %q", strings.Join(args, " "), tt.env, code, stderr)
		}
		if strings.Contains(stderr, "s3cret") {
			t.Errorf("a token secret leaked into the error: %q", stderr)
		}
	}
}

func TestServeRefusesNetworkWithoutTokens(t *testing.T) {
	c := newCLI(t, nil)
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		_, stderr, code := c.run("serve", "--addr", addr, "--store", tempStore(t))
		if code != 1 || !strings.Contains(stderr, "refusing to listen on a non-loopback address without auth") {
			t.Errorf("serve --addr %s without tokens: exit %d, stderr %q", addr, code, stderr)
		}
	}
}

func TestServeInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	var stderr bytes.Buffer
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &lockedWriter{w: &stderr}, Getenv: func(string) string { return "" },
		Ready: func(addr string) { addrc <- addr }}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--store", tempStore(t)}) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve exited before listening: %v", err)
	}
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %d", path, res.StatusCode)
		}
	}
	cancel() // as SIGTERM does
	if err := <-done; err != nil {
		t.Errorf("serve after shutdown: %v", err)
	}
}

// TestServeWithTokens: with auth on, the API needs a token but the console
// page loads without one (it asks for the token itself).
func TestServeWithTokens(t *testing.T) {
	base := startInProcess(t, map[string]string{"CHRONICLE_TOKENS": "s3cret:read"})
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/", "", 200},
		{"/console/app.js", "", 200},
		{"/healthz", "", 200},
		{"/projections", "", 401},
		{"/projections", "wrong", 401},
		{"/projections", "s3cret", 200},
	} {
		req, _ := http.NewRequest("GET", base+tt.path, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tt.want {
			t.Errorf("GET %s (token %q): %d, want %d", tt.path, tt.token, res.StatusCode, tt.want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var tty, plain bytes.Buffer
	for _, p := range []*progress{newProgress(&tty, true), newProgress(&plain, false)} {
		p.report(projection.Progress{Projection: "order_summaries", EventsDone: 500, Position: 500, HeadPosition: 1000, EventsPerSec: 250, ETA: 2 * time.Second})
		p.report(projection.Progress{Projection: "order_summaries", EventsDone: 1000, Position: 1000, HeadPosition: 1000, EventsPerSec: 250, Swapped: true})
		p.done()
	}
	if s := tty.String(); !strings.Contains(s, "\r") || !strings.Contains(s, "[###############...............]  50%") || !strings.Contains(s, "ETA 2s") || !strings.HasSuffix(s, "\n") {
		t.Errorf("terminal progress: %q", s)
	}
	if s := plain.String(); strings.Contains(s, "\r") || !strings.Contains(s, "250 events/s") || !strings.Contains(s, "swapped in") {
		t.Errorf("plain progress: %q", s)
	}
}

// TestTimelineAtEdges: --at accepts the API's range of times (years 0001 to
// 9999 in UTC) and answers exactly within it; outside it is a usage error.
func TestTimelineAtEdges(t *testing.T) {
	store := tempStore(t)
	c := newCLI(t, map[string]string{storeurl.Env: store})
	appendRaw(t, store, "ord_edge",
		ev("OrderCreated", 3, `{"customer_id":"c","currency":"USD","items":[],"total":100}`),
		ev("PaymentReceived", 1, `{"method":"card","amount":100}`),
	)
	for _, tc := range []struct {
		at   string
		code int
		want string // in the output (0) or on stderr
	}{
		{"0000-01-01T00:00:00+23:59", 2, "outside the range"},
		{"9999-12-31T23:59:59-00:01", 2, "outside the range"},
		{"0001-01-01T00:00:00Z", 1, "did not exist yet"},
		{"1500-01-01T00:00:00Z", 1, "did not exist yet"},
		{"2300-01-01T00:00:00Z", 0, `"status": "paid"`},
		{"9999-12-31T23:59:59.999999999Z", 0, `"status": "paid"`},
	} {
		out, stderr, code := c.run("timeline", "ord_edge", "--at", tc.at)
		if code != tc.code || !strings.Contains(out+stderr, tc.want) {
			t.Errorf("timeline --at %s: exit %d, want %d with %q\n%s%s", tc.at, code, tc.code, tc.want, out, stderr)
		}
	}
}

// TestTimelineEscapesUnsafe: an old event holding bidi overrides, separators
// and controls prints escaped, in the timeline and in the state after it.
func TestTimelineEscapesUnsafe(t *testing.T) {
	store := tempStore(t)
	c := newCLI(t, map[string]string{storeurl.Env: store})
	appendRaw(t, store, "ord_bidi",
		ev("OrderCreated", 3, `{"customer_id":"c","currency":"USD","items":[],"total":100}`),
		ev("OrderCancelled", 1, "{\"reason\":\"\u202egnp.exe\u2028next\u0085line\u2066\u007f\"}"),
	)
	out, stderr, code := c.run("timeline", "ord_bidi", "--version", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, r := range []rune{0x202e, 0x2028, 0x85, 0x2066, 0x7f} {
		if strings.ContainsRune(out, r) {
			t.Errorf("output holds %U raw:\n%q", r, out)
		}
	}
	if !strings.Contains(out, `v2 OrderCancelled {reason: "\u202egnp.exe`) || !strings.Contains(out, `"cancel_reason": "\u202egnp.exe\u2028next\u0085line\u2066\u007f"`) {
		t.Errorf("want the reason escaped in the timeline and in the state:\n%s", out)
	}
}

// Opening a store whose events predate hashing shows the hashing on a
// terminal as a progress bar.
func TestMigrateProgressBar(t *testing.T) {
	store := tempStore(t)
	for i := range 3 {
		evs := make([]chronicle.Event, 500)
		for j := range evs {
			evs[j] = ev("OrderCreated", 1, `{"customer_id":"cust_456","total":9999}`)
		}
		appendRaw(t, store, fmt.Sprintf("ord_%d", i), evs...)
	}
	// Take the hashes away behind the store's back: it is now as the
	// release before hashing left it.
	ctx := context.Background()
	s, err := storeurl.OpenURL(ctx, store, storeurl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SQLDB().ExecContext(ctx, `DROP TRIGGER events_no_update;
UPDATE events SET hash = NULL, prev_hash = NULL; UPDATE streams SET last_hash = NULL;
CREATE INDEX events_unhashed ON events (position) WHERE hash IS NULL`)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
		IsTerminal: func(w io.Writer) bool { return w == &errb }}
	if err := m.Run(ctx, []string{"timeline", "ord_1", "--store", store}); err != nil {
		t.Fatal(err)
	}
	if s := errb.String(); !strings.Contains(s, "hashing stored events [") || !strings.Contains(s, "100% 1500 events") {
		t.Errorf("stderr %q, want a progress bar up to 100%% of 1500 events", s)
	}
	if !strings.Contains(out.String(), "v500 OrderCreated") {
		t.Errorf("timeline after the migration:\n%s", out.String())
	}
}

// TestReadOnlyNeedsAStore: a read-only command, or a copy's source, at a
// SQLite file that does not exist says so (exit 1) and creates nothing: no
// empty store, no directory, no master key.
func TestReadOnlyNeedsAStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "typo.db")
	store := "sqlite://" + path
	c := newCLI(t, nil)
	for _, args := range [][]string{
		{"verify", "--store", store},
		{"verify", "--integrity", "--store", store},
		{"audit", "export", "--store", store},
		{"timeline", "ord_1", "--store", store},
		{"projections", "list", "--store", store},
		{"projections", "rebuild", "order_summaries", "--store", store},
		{"copy", "--from", store, "--to", "sqlite://" + filepath.Join(dir, "target.db")},
	} {
		_, stderr, code := c.run(args...)
		if code != 1 || !strings.Contains(stderr, "no store at "+path) {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
		if files, _ := os.ReadDir(dir); len(files) > 0 {
			t.Fatalf("%v left %v in %s", args, files, dir)
		}
	}

	// A PostgreSQL schema that holds no store (a typo in ?schema=) is the
	// same, and is not created.
	pg := pgStoreURL(t)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	key, _, _ := c.run("keygen")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	pc := newCLI(t, map[string]string{envMasterKey: keyFile})
	for _, args := range [][]string{
		{"verify", "--integrity", "--store", pg},
		{"audit", "export", "--store", pg},
		{"projections", "list", "--store", pg},
		{"copy", "--from", pg, "--to", "sqlite://" + filepath.Join(t.TempDir(), "target.db")},
	} {
		if _, stderr, code := pc.run(args...); code != 1 || !strings.Contains(stderr, "no store in schema") {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
	loc, err := storeurl.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := pgstore.Exists(context.Background(), loc.URL, loc.Schema); ok || err != nil {
		t.Fatalf("the read-only commands made the store: %v, %v", ok, err)
	}
}
