//go:build !race

package sqlitestore_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// A catch-up reader's own allocations make the garbage collector run for
// its consumer too: a page of the global log allocates the events and
// their bytes once, not a second copy of each payload. (Not under -race,
// whose instrumentation allocates.)
func TestReadAllAllocations(t *testing.T) {
	s := openTemp(t, sqlitestore.Options{})
	ctx := context.Background()
	for i := range 10 {
		if _, err := s.Append(ctx, "order-"+strconv.Itoa(i), chronicle.NoStream, benchEvents(100)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() {
		evs, err := s.ReadAll(ctx, chronicle.Checkpoint{}, chronicle.ReadAllOptions{Limit: 1000})
		if err != nil || len(evs) != 1000 {
			t.Fatalf("ReadAll: %d events, %v", len(evs), err)
		}
	}
	read() // the reader connection opened, its statement cache warm
	// The least of a few reads: the store's checkpointer may allocate
	// during one of them.
	best := uint64(1 << 62)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		read()
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	// Per event: the RecordedEvent (~280 bytes), the 200-byte payload and
	// the 50-byte metadata, the id, stream and type, the two hashes, and
	// the driver's boxing of each value: ~810. Copying the payload and
	// metadata once more made it ~1,060.
	if perEvent := best / 1000; perEvent > 900 {
		t.Errorf("ReadAll allocated %d bytes per event, want at most 900", perEvent)
	}
}
