package sqlitestore

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/chronicle-es/chronicle"
)

// Reader connections map as much of the file as Options.MmapSize says:
// the default, the size given, or none (always none with -tags sqlite_cgo).
func TestReaderMmapSize(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ opt, want int64 }{{0, DefaultMmapSize}, {1 << 20, 1 << 20}, {-1, 0}} {
		s, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"), Options{MmapSize: tc.opt})
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		if err := s.rdb.QueryRowContext(ctx, "PRAGMA mmap_size").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if driverName == "sqlite3" {
			tc.want = 0 // the cgo driver's DSN cannot set it (driver_mattn.go)
		}
		if got != tc.want {
			t.Errorf("MmapSize %d: a reader's mmap_size is %d, want %d", tc.opt, got, tc.want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A file larger than the mapping is read whole and in order: the pages
// past the mapped part are read with system calls, and the mapped part
// follows the file as it grows between reads.
func TestReadPastMapping(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"), Options{MmapSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := []byte(`{"customer_id":"cust_456","total":9999,"currency":"USD","shipping":"standard"}`)
	var cp chronicle.Checkpoint
	read := 0
	for i := range 20 {
		evs := make([]chronicle.Event, 100)
		for j := range evs {
			evs[j] = chronicle.Event{Type: "ItemAdded", Data: data}
		}
		if _, err := s.Append(ctx, "order-"+strconv.Itoa(i), chronicle.NoStream, evs); err != nil {
			t.Fatal(err)
		}
		// Into the file (readers read the WAL's pages without the
		// mapping), and read what is new after every append, so that
		// readers see the file grow under their mapping.
		if _, _, err := s.checkpoint(); err != nil {
			t.Fatal(err)
		}
		page, err := s.ReadAll(ctx, cp, chronicle.ReadAllOptions{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			read++
			if e.Position != int64(read) || e.StreamID != "order-"+strconv.Itoa(i) || string(e.Data) != string(data) {
				t.Fatalf("event %d: position %d, stream %s, data %s", read, e.Position, e.StreamID, e.Data)
			}
		}
		cp = page[len(page)-1].Checkpoint()
	}
	all, err := s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2000 || read != 2000 {
		t.Fatalf("read %d events page by page and %d at once, want 2000", read, len(all))
	}
	for i, e := range all {
		if e.Position != int64(i+1) {
			t.Fatalf("event %d has position %d", i, e.Position)
		}
	}
}
