package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromium = "/usr/bin/chromium"

// startInProcess runs "chronicle serve" in this process on a free loopback
// port, on the store of env's CHRONICLE_STORE or else a temp SQLite file,
// with more flags if given, and returns its base URL. The server stops
// when t ends.
func startInProcess(t *testing.T, env map[string]string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &lockedWriter{w: &bytes.Buffer{}},
		Getenv: func(k string) string { return env[k] },
		Ready:  func(addr string) { addrc <- addr }}
	done := make(chan error, 1)
	args := []string{"serve", "--addr", "127.0.0.1:0"}
	if env["CHRONICLE_STORE"] == "" {
		args = append(args, "--store", tempStore(t))
	}
	args = append(args, flags...)
	go func() { done <- m.Run(ctx, args) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case addr := <-addrc:
		return "http://" + addr
	case err := <-done:
		done <- err // for the cleanup, which waits for serve to end
		t.Fatalf("serve exited before listening: %v", err)
	}
	return ""
}

func do(t *testing.T, method, url, body string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		var p map[string]any
		_ = json.NewDecoder(res.Body).Decode(&p)
		t.Fatalf("%s %s: %d %v", method, url, res.StatusCode, p)
	}
}

// TestConsoleInBrowser drives the web console in headless Chromium: search
// an order, click an event, and see what it changed.
func TestConsoleInBrowser(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed at %s in CI (scripts/test-deps installs it): %v", chromium, err)
		}
		t.Skipf("Debian's chromium is not installed at %s (apt-get install chromium; CI installs it): %v", chromium, err)
	}
	base := startInProcess(t, nil)
	do(t, "POST", base+"/orders", `{"order_id":"ord_console","customer_id":"cust_42","items":[{"sku":"SKU-1001","quantity":2,"unit_price":2500}]}`)
	do(t, "POST", base+"/orders/ord_console/items", `{"sku":"SKU-2002","quantity":1,"unit_price":4999}`)
	do(t, "PUT", base+"/orders/ord_console/shipping-address", `{"name":"Grace Hopper","line1":"1 Navy Way","city":"Arlington","postal_code":"22202","country":"US"}`)
	do(t, "POST", base+"/orders/ord_console/payments", `{"method":"card","amount":9999}`)

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
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	// The first action starts the browser, which lives as long as bctx.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	// A bound on the session, not a timing assertion: a hung browser fails
	// this test rather than the whole suite's timeout.
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()

	step := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, a); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return s
	}
	step("open the console", chromedp.Navigate(base+"/"))
	step("wait for the search box", chromedp.WaitVisible(chromedp.CSS(`#order-id`)))
	step("type the order id", chromedp.SendKeys(chromedp.CSS(`#order-id`), "ord_console"))
	step("search", chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)))
	step("wait for the timeline", chromedp.WaitVisible(chromedp.CSS(`#timeline tbody tr[data-version="4"]`)))
	title := text(`#order-title`)
	// Who did it: each event's row names its actor (auth is off here).
	actors, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#timeline tbody tr')).map(tr => (tr.querySelector('td.actor') || {}).textContent || "")`))
	if err != nil {
		t.Fatalf("browser: actors: %v", err)
	}
	if len(actors) != 4 {
		t.Errorf("timeline has %d rows, want 4", len(actors))
	}
	for i, a := range actors {
		if a != "anonymous" {
			t.Errorf("timeline row %d: actor %q, want anonymous", i+1, a)
		}
	}
	// v3 sets the address: its fields appear, without a bare "null" row.
	step("click v3", chromedp.Click(chromedp.CSS(`#timeline tbody tr[data-version="3"]`)))
	step("wait for the address diff", chromedp.WaitVisible(chromedp.CSS(`#diff tbody tr.added[data-path="shipping_address.city"]`)))
	bare, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#diff tbody tr[data-path="shipping_address"]').length`))
	if err != nil || bare != 0 {
		t.Errorf("diff of v3 has %d bare shipping_address rows (%v), want 0", bare, err)
	}
	// v2 is ItemAdded: the diff must show the new line and the new total.
	step("click v2", chromedp.Click(chromedp.CSS(`#timeline tbody tr[data-version="2"]`)))
	step("wait for v2 selected", chromedp.WaitVisible(chromedp.CSS(`#timeline tbody tr.selected[data-version="2"]`)))
	step("wait for the diff", chromedp.WaitVisible(chromedp.CSS(`#diff tbody tr.changed[data-path="total"]`)))
	diffText := text(`#diff tbody`)
	stateText := text(`#state`)
	diffRows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#diff tbody tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	// Projections and the status chart load on their own; wait for both so
	// the screenshot shows the whole page.
	step("wait for projections", chromedp.WaitVisible(chromedp.CSS(`#projections tbody tr[data-name="order_summaries"]`)))
	step("wait for the chart", chromedp.WaitVisible(chromedp.CSS(`#chart svg polyline`)))

	if title != "ord_console" {
		t.Errorf("order title %q", title)
	}
	for _, want := range []string{"total", "$50.00", "$99.99", "items[1].sku", "SKU-2002"} {
		if !strings.Contains(diffText, want) {
			t.Errorf("diff after v2 lacks %q:\n%s", want, diffText)
		}
	}
	if strings.Contains(diffText, "customer_id") {
		t.Errorf("diff after v2 lists an unchanged field:\n%s", diffText)
	}
	if !strings.Contains(stateText, `"version": 2`) {
		t.Errorf("state panel is not the state after v2:\n%s", stateText)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.TempDir(), "console.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d diff rows)", shot, diffRows)
	// To keep a copy past the test (t.TempDir is removed), name a file.
	if keep := os.Getenv("CHRONICLE_CONSOLE_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, png, 0o644); err != nil {
			t.Error(err)
		}
	}
}
