package httpapi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// dialRaw opens a TCP connection to the test server at base.
func dialRaw(t *testing.T, base string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle sends the headers of a request whose 1000-byte body then comes
// one byte every 50 ms, until a write fails.
func trickle(c net.Conn, path string) {
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", path)
	go func() {
		for {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
}

// waitClosed reads c until the server closes it; it fails t when that
// takes longer than within.
func waitClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still holds the connection after %s", within)
	}
}

// waitGoroutines waits until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowClientsAreCut: with the timeouts cmd/chronicle sets, a body
// that trickles in is cut after http.Server.ReadTimeout and a client that
// does not read its response after WriteTimeout, so neither holds a
// connection and its goroutine; an answer that comes after a wait longer
// than WriteTimeout (a rebuild's ?wait=true) still reaches its client.
func TestSlowClientsAreCut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	writeErr := make(chan error, 1)
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for i := 0; i < 4096; i++ { // 256 MiB: more than any socket buffers
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	})
	proj := newFakeProjections()
	srv := newFakeServer(t, Options{Projections: proj, Console: big, WriteTimeout: timeout})
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ReadTimeout = timeout // as cmd/chronicle sets them
	ts.Config.WriteTimeout = timeout
	ts.Start()
	defer ts.Close()
	doHTTP(t, ts.URL, req{method: "GET", path: "/healthz"})
	http.DefaultClient.CloseIdleConnections()
	baseline := runtime.NumGoroutine()

	t.Run("trickling bodies", func(t *testing.T) {
		var conns []net.Conn
		for _, path := range []string{"/orders", "/orders/o1/cancellation", "/orders/o1/items"} {
			c := dialRaw(t, ts.URL)
			trickle(c, path)
			conns = append(conns, c)
		}
		for _, c := range conns {
			waitClosed(t, c, 20*time.Second)
		}
	})

	t.Run("response not read", func(t *testing.T) {
		c := dialRaw(t, ts.URL)
		fmt.Fprintf(c, "GET /console/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		select {
		case err := <-writeErr:
			if err == nil {
				t.Fatal("256 MiB written to a client that reads nothing")
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the server still writes to a client that reads nothing")
		}
		waitClosed(t, c, 20*time.Second)
	})

	t.Run("long wait", func(t *testing.T) {
		done := make(chan resp, 1)
		go func() {
			r, err := tryHTTP(ts.URL, req{method: "POST", path: "/projections/order_summaries/rebuild?wait=true"})
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		<-proj.started
		time.Sleep(3 * timeout) // the rebuild outlasts the write timeout
		close(proj.release)
		if r := <-done; r.status != http.StatusOK {
			t.Errorf("rebuild?wait=true that took %s: %d %s", 3*timeout, r.status, r.body)
		}
	})

	http.DefaultClient.CloseIdleConnections()
	waitGoroutines(t, baseline+2)
}

// TestReadTimeoutLeavesWaitsAlone: http.Server.ReadTimeout ends once the
// body is read, so a handler that then waits longer is neither cancelled
// nor cut: what lets cmd/chronicle bound bodies with it.
func TestReadTimeoutLeavesWaitsAlone(t *testing.T) {
	const timeout = 300 * time.Millisecond
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
		case <-time.After(3 * timeout):
			_, _ = io.WriteString(w, "waited")
		}
	})
	ts := httptest.NewUnstartedServer(newFakeServer(t, Options{Console: slow, WriteTimeout: timeout}))
	ts.Config.ReadTimeout = timeout
	ts.Config.WriteTimeout = timeout
	ts.Start()
	defer ts.Close()
	c := dialRaw(t, ts.URL)
	fmt.Fprintf(c, "GET /console/wait HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200: %s", res.StatusCode, b)
	}
}
