package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle"
)

// Commits do not checkpoint the WAL (wal_autocheckpoint=0); the background
// checkpointer does, so the WAL stays bounded under a steady stream of
// appends instead of growing with everything written.
func TestBackgroundCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ck.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var auto int
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("writer wal_autocheckpoint = %d, %v; want 0", auto, err)
	}
	// ~40 MiB of events in appends of 64 KiB: without checkpoints the WAL
	// would hold all of it.
	data := json.RawMessage(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
	evs := make([]chronicle.Event, 64)
	for i := range evs {
		evs[i] = chronicle.Event{Type: "Padded", Data: data}
	}
	const appends = 640
	var maxWAL int64
	for i := range appends {
		for j := range evs {
			evs[j].ID = ""
		}
		if _, err := s.Append(ctx, fmt.Sprintf("pad-%d", i), chronicle.NoStream, evs); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			maxWAL = max(maxWAL, fi.Size())
		}
	}
	written := int64(appends * len(evs) * len(data))
	if s.checkpoints.Load() == 0 {
		t.Fatal("the checkpointer never ran")
	}
	if maxWAL > written/2 {
		t.Fatalf("WAL reached %d bytes for %d bytes of events: not checkpointed", maxWAL, written)
	}
	t.Logf("WAL at most %d bytes for %d bytes of events; %d checkpoints", maxWAL, written, s.checkpoints.Load())
}

// Events are written at the store's synchronous level (FULL by default);
// read-model writes at NORMAL, whose frames the next durable append syncs.
func TestReadModelsCommitAtNormal(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "sync.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		db   interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}
		want int // 1 NORMAL, 2 FULL
	}{{"writer", s.wdb, 2}, {"SQLDB", s.SQLDB(), 1}} {
		var got int
		if err := c.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil || got != c.want {
			t.Errorf("%s: synchronous = %d, %v; want %d", c.name, got, err, c.want)
		}
	}
}
