//go:build !sqlite_cgo

package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

const diskFullEnv = "SQLITESTORE_TEST_DISKFULL_DIR"

// When the disk fills up while a group commit writes, SQLite rolls back the
// whole transaction, savepoints and all. Every append of that batch must
// then fail with the disk's error, which callers take for "unavailable,
// retry" (HTTP 503), never with the savepoint bookkeeping that fails after
// it ("no such savepoint", a plain SQL error: a 500). The disk is made full
// with RLIMIT_FSIZE in a child process (writes past the limit fail), so
// that no other test meets the limit. (The check reads the result codes of
// the default driver's errors.)
func TestDiskFullFailsWithTheDisksError(t *testing.T) {
	if dir := os.Getenv(diskFullEnv); dir != "" {
		diskFullChild(t, dir)
		return
	}
	runDiskFullChild(t, "TestDiskFullFailsWithTheDisksError")
}

// runDiskFullChild runs test again in a child process, with the
// environment that makes it the child.
func runDiskFullChild(t *testing.T, test string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// fillDisk opens a store in dir, appends a first event made by event, and
// limits the size of the files this process writes to a little above the
// store's; the returned func lifts the limit.
func fillDisk(t *testing.T, dir string, event func() []chronicle.Event) (*sqlitestore.Store, func()) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(dir, "chronicle.db")
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Append(ctx, "pad-0", chronicle.Any, event()); err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			size = max(size, fi.Size())
		}
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: uint64(size + 4<<20), Max: old.Max}); err != nil {
		t.Skipf("setrlimit(RLIMIT_FSIZE): %v", err)
	}
	return s, func() {
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
			t.Fatal(err)
		}
	}
}

func diskFullChild(t *testing.T, dir string) {
	ctx := context.Background()
	// Events large enough that a batch of them overflows SQLite's page
	// cache and spills to the WAL in the middle of a statement, not only
	// at commit.
	payload := `{"pad":"` + strings.Repeat("x", 400<<10) + `"}`
	event := func() []chronicle.Event {
		return []chronicle.Event{{Type: "Padded", Data: []byte(payload)}}
	}
	s, space := fillDisk(t, dir, event)

	var (
		mu     sync.Mutex
		failed = map[string]int{} // error text -> count
		wrong  []error
	)
	deadline := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				_, err := s.Append(ctx, fmt.Sprintf("pad-%d_%d", w, i), chronicle.NoStream, event())
				if err == nil {
					continue
				}
				var coded interface{ Code() int }
				mu.Lock()
				_, cause, _ := strings.Cut(err.Error(), ": ") // without "append STREAM"
				failed[cause]++
				if !errors.As(err, &coded) || (coded.Code()&0xff != 10 && coded.Code()&0xff != 13) { // SQLITE_IOERR, SQLITE_FULL
					wrong = append(wrong, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	space()
	if len(failed) == 0 {
		t.Fatal("no append failed with the file size limited: the test did not fill the disk")
	}
	for msg, n := range failed {
		t.Logf("%d appends failed: %s", n, msg)
	}
	for i, err := range wrong {
		if i == 5 {
			t.Errorf("... and %d more", len(wrong)-i)
			break
		}
		t.Errorf("append failed with %q, want the disk's error (SQLITE_IOERR or SQLITE_FULL)", err)
	}
	// Space is back: appends work again.
	if _, err := s.Append(ctx, "pad-after", chronicle.NoStream, event()); err != nil {
		t.Errorf("append once space returned: %v", err)
	}
}

// An append told that its event ids are already stored (a retry that came
// with other content, here another request id in the metadata, as an HTTP
// retry has) must find them stored: an append of the same ids decided in
// the same group commit, which then failed on the full disk, stored
// nothing. Answering DuplicateEventError then makes the retry a failure
// (HTTP 500) for events that do not exist, where "unavailable, retry" is
// right.
func TestDiskFullDuplicateOnlyOfStoredEvents(t *testing.T) {
	dir := os.Getenv(diskFullEnv)
	if dir == "" {
		runDiskFullChild(t, "TestDiskFullDuplicateOnlyOfStoredEvents")
		return
	}
	ctx := context.Background()
	payload := `{"pad":"` + strings.Repeat("x", 200<<10) + `"}`
	event := func(id, request string) []chronicle.Event {
		return []chronicle.Event{{ID: id, Type: "Padded", Data: []byte(payload), Metadata: []byte(`{"correlation_id":"` + request + `"}`)}}
	}
	s, space := fillDisk(t, dir, func() []chronicle.Event { return event("", "r0") })

	var (
		mu   sync.Mutex
		dups = map[string]error{} // event id -> the DuplicateEventError
		n    int
	)
	deadline := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				// A first attempt and its retry, the retry sent while the
				// first is still queued: both can land in one batch.
				stream, id := fmt.Sprintf("dup-%d_%d", w, i), chronicle.NewEventID()
				errs := make(chan error, 2)
				for _, request := range []string{"r1", "r2"} {
					go func() {
						_, err := s.Append(ctx, stream, chronicle.NoStream, event(id, request))
						errs <- err
					}()
				}
				for range 2 {
					if err := <-errs; errors.Is(err, chronicle.ErrDuplicateEvent) {
						mu.Lock()
						dups[id] = err
						mu.Unlock()
					}
				}
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	space()
	t.Logf("%d pairs of appends, %d answered duplicate", n, len(dups))
	bad := 0
	for id, err := range dups {
		if _, gerr := s.EventByID(ctx, id); errors.Is(gerr, chronicle.ErrNotFound) {
			if bad++; bad <= 5 {
				t.Errorf("append answered %q, but event %s is not stored", err, id)
			}
		} else if gerr != nil {
			t.Fatal(gerr)
		}
	}
	if bad > 5 {
		t.Errorf("... %d in all", bad)
	}
}
