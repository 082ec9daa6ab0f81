package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chronicle-es/chronicle/personal"
)

// Server is a running order service for W8.
type Server struct {
	Base string // http://127.0.0.1:port
	// PeakRSS returns the server's peak resident set in bytes (VmHWM).
	PeakRSS func() (int64, error)
	// InProcess: PeakRSS is the whole bench process, clients included.
	InProcess bool
	// Stop shuts the server down and waits for it.
	Stop func() error
}

// ServeFunc starts the order service on the store at storeURL, listening
// on loopback, and returns once it is ready. ctx bounds the starting only.
type ServeFunc func(ctx context.Context, storeURL string) (*Server, error)

// TempMasterKey writes a new master key to a temporary file for a server
// on a fresh store; remove removes the file.
func TempMasterKey() (path string, remove func(), err error) {
	f, err := os.CreateTemp("", "chronicle-bench-*.key")
	if err != nil {
		return "", nil, err
	}
	_, err = f.Write(personal.NewMasterKey())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	remove = func() { os.Remove(f.Name()) }
	if err != nil {
		remove()
		return "", nil, err
	}
	return f.Name(), remove, nil
}

// ChildServe returns a ServeFunc that runs "exe serve" as a child process
// (exe is the chronicle binary), so that its peak RSS is the server's
// alone. Auth is off: the child gets no CHRONICLE_TOKENS and listens on
// 127.0.0.1.
func ChildServe(exe string) ServeFunc {
	return func(ctx context.Context, storeURL string) (*Server, error) {
		key, removeKey, err := TempMasterKey()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(exe, "serve", "--addr", "127.0.0.1:0", "--store", storeURL, "--master-key", key, "--log-format", "json", "--log-level", "info")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CHRONICLE_TOKENS=") && !strings.HasPrefix(kv, "CHRONICLE_STORE=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		stop := func() error {
			defer removeKey()
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return cmd.Wait()
		}
		addrc := make(chan string, 1)
		var tail []string
		go func() {
			sc := bufio.NewScanner(stderr)
			sent := false
			for sc.Scan() {
				var rec struct{ Msg, Addr string }
				if !sent && json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
					addrc <- rec.Addr
					sent = true
				}
				if !sent {
					tail = append(tail, sc.Text())
				}
			}
			if !sent {
				close(addrc)
			}
		}()
		var addr string
		select {
		case a, ok := <-addrc:
			if !ok {
				stop()
				return nil, fmt.Errorf("serve exited before listening: %s", strings.Join(tail, "\n"))
			}
			addr = a
		case <-time.After(60 * time.Second):
			stop()
			return nil, errors.New("serve did not listen within 60s")
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		}
		s := &Server{Base: "http://" + addr, Stop: stop, PeakRSS: func() (int64, error) {
			return PeakRSS("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		}}
		if err := waitReady(ctx, s.Base); err != nil {
			stop()
			return nil, err
		}
		return s, nil
	}
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not ready within 60s (last: %v)", base, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// PeakRSS reads VmHWM, in bytes, from a /proc/<pid>/status file.
func PeakRSS(statusFile string) (int64, error) {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmHWM in " + statusFile)
}

// The W8 requests: an order of two items (total 9,999), paid, shipped.
const (
	createBody = `{"customer_id":"cust_456","currency":"USD","items":[{"sku":"SKU-1001","quantity":2,"unit_price":2500},{"sku":"SKU-2002","quantity":1,"unit_price":4999}]}`
	payBody    = `{"method":"card","amount":9999}`
	shipBody   = `{"carrier":"fedex","tracking":"FX123"}`
)

// W8: HTTP clients each run create -> pay -> ship on new orders against
// the service; an operation is one order, latencies are per request.
func (r *runner) w8() {
	if r.opts.Serve == nil {
		r.prog.line("W8 skipped: no way to start the server")
		return
	}
	for _, n := range r.clients(32) {
		// A fresh store and server each round: the peak RSS is the round's.
		r.jobs = append(r.jobs, job{workload: "W8", run: func(ctx context.Context, round int) (Result, error) {
			return r.w8Run(ctx, n, round)
		}})
	}
}

func (r *runner) w8Run(ctx context.Context, n, round int) (Result, error) {
	p, err := r.t.newPlace(ctx, fmt.Sprintf("w8_%d_r%d", n, round), true, 0)
	if err != nil {
		return Result{}, err
	}
	defer p.close()
	srv, err := r.opts.Serve(ctx, p.url)
	if err != nil {
		return Result{}, fmt.Errorf("start the server: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Stop()
		}
	}()
	tr := &http.Transport{MaxIdleConns: 2 * n, MaxIdleConnsPerHost: 2 * n, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	post := func(ctx context.Context, w *worker, path, body string, want int) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.Base+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		res, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		w.sub = append(w.sub, time.Since(t0))
		if err != nil {
			return nil, err
		}
		if res.StatusCode != want {
			return nil, fmt.Errorf("POST %s: %d: %s", path, res.StatusCode, bytes.TrimSpace(b))
		}
		return b, nil
	}
	res := measure(ctx, n, r.opts.Warmup, r.opts.Duration, func(ctx context.Context, w *worker) (int, error) {
		b, err := post(ctx, w, "/orders", createBody, http.StatusCreated)
		if err != nil {
			return 0, err
		}
		var created struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(b, &created); err != nil || created.OrderID == "" {
			return 0, fmt.Errorf("POST /orders: no order_id in %s", b)
		}
		if _, err := post(ctx, w, "/orders/"+created.OrderID+"/payments", payBody, http.StatusOK); err != nil {
			return 0, err
		}
		if _, err := post(ctx, w, "/orders/"+created.OrderID+"/shipments", shipBody, http.StatusOK); err != nil {
			return 0, err
		}
		return 3, nil // OrderCreated, PaymentReceived, OrderShipped
	}, nil)
	res.Workload, res.Case = "W8", "create+pay+ship"
	if srv.PeakRSS != nil {
		res.PeakRSS, err = srv.PeakRSS()
		if err != nil {
			res.Note = "peak RSS unavailable: " + err.Error()
		} else if srv.InProcess {
			res.Note = "in-process server: RSS includes the bench and its clients"
		}
	}
	stopped = true
	if err := srv.Stop(); err != nil && res.FirstError == "" {
		res.Errors++
		res.FirstError = "server stop: " + err.Error()
	}
	return res, nil
}
