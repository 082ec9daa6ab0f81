package pgstore

import (
	"context"
	"strings"
	"testing"
)

// The URL's pool_max_conns (libpq-style URLs as pgx reads them) sizes the
// readers' pool unless Options.MaxConns says otherwise.
func TestPoolMaxConnsFromURL(t *testing.T) {
	url := testURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, tc := range []struct {
		url  string
		opts int32
		want int32
	}{
		{url, 0, 16},
		{url + sep + "pool_max_conns=3", 0, 3},
		{url + sep + "pool_max_conns=3", 5, 5},
	} {
		s, err := Open(context.Background(), tc.url, Options{Schema: newSchema(t), MaxConns: tc.opts})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		got := s.pool.Config().MaxConns
		s.Close()
		if got != tc.want {
			t.Errorf("pool_max_conns in %q, MaxConns %d: pool size %d, want %d", strings.TrimPrefix(tc.url, url), tc.opts, got, tc.want)
		}
	}
}
