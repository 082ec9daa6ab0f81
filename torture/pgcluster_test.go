package torture

import (
	"errors"
	"os"
	"testing"

	"github.com/chronicle-es/chronicle/internal/pgcluster"
)

// newCluster starts a throwaway PostgreSQL primary this test owns (so that
// it can stop it without touching the shared server), removed when t ends.
// It skips t when PostgreSQL's server programs are missing, but fails in CI.
func newCluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	c, err := pgcluster.StartPrimary()
	if err != nil {
		skipUnavailable(t, err)
		t.Fatal(err)
	}
	t.Cleanup(c.Remove)
	return c
}

// newStandby starts a streaming-replication standby of primary, removed
// when t ends.
func newStandby(t testing.TB, primary *pgcluster.Cluster) *pgcluster.Cluster {
	t.Helper()
	s, err := primary.StartStandby()
	if err != nil {
		skipUnavailable(t, err)
		t.Fatal(err)
	}
	t.Cleanup(s.Remove)
	return s
}

func skipUnavailable(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, pgcluster.ErrUnavailable) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: the scenarios that stop PostgreSQL must run in CI", err)
		}
		t.Skip(err)
	}
}
