package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedWriter lets goroutines of serve log while the test reads.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// buildBinary builds cmd/chronicle once per test that needs a real process.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH: cannot build the binary to spawn")
	}
	bin := filepath.Join(t.TempDir(), "chronicle")
	// Same settings as the test binary's own build, so the build cache
	// serves nearly all of it.
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServe spawns "chronicle serve" on a free loopback port and returns
// its base URL once /readyz answers 200, and a function that stops it with
// SIGTERM and returns its exit error.
func startServe(t *testing.T, bin string, env []string, args ...string) (base string, stop func() error) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stopped bool
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return cmd.Wait()
	}
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	// The address comes from the "listening" log line; the rest of the log
	// is kept for failure messages.
	addrc := make(chan string, 1)
	var logMu sync.Mutex
	var logLines []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			logLines = append(logLines, line)
			logMu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addrc <- rec.Addr
			}
		}
		close(addrc)
	}()
	deadline := time.After(60 * time.Second)
	var addr string
	select {
	case a, ok := <-addrc:
		if !ok {
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("serve exited before listening:\n%s", strings.Join(logLines, "\n"))
		}
		addr = a
	case <-deadline:
		t.Fatal("serve did not log its address within 60s")
	}
	base = "http://" + addr
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return base, stop
			}
		}
		select {
		case <-deadline:
			t.Fatalf("/readyz not 200 within 60s (last: %v)", err)
		case <-time.After(50 * time.Millisecond): // polling with a deadline
		}
	}
}

// TestServeAndTimelineProcesses runs serve as a real process on a SQLite
// file and reads an order's timeline from a second process meanwhile: the
// way people debug a live system.
func TestServeAndTimelineProcesses(t *testing.T) {
	bin := buildBinary(t)
	store := tempStore(t)
	base, stop := startServe(t, bin, nil, "--store", store)

	orderID := createOrderOverHTTP(t, base)

	out, err := exec.CommandContext(context.Background(), bin, "timeline", orderID, "--store", store).CombinedOutput()
	if err != nil {
		t.Fatalf("timeline while serve runs: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), orderID+":\n  v1 OrderCreated {customer: cust_live") {
		t.Errorf("timeline while serve runs:\n%s", out)
	}
	if err := stop(); err != nil {
		t.Errorf("serve after SIGTERM: %v (want exit 0)", err)
	}
}

// createOrderOverHTTP creates an order through the running server.
func createOrderOverHTTP(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Post(base+"/orders", "application/json",
		strings.NewReader(`{"customer_id":"cust_live","items":[{"sku":"SKU-1","quantity":2,"unit_price":1250}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		OrderID string `json:"order_id"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: %d, %v", res.StatusCode, err)
	}
	return body.OrderID
}
