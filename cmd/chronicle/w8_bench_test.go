package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle-es/chronicle/internal/proccpu"
)

// BenchmarkW8 runs W8 (32 clients, create -> pay -> ship over HTTP) against
// serve inside the test process, b.N orders in all, and reports the CPU
// time of the whole process (server and clients) per order: on a shared
// machine that figure holds where orders/s swings. The server logs as bench's
// child does (JSON at info, to a pipe that is drained); W8_LOG_LEVEL
// overrides the level. CHRONICLE_W8_STORE picks another store (a postgres
// URL); the default is a fresh SQLite file.
//
//	go test -run '^$' -bench W8 -benchtime 5000x -cpuprofile cpu.out ./cmd/chronicle
func BenchmarkW8(b *testing.B) {
	store := os.Getenv("CHRONICLE_W8_STORE")
	if store == "" {
		store = "sqlite://" + filepath.Join(b.TempDir(), "w8.db")
	}
	level := os.Getenv("W8_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, pr); close(drained) }()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	sm := &Main{Stdout: io.Discard, Stderr: pw, Getenv: func(string) string { return "" },
		Ready: func(addr string) { addrc <- addr }}
	done := make(chan error, 1)
	go func() {
		done <- sm.Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--store", store, "--log-format", "json", "--log-level", level})
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case err := <-done:
		b.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		pw.Close()
		<-drained
	}()

	const clients = 32
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	post := func(path, body string, want int) ([]byte, error) {
		res, err := client.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		out, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil && res.StatusCode != want {
			err = fmt.Errorf("POST %s: %d: %s", path, res.StatusCode, out)
		}
		return out, err
	}
	order := func() error {
		out, err := post("/orders", `{"customer_id":"cust_456","currency":"USD","items":[{"sku":"SKU-1001","quantity":2,"unit_price":2500},{"sku":"SKU-2002","quantity":1,"unit_price":4999}]}`, http.StatusCreated)
		if err != nil {
			return err
		}
		var created struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(out, &created); err != nil {
			return err
		}
		if _, err := post("/orders/"+created.OrderID+"/payments", `{"method":"card","amount":9999}`, http.StatusOK); err != nil {
			return err
		}
		_, err = post("/orders/"+created.OrderID+"/shipments", `{"carrier":"fedex","tracking":"FX123"}`, http.StatusOK)
		return err
	}
	run := func(n int64) error {
		var left atomic.Int64
		left.Store(n)
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for range clients {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					if err := order(); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	// Warm up: connections, caches, the projections' first batches.
	if err := run(500); err != nil {
		b.Fatal(err)
	}
	cpu0 := proccpu.Used()
	b.ResetTimer()
	if err := run(int64(b.N)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := proccpu.Used() - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/order")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}
