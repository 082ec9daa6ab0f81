package torture

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// boundedWait bounds every wait of the suite: start-up, catch-up, verify.
// It is a deadline against hangs, never a performance assertion.
const boundedWait = 2 * time.Minute

// server is a spawned `chronicle serve` process.
type server struct {
	t    testing.TB
	cmd  *exec.Cmd
	base string // http://127.0.0.1:port
	done chan struct{}
	// err is the process's exit error, set before done closes.
	err error

	mu   sync.Mutex
	tail []string // last lines of its log, for failure messages
	// errs are its first error lines: the tail of a busy server's log has
	// long lost the one that explains a failure.
	errs  []string
	races int  // "WARNING: DATA RACE" reports
	panic bool // a "panic:" line
	// sealing is whether its log last said it took the sealing lease (and
	// not that it released it since).
	sealing bool
	// rebuilt are its "projection: rebuilt" lines: each says how long a
	// rebuild's swap took.
	rebuilt []string
}

// startServer spawns `chronicle serve` on a free loopback port with the
// store at url, and returns once /readyz answers 200. The process is killed
// when t ends if it still runs.
func startServer(t testing.TB, url string, env ...string) *server {
	t.Helper()
	return startServerArgs(t, url, nil, env...)
}

// startServerArgs is startServer with more arguments to serve.
func startServerArgs(t testing.TB, url string, args []string, env ...string) *server {
	t.Helper()
	s := &server{t: t, done: make(chan struct{})}
	argv := append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json", "--store", url}, args...)
	s.cmd = exec.Command(binary(t), argv...)
	s.cmd.Env = append(os.Environ(), append([]string{"GORACE=halt_on_error=0"}, env...)...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.kill()
		s.checkLog()
	})
	addrc := make(chan string, 1)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.line(sc.Text(), addrc)
		}
	}()
	go func() {
		<-logged // all output read before Wait closes the pipe
		err := s.cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.done)
	}()
	deadline := time.After(boundedWait)
	select {
	case addr := <-addrc:
		s.base = "http://" + addr
	case <-s.done:
		t.Fatalf("serve exited before listening: %v\n%s", s.exitErr(), s.log())
	case <-deadline:
		t.Fatalf("serve did not listen within %v\n%s", boundedWait, s.log())
	}
	for {
		res, err := http.Get(s.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("serve exited before ready: %v\n%s", s.exitErr(), s.log())
		case <-deadline:
			t.Fatalf("/readyz not 200 within %v (last: %v)\n%s", boundedWait, err, s.log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *server) line(l string, addrc chan<- string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tail) == 200 {
		s.tail = s.tail[1:]
	}
	s.tail = append(s.tail, l)
	if len(s.errs) < 50 && strings.Contains(l, `"level":"ERROR"`) {
		s.errs = append(s.errs, l)
	}
	if strings.Contains(l, "WARNING: DATA RACE") {
		s.races++
	}
	if strings.Contains(l, `"msg":"projection: rebuilt"`) {
		s.rebuilt = append(s.rebuilt, l)
	}
	if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
		s.panic = true
	}
	var rec struct{ Msg, Addr string }
	if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &rec) == nil {
		switch rec.Msg {
		case "listening":
			select {
			case addrc <- rec.Addr:
			default:
			}
		case "seal: sealing lease taken":
			s.sealing = true
		case "seal: sealing lease released":
			s.sealing = false
		}
	}
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) == 0 {
		return strings.Join(s.tail, "\n")
	}
	return "first error lines:\n" + strings.Join(s.errs, "\n") + "\nlast lines:\n" + strings.Join(s.tail, "\n")
}

// rebuiltLines returns its "projection: rebuilt" lines so far.
func (s *server) rebuiltLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rebuilt)
}

func (s *server) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// alive reports whether the process still runs.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	if s.alive() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-s.done
}

// stop asks for a graceful shutdown (SIGTERM) and fails the test unless the
// process exits 0 in time.
func (s *server) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if err := s.exitErr(); err != nil {
			s.t.Errorf("serve after SIGTERM: %v (want exit 0)\n%s", err, s.log())
		}
	case <-time.After(boundedWait):
		s.t.Errorf("serve did not stop within %v of SIGTERM", boundedWait)
		s.kill()
	}
	s.checkLog()
}

// isSealing reports whether the process holds the sealing lease, by its log.
func (s *server) isSealing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealing
}

// checkLog fails the test on a data race or a panic in the server's log.
func (s *server) checkLog() {
	s.mu.Lock()
	races, panicked := s.races, s.panic
	s.races, s.panic = 0, false
	s.mu.Unlock()
	if races > 0 || panicked {
		s.t.Errorf("serve reported %d data races, panic=%v:\n%s", races, panicked, s.log())
	}
}

// getJSON GETs path and decodes a 200 answer into v.
func (s *server) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}
