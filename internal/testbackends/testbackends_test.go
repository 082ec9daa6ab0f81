package testbackends_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/chronicle-es/chronicle"
	"github.com/chronicle-es/chronicle/internal/testbackends"
)

func TestForEachOpensFreshStores(t *testing.T) {
	testbackends.ForEach(t, func(t *testing.T, b testbackends.Backend) {
		ctx := context.Background()
		if v, err := b.StreamVersion(ctx, "t-1"); err != nil || v != 0 {
			t.Fatalf("fresh store: version %d, %v", v, err)
		}
		if _, err := b.Append(ctx, "t-1", chronicle.NoStream, []chronicle.Event{{Type: "T", Data: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	})
}
