package torture

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSQLiteDiskFull runs chronicle serve on SQLite under load, then takes
// the disk away from it: the kernel refuses the server's writes past the
// current end of its files, as on a full disk. That is done with
// RLIMIT_FSIZE set on the running process with prlimit(2) (writes past the
// limit fail with EFBIG; Go ignores the SIGXFSZ that comes with them).
// Neither chmod nor a read-only directory stops root, mount and chattr
// need privileges a CI container lacks, and a wrapped VFS would not be the
// real server: a resource limit is real, unprivileged for one's own
// children, and reversible, so "space returns" is the limit lifted.
//
// While full: commands fail with an answer (no hang, no crash), nothing is
// half-written, the server logs a clear cause. After: the same commands,
// retried with their Idempotency-Key, land exactly once, the projections
// catch up, the database passes PRAGMA integrity_check and `chronicle
// verify` exits 0.
func TestSQLiteDiskFull(t *testing.T) {
	full := 2 * time.Second
	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(dir, "chronicle.db")
	srv := startServer(t, url)
	led := newLedger()
	clients := newClients(8, "f", led, uint64(time.Now().UnixNano()), true)
	load := func(d time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		runClients(ctx, clients, srv.base)
	}
	load(time.Second)
	before := led.acked()

	// The limit: a little above the database file now. The WAL grows
	// until it reaches the limit, and no checkpoint can empty it since the
	// database file cannot grow either: the disk stays full.
	fi, err := os.Stat(filepath.Join(dir, "chronicle.db"))
	if err != nil {
		t.Fatal(err)
	}
	largest := fi.Size()
	pid := srv.cmd.Process.Pid
	limit := uint64(largest + 16<<10)
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: limit, Max: unix.RLIM_INFINITY}, nil); err != nil {
		t.Skipf("prlimit(RLIMIT_FSIZE) on the server: %v", err)
	}
	load(full)
	var failed, answered int
	led.count(func(l *ledger) {
		for code, n := range l.codes {
			failed += n
			if code != 503 {
				t.Errorf("%d commands answered %d while the disk was full (want 503: the store cannot write now, retry)\n%s", n, code, srv.log())
			}
		}
		if l.timeouts > 0 || l.transport > 0 {
			t.Errorf("while the disk was full: %d timeouts, %d requests without answer", l.timeouts, l.transport)
		}
		answered = len(l.acks) - before
	})
	if failed == 0 {
		t.Fatalf("no command failed with the file size limited to %d bytes (%d acknowledged meanwhile)", limit, answered)
	}
	if !srv.alive() {
		t.Fatalf("serve died on a full disk: %v\n%s", srv.exitErr(), srv.log())
	}
	if log := srv.log(); !strings.Contains(log, "too large") && !strings.Contains(log, "full") && !strings.Contains(log, "I/O") {
		t.Errorf("the server log does not say why writes fail:\n%s", log)
	}
	for _, l := range strings.Split(srv.log(), "\n") {
		if strings.Contains(l, `"status":5`) || strings.Contains(l, "ERROR") {
			t.Logf("while full: %s", l)
			break
		}
	}
	var ready struct{ Status string }
	_ = srv.getJSON(context.Background(), "/readyz", &ready)

	// Space returns.
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}, nil); err != nil {
		t.Fatal(err)
	}
	mark := led.acked()
	load(2 * time.Second)
	if led.acked() == mark {
		t.Fatalf("no command acknowledged once space returned\n%s", srv.log())
	}
	// Finish every plan in flight, so that each failed command has been
	// retried to success.
	waitProjections(t, srv, led, 0)
	ctx := context.Background()
	store := openStore(t, url)
	events := checkLedger(t, ctx, store, led)
	checkLog(t, ctx, store)
	var integrity string
	if err := store.SQLDB().QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check: %q, %v", integrity, err)
	}
	waitReady(t, srv)
	verify(t, url)
	srv.stop()
	led.count(func(l *ledger) {
		t.Logf("RESULT diskfull: fsize_limit=%d failed_while_full=%d acknowledged_while_full=%d statuses=%v readyz_while_full=%q commands_acknowledged=%d events=%d lost=0 half_written=0",
			limit, failed, answered, l.codes, ready.Status, len(l.acks), events)
	})
}

// waitReady waits until /readyz answers 200: readiness comes back by itself
// once the store can write again, though not necessarily at the instant the
// test looks (a projection may still be backing off from its last failed
// commit). A projection stopped at an event would keep it 503 for ever.
func waitReady(t testing.TB, s *server) {
	t.Helper()
	deadline := time.Now().Add(boundedWait)
	for {
		res, err := http.Get(s.base + "/readyz")
		var last string
		if err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			last = res.Status + " " + string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not ready within %v: %s\n%s", boundedWait, last, s.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
