package torture

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/storeurl"
)

// The appender is this test binary run again as a child process: it appends
// batches of 1..5 events straight to a store and prints each acknowledged
// batch, until it is killed. HTTP commands append one event each; this is
// how the kill -9 scenario also kills multi-event appends half way.
const (
	envAppenderStore = "TORTURE_APPENDER_STORE"
	envAppenderName  = "TORTURE_APPENDER_NAME"
)

// batchMeta is the metadata of each event the appender writes.
type batchMeta struct {
	Batch string `json:"batch"`
	N     int    `json:"n"` // events in the batch
	I     int    `json:"i"` // this event's index in it
}

func runAppender() int {
	ctx := context.Background()
	s, err := storeurl.OpenURL(ctx, os.Getenv(envAppenderStore), storeurl.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "appender:", err)
		return 1
	}
	name := os.Getenv(envAppenderName)
	out := bufio.NewWriter(os.Stdout)
	for b := 0; ; b++ {
		stream := fmt.Sprintf("batch-%s_%d", name, rand.IntN(16))
		n := 1 + rand.IntN(5)
		batch := fmt.Sprintf("%s_%d", name, b)
		evs := make([]chronicle.Event, n)
		for i := range evs {
			meta, _ := json.Marshal(batchMeta{Batch: batch, N: n, I: i})
			evs[i] = chronicle.Event{Type: "TortureBatch", Data: json.RawMessage(`{"pad":"` + strings.Repeat("x", rand.IntN(2000)) + `"}`), Metadata: meta}
		}
		res, err := s.Append(ctx, stream, chronicle.Any, evs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "appender:", err)
			return 1
		}
		fmt.Fprintf(out, "%s %s %d %d\n", batch, stream, res.FirstVersion, res.LastVersion)
		out.Flush()
	}
}

// appender is a running appender child.
type appender struct {
	cmd   *exec.Cmd
	done  chan struct{}
	first chan struct{} // closed at the first acknowledged batch
	mu    sync.Mutex
	acks  map[string][3]any // batch -> stream, first, last
}

// startAppender spawns an appender on the store at url.
func startAppender(t testing.TB, url, name string) *appender {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a := &appender{cmd: exec.Command(exe), done: make(chan struct{}), first: make(chan struct{}), acks: map[string][3]any{}}
	a.cmd.Env = append(os.Environ(), envAppenderStore+"="+url, envAppenderName+"="+name)
	a.cmd.Stderr = os.Stderr
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var batch, stream string
			var first, last int64
			if _, err := fmt.Sscan(sc.Text(), &batch, &stream, &first, &last); err == nil {
				a.mu.Lock()
				if len(a.acks) == 0 {
					close(a.first)
				}
				a.acks[batch] = [3]any{stream, first, last}
				a.mu.Unlock()
			}
		}
		_ = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(a.kill)
	return a
}

func (a *appender) kill() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

func (a *appender) acked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acks)
}

// checkBatches reads every stream the appenders wrote: each batch present
// is whole (its n events, consecutive versions), and every acknowledged
// batch is present where it was acknowledged. It returns the number of
// batches found.
func checkBatches(t testing.TB, ctx context.Context, store chronicle.Store, acks map[string][3]any) int {
	t.Helper()
	waitReadable(t, ctx, store)
	type found struct {
		stream      string
		first, last int64
		n, count    int
	}
	batches := map[string]*found{}
	var from chronicle.Checkpoint
	for {
		evs, err := store.ReadAll(ctx, from, chronicle.ReadAllOptions{Limit: 1000, StreamTypes: []string{"batch"}})
		if err != nil {
			t.Fatalf("read log: %v", err)
		}
		if len(evs) == 0 {
			break
		}
		from = evs[len(evs)-1].Checkpoint()
		for _, e := range evs {
			var m batchMeta
			if err := json.Unmarshal(e.Metadata, &m); err != nil {
				t.Fatalf("event %s: metadata %s: %v", e.ID, e.Metadata, err)
			}
			f := batches[m.Batch]
			if f == nil {
				f = &found{stream: e.StreamID, first: e.Version, n: m.N}
				batches[m.Batch] = f
			}
			if e.StreamID != f.stream || e.Version != f.first+int64(m.I) {
				t.Errorf("batch %s: event %d at %s v%d, batch starts at %s v%d", m.Batch, m.I, e.StreamID, e.Version, f.stream, f.first)
			}
			f.count++
			f.last = max(f.last, e.Version)
		}
	}
	for name, f := range batches {
		if f.count != f.n {
			t.Errorf("batch %s: %d of its %d events visible (HALF-VISIBLE APPEND)", name, f.count, f.n)
		}
	}
	for name, a := range acks {
		f := batches[name]
		if f == nil {
			t.Errorf("acknowledged batch %s (%v v%d..v%d) is missing (LOST)", name, a[0], a[1], a[2])
			continue
		}
		if f.stream != a[0] || f.first != a[1] || f.last != a[2] {
			t.Errorf("batch %s acknowledged at %v v%d..v%d, stored at %s v%d..v%d", name, a[0], a[1], a[2], f.stream, f.first, f.last)
		}
	}
	return len(batches)
}
