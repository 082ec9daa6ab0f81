package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/internal/pgcluster"
)

func TestServeReplicaUsage(t *testing.T) {
	c := newCLI(t, nil)
	store := tempStore(t)
	for _, args := range [][]string{
		{"serve", "--store", store, "--replica", "postgres://127.0.0.1:1/x"},
		{"serve", "--store", store, "--replica-max-lag", "0s"},
	} {
		_, stderr, code := c.run(args...)
		if code != 2 || stderr == "" {
			t.Errorf("chronicle %s: exit %d, stderr %q; want 2 and a reason", strings.Join(args, " "), code, stderr)
		}
	}
	if _, err := os.Stat(strings.TrimPrefix(store, "sqlite://")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused serve created the SQLite store: %v", err)
	}
}

// TestServeWithReplica: serve --replica on a real streaming standby sends
// reads there once it is caught up, and shows it in /metrics.
func TestServeWithReplica(t *testing.T) {
	primary, err := pgcluster.StartPrimary()
	if err == nil {
		t.Cleanup(primary.Remove)
	}
	var standby *pgcluster.Cluster
	if err == nil {
		standby, err = primary.StartStandby()
	}
	if err != nil {
		if errors.Is(err, pgcluster.ErrUnavailable) && os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(standby.Remove)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	var stderr bytes.Buffer
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &lockedWriter{w: &stderr}, Getenv: func(string) string { return "" },
		Ready: func(addr string) { addrc <- addr }}
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--store", primary.URL(), "--master-key", masterKeyFile(t),
			"--replica", standby.URL(), "--replica-max-lag", "2s"})
	}()
	var base string
	select {
	case addr := <-addrc:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("serve exited before listening: %v\n%s", err, stderr.String())
	}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, err := http.Post(base+"/orders", "application/json", strings.NewReader(`{"order_id":"ord_1","customer_id":"cust_1","items":[{"sku":"A","quantity":1,"unit_price":100}]}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || res.Header.Get("X-Chronicle-Source") != "primary" {
		t.Fatalf("POST /orders: %d, source %q", res.StatusCode, res.Header.Get("X-Chronicle-Source"))
	}
	// The standby is taken once a check found it caught up.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, body := get("/orders/ord_1?min_version=1")
		if res.StatusCode != 200 {
			t.Fatalf("GET: %d %s", res.StatusCode, body)
		}
		if res.Header.Get("X-Chronicle-Source") == "replica" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads still on the primary after 60 s\n%s", stderr.String())
		}
	}
	_, metrics := get("/metrics")
	for _, want := range []string{`chronicle_reads_total{source="replica"}`, `chronicle_replica_usable{replica="127.0.0.1:`, `chronicle_replica_lag_seconds{replica="127.0.0.1:`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after shutdown: %v", err)
	}
}
