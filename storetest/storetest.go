// Package storetest is the conformance suite every chronicle backend runs:
// one test body, run against SQLite and PostgreSQL alike, so that both
// backends are proved to behave identically.
package storetest

import (
	"testing"

	"github.com/chronicle-es/chronicle"
)

// Backend is what the suite tests: an event store with snapshots.
type Backend interface {
	chronicle.Store
	chronicle.SnapshotStore
}

// Options are the knobs the suite needs a backend to expose.
type Options struct {
	Limits chronicle.Limits
	// BeforeCommit, when set, is called inside each append's transaction
	// after its events are written and before it commits; an error aborts
	// that append (nothing of it becomes visible) and is returned by Append.
	BeforeCommit func(stream string, events []chronicle.Event) error
}

// Harness opens fresh stores of one backend.
type Harness struct {
	// Open returns a new, empty store. The harness closes it in t.Cleanup.
	Open func(t *testing.T, opts Options) Backend
	// Exec runs raw SQL on the store's database, bypassing the store, to
	// prove what the database itself refuses (immutability).
	Exec func(t *testing.T, b Backend, sql string) error
	// Truncate is true when the backend's database has TRUNCATE (PostgreSQL).
	Truncate bool
}
