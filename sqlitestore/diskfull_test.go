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
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullFailsWithTheDisksError$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func diskFullChild(t *testing.T, dir string) {
	ctx := context.Background()
	path := filepath.Join(dir, "chronicle.db")
	s, err := sqlitestore.Open(ctx, path, sqlitestore.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Events large enough that a batch of them overflows SQLite's page
	// cache and spills to the WAL in the middle of a statement, not only
	// at commit.
	payload := `{"pad":"` + strings.Repeat("x", 400<<10) + `"}`
	event := func() []chronicle.Event {
		return []chronicle.Event{{Type: "Padded", Data: []byte(payload)}}
	}
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
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
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
