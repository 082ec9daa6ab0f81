package seal_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/audit"
	"github.com/chronicle-es/chronicle/seal"
	"github.com/chronicle-es/chronicle/sqlitestore"
)

// miscounted is a store whose events table, as Census sees it, holds one
// row more or less than its log's reader returned: a row inserted or
// removed behind the store's back while Verify read.
type miscounted struct {
	*sqlitestore.Store
	delta int64
}

func (m miscounted) Census(ctx context.Context, end chronicle.Checkpoint, limit int) (chronicle.LogCensus, error) {
	c, err := m.Store.Census(ctx, end, limit)
	c.Total += m.delta
	return c, err
}

func TestVerifyCountsTheEventsTable(t *testing.T) {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, ":memory:", sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for range 3 {
		ev := chronicle.Event{Type: "Noted", Data: json.RawMessage(`{}`)}
		if _, err := store.Append(ctx, "order-a", chronicle.Any, []chronicle.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := seal.Verify(ctx, miscounted{store, 0}, seal.VerifyOptions{}); err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	for _, delta := range []int64{1, -1} {
		_, err := seal.Verify(ctx, miscounted{store, delta}, seal.VerifyOptions{})
		if !errors.Is(err, audit.ErrIntegrity) || !strings.Contains(err.Error(), "the log's read returned 3") {
			t.Errorf("Verify with %+d row = %v, want ErrIntegrity: the log's read returned 3", delta, err)
		}
	}
}
