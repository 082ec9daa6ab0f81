package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestBaselineSQLite runs W1-W5 with the baseline on SQLite at tiny
// sizes: every workload gets a plain row beside chronicle's, without
// errors, with a ratio, and the plain readers read what was written.
func TestBaselineSQLite(t *testing.T) {
	dir := t.TempDir()
	rep, err := Run(context.Background(), Options{
		Store:     "sqlite://" + filepath.Join(dir, "b.db"),
		Workloads: []string{"W1", "W2", "W3", "W4", "W5"},
		Clients:   []int{1, 4},
		Events:    2000,
		Streams:   10, // few streams: W2's clients collide, and conflicts must not count as errors
		Warmup:    50 * time.Millisecond,
		// A W4 read (1,000 events, decoded) took over 200 ms under -race
		// on a loaded CI machine: none ended inside such a window, so
		// chronicle's row had no p50 and the plain row no ratio.
		Duration: time.Second,
		Rounds:   1,
		Baseline: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	plain := map[string]bool{}
	for _, row := range rep.Rows {
		name := row.Workload + " " + row.System
		if row.Errors != 0 {
			t.Errorf("%s, %d clients: %d errors, first: %s", name, row.Clients, row.Errors, row.FirstError)
		}
		if row.Rounds[0].Total == 0 {
			t.Errorf("%s, %d clients: no operation succeeded", name, row.Clients)
		}
		if row.System != "plain" {
			continue
		}
		plain[row.Workload] = true
		if row.Ratio == nil || row.Ratio.Median <= 0 {
			t.Errorf("%s, %d clients: no ratio", name, row.Clients)
		}
		switch row.Workload {
		case "W2":
			t.Logf("W2 plain, %d clients: %d conflicts", row.Clients, row.Conflicts)
		case "W3":
			if res := row.Rounds[0]; res.Events != plainBatch*res.Ops {
				t.Errorf("W3 plain: %d events in %d batches, want %d each", res.Events, res.Ops, plainBatch)
			}
		case "W4":
			if res := row.Rounds[0]; res.Events != streamLen*res.Ops {
				t.Errorf("W4 plain: %d events in %d reads, want %d each", res.Events, res.Ops, streamLen)
			}
		case "W5":
			if got := row.Rounds[0].Events; got != 2000 {
				t.Errorf("W5 plain: read %d events, want 2,000", got)
			}
		}
	}
	for _, w := range []string{"W1", "W2", "W3", "W4", "W5"} {
		if !plain[w] {
			t.Errorf("no plain row for %s", w)
		}
	}
	var out bytes.Buffer
	WriteText(&out, rep)
	if !regexp.MustCompile(`(?m)^sqlite: [0-9,]+ commits/s .* of the plain INSERT from 1 client \(W1\)$`).Match(out.Bytes()) {
		t.Errorf("no sqlite commit rate line in the report:\n%s", out.String())
	}
	// The plain files went with the run's directory.
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("bench left %v", left)
	}
}

// TestPlainSQLiteDurable: the plain table's file is in WAL mode, its one
// writer connection commits at the run's synchronous level (FULL unless
// the URL says otherwise), and the readers read in WAL too.
func TestPlainSQLiteDurable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		sync string
		want int // PRAGMA synchronous: 1 NORMAL, 2 FULL, 3 EXTRA
	}{{"", 2}, {"NORMAL", 1}, {"extra", 3}} {
		p, err := openSQLitePlain(ctx, filepath.Join(t.TempDir(), "w1-plain.db"), tc.sync, 3, true)
		if err != nil {
			t.Fatal(err)
		}
		defer p.close()
		var mode, readMode string
		var sync int
		if err := p.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := p.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&readMode); err != nil {
			t.Fatal(err)
		}
		if err := p.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || readMode != "wal" || sync != tc.want {
			t.Errorf("synchronous %q: journal_mode %q (readers %q), synchronous %d, want wal, wal, %d", tc.sync, mode, readMode, sync, tc.want)
		}
		if got := p.w.Stats().MaxOpenConnections; got != 1 {
			t.Errorf("synchronous %q: %d writer connections, want 1", tc.sync, got)
		}
	}
}

// TestPlainSQLiteConflict: when another writer takes the version that W2's
// plain command read as next (a trigger plays it), the command fails with
// errPlainConflict; without one it succeeds at the next version.
func TestPlainSQLiteConflict(t *testing.T) {
	ctx := context.Background()
	p, err := openSQLitePlain(ctx, filepath.Join(t.TempDir(), "w2-plain.db"), "NORMAL", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if err := p.createEach(ctx, []string{"calm", "raced"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.w.ExecContext(ctx, `CREATE TRIGGER other_writer BEFORE INSERT ON order_events
WHEN NEW.order_id = 'raced' AND NEW.id != 'other'
BEGIN
	INSERT INTO order_events (id, order_id, event_type, version, data) VALUES ('other', NEW.order_id, 'ItemAdded', NEW.version, '{}');
END`); err != nil {
		t.Fatal(err)
	}
	if err := p.command(ctx, "raced"); !errors.Is(err, errPlainConflict) {
		t.Errorf("command on a raced stream: %v, want errPlainConflict", err)
	}
	if err := p.command(ctx, "calm"); err != nil {
		t.Errorf("command on a calm stream: %v", err)
	}
	var v int
	if err := p.r.QueryRowContext(ctx, "SELECT max(version) FROM order_events WHERE order_id = 'calm'").Scan(&v); err != nil || v != 2 {
		t.Errorf("calm stream at version %d (%v), want 2", v, err)
	}
}
