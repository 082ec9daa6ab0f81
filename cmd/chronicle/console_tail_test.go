package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// serveRestartable runs "chronicle serve" in this process with args and
// env, and returns its address, its stderr and a stop function (also run
// when t ends) that waits for serve to return.
func serveRestartable(t *testing.T, env map[string]string, args ...string) (addr string, stderr *lockedWriter, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	stderr = &lockedWriter{w: &bytes.Buffer{}}
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: stderr, Getenv: func(k string) string { return env[k] },
		Ready: func(addr string) { addrc <- addr }}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case addr = <-addrc:
	case err := <-done:
		done <- err
		t.Fatalf("serve exited before listening: %v", err)
	}
	return addr, stderr, stop
}

// cutProxy forwards TCP connections to a backend it can switch, and cuts
// them on demand: the browser sees its connections die as when a server or
// the network fails, while the test still reaches the server directly.
type cutProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	down    bool
	conns   map[net.Conn]bool
}

func newCutProxy(t *testing.T, backend string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, backend: backend, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *cutProxy) forward(c net.Conn) {
	p.mu.Lock()
	backend, down := p.backend, p.down
	if !down {
		p.conns[c] = true
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	if down {
		return
	}
	b, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns[b] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, b)
		p.mu.Unlock()
		b.Close()
	}()
	go func() { _, _ = io.Copy(b, c); b.Close() }()
	_, _ = io.Copy(c, b)
}

// cut closes every open connection when down, and refuses new ones until
// called with false.
func (p *cutProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *cutProxy) setBackend(addr string) {
	p.mu.Lock()
	p.backend = addr
	p.mu.Unlock()
}

// newBrowser starts headless Chromium for t, and returns a context bound
// to a session of at most two minutes.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed at %s in CI (scripts/test-deps installs it): %v", chromium, err)
		}
		t.Skipf("Debian's chromium is not installed at %s (apt-get install chromium; CI installs it): %v", chromium, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	// A bound on the session, not a timing assertion.
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestConsoleLiveTail drives the console's live tail in headless Chromium
// with auth on: events appended through the API appear without a reload,
// and after the connection is cut (events appended meanwhile) and after
// serve restarts, the tail shows every event since it opened exactly once,
// in the log's order.
func TestConsoleLiveTail(t *testing.T) {
	const adminSecret, readSecret = "tail-admin-s3cret", "tail-read-s3cret"
	env := map[string]string{"CHRONICLE_TOKENS": "ops:" + adminSecret + ":admin,viewer:" + readSecret + ":read"}
	store := tempStore(t)
	addr, stderr1, stop := serveRestartable(t, env, "--store", store)
	base := "http://" + addr
	send := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adminSecret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
	}
	order := func(id string) {
		t.Helper()
		send("POST", "/orders", `{"order_id":"`+id+`","customer_id":"cust_1","items":[{"sku":"SKU-1","quantity":1,"unit_price":100}]}`)
		send("POST", "/orders/"+id+"/items", `{"sku":"SKU-2","quantity":2,"unit_price":250}`)
	}
	// Before the console opens: not in its tail, which starts at the end.
	order("ord_before")

	proxy := newCutProxy(t, addr)
	ctx := newBrowser(t)
	step := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, a); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	status := func() string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#tail-status`)))
		if err != nil {
			t.Fatalf("browser: tail status: %v", err)
		}
		return s
	}
	// rows returns the tail's checkpoints, oldest first.
	rows := func() []string {
		t.Helper()
		cps, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#tail tbody tr')).map(tr => tr.dataset.checkpoint)`))
		if err != nil {
			t.Fatalf("browser: tail rows: %v", err)
		}
		slices.Reverse(cps)
		return cps
	}
	// waitFor polls the page until ok holds; ctx bounds it.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("browser: %s: not within the session's deadline", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitRows := func(n int) {
		t.Helper()
		waitFor(fmt.Sprintf("%d rows in the tail", n), func() bool { return len(rows()) >= n })
	}

	step("open the console", chromedp.Navigate("http://"+proxy.ln.Addr().String()+"/"))
	waitFor("the tail asks for a token", func() bool { return status() == "needs a token" })
	step("open the token form", chromedp.Click(chromedp.CSS(`#auth summary`)))
	step("type the read token", chromedp.SendKeys(chromedp.CSS(`#token`), readSecret))
	step("use it", chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)))
	waitFor("the tail is live", func() bool { return status() == "live" })

	order("ord_live1")
	order("ord_live2")
	waitRows(4)

	// The connection dies; events commit while the console is cut off.
	proxy.cut(true)
	waitFor("the tail notices the cut", func() bool { return status() == "reconnecting" })
	order("ord_cut")
	proxy.cut(false)
	waitRows(6)

	// serve restarts on the same store.
	stop()
	addr, stderr2, _ := serveRestartable(t, env, "--store", store)
	base = "http://" + addr
	proxy.setBackend(addr)
	order("ord_restart")
	waitRows(8)

	// Exactly the log since the tail opened, in its order: compare with
	// the server's own pages of the log.
	var log []string
	for after := ""; ; {
		req, _ := http.NewRequest("GET", base+"/events?limit=1000"+after, nil)
		req.Header.Set("Authorization", "Bearer "+readSecret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Events []struct {
				Checkpoint string `json:"checkpoint"`
				StreamID   string `json:"stream_id"`
			} `json:"events"`
			Next string `json:"next"`
		}
		err = json.NewDecoder(res.Body).Decode(&page)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 0 {
			break
		}
		for _, e := range page.Events {
			if e.StreamID != "order-ord_before" {
				log = append(log, e.Checkpoint)
			}
		}
		after = "&after=" + page.Next
	}
	if len(log) != 8 {
		t.Fatalf("the log has %d events after the tail opened, want 8", len(log))
	}
	// A repeat or a late one would show within a moment: give it one.
	time.Sleep(300 * time.Millisecond)
	if got := rows(); !slices.Equal(got, log) {
		t.Errorf("tail rows (oldest first):\n%v\nwant the log since it opened:\n%v", got, log)
	}

	// A row opens its order's timeline at that event.
	step("click the first ord_cut row", chromedp.Click(chromedp.CSS(`#tail tbody tr[data-stream="order-ord_cut"][data-version="1"]`)))
	step("wait for its timeline", chromedp.WaitVisible(chromedp.CSS(`#timeline tbody tr.selected[data-version="1"]`)))
	if title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#order-title`))); err != nil || title != "ord_cut" {
		t.Errorf("order title %q (%v), want ord_cut", title, err)
	}
	if actor, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#tail tbody tr td.actor`))); err != nil || actor != "ops" {
		t.Errorf("actor of the newest row %q (%v), want ops", actor, err)
	}

	// The token travels in a header only: never in a URL the server logs.
	for _, w := range []*lockedWriter{stderr1, stderr2} {
		w.mu.Lock()
		logs := w.w.(*bytes.Buffer).String()
		w.mu.Unlock()
		if strings.Contains(logs, readSecret) || strings.Contains(logs, adminSecret) {
			t.Errorf("a token is in serve's log")
		}
	}
}
