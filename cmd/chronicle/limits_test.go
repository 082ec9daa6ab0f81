package main

import (
	"bufio"
	"net"
	"net/http"
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
