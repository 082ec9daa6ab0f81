package main

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeEndsEventStreams: shutting serve down ends the feed's event
// streams at once; without that, Shutdown would wait for them until its
// timeout.
func TestServeEndsEventStreams(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	var stderr bytes.Buffer
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &lockedWriter{w: &stderr}, Getenv: func(string) string { return "" },
		Ready: func(addr string) { addrc <- addr }}
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--store", tempStore(t), "--feed-heartbeat", "50ms"})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve exited before listening: %v", err)
	}
	r, _ := http.NewRequest("GET", "http://"+addr+"/events", nil)
	r.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), ":") {
	}
	if sc.Err() != nil {
		t.Fatalf("no heartbeat: %v", sc.Err())
	}
	cancel() // as SIGTERM does
	start := time.Now()
	for sc.Scan() {
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve still running 20 s after shutdown began")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %s with a stream open", d)
	}
}
