package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesHugeHeaders: a request line or header block beyond
// maxHeaderBytes is refused before any handler sees it, so a 200 KB method
// name reaches neither the logs nor /metrics.
func TestServeRefusesHugeHeaders(t *testing.T) {
	base := startInProcess(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	method := strings.Repeat("M", 200<<10)
	if _, err := conn.Write([]byte(method + " /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 200 KB method: status %d, want 431", res.StatusCode)
	}
}

// TestServeCutsSlowClients: clients that trickle a request hold neither a
// connection nor a goroutine past --read-timeout (the body) or
// --read-header-timeout (the headers); beyond --max-conns a new client
// waits, and is served once the tricklers are cut.
func TestServeCutsSlowClients(t *testing.T) {
	const maxConns = 8
	base := startInProcess(t, nil, "--read-timeout", "3s", "--read-header-timeout", "3s", "--max-conns", strconv.Itoa(maxConns))
	addr := strings.TrimPrefix(base, "http://")
	client := &http.Client{Transport: &http.Transport{}}
	get(t, client, base+"/readyz")
	client.CloseIdleConnections()
	baseline := runtime.NumGoroutine()

	// Each trickler is served one request first, so that it surely holds
	// one of the connections the server accepted.
	var conns []net.Conn
	for i := range maxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if i == 0 {
			fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: 127.0") // the headers trickle
		} else {
			fmt.Fprint(c, "POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		}
		go func() {
			for {
				time.Sleep(50 * time.Millisecond)
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}()
		conns = append(conns, c)
	}

	// A well-behaved client now waits for a free connection...
	good, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	fmt.Fprint(good, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	gr := bufio.NewReader(good)
	_ = good.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	if _, err := gr.Peek(1); err == nil {
		t.Errorf("a client beyond --max-conns %d was served while the tricklers held them all", maxConns)
	}
	// ... and is served once the tricklers are cut.
	_ = good.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(gr, nil)
	if err != nil {
		t.Fatalf("the well-behaved client: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("the well-behaved client: status %d", res.StatusCode)
	}
	good.Close()

	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("trickler %d still connected after 30 s", i)
		}
		c.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > baseline+5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the tricklers were cut, %d before them", runtime.NumGoroutine(), baseline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, c *http.Client, url string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
}
