// Package storetest is the conformance suite every chronicle backend runs:
// one test body, run against SQLite and PostgreSQL alike, so that both
// backends are proved to behave identically.
//
// A backend's test calls Run with a Harness:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{Open: ..., Exec: ...})
//	}
//
// Beyond the chronicle interfaces the suite assumes two things of the
// database: the tables are named events, streams and snapshots, and events
// has a column event_type (the immutability tests update it).
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
	// prove what the database itself refuses (immutability): where it can,
	// on a connection the store did not open or configure.
	Exec func(t *testing.T, b Backend, sql string) error
	// Truncate is true when the backend's database has TRUNCATE (PostgreSQL).
	Truncate bool
	// Replace is true when the backend's database has INSERT OR REPLACE,
	// REPLACE and UPDATE OR REPLACE (SQLite).
	Replace bool
	// SmallSoak runs the soak with a tenth of the appends, for a variant of
	// a backend whose code the full soak already covers.
	SmallSoak bool
}

// Run runs the whole suite, each subtest on a fresh store from h.Open.
// Stores must tolerate Close being called twice (the suite closes some
// stores itself before the harness's cleanup does).
func Run(t *testing.T, h Harness) {
	open, exec := h.Open, h.Exec
	h.Open = func(t *testing.T, opts Options) Backend { return &tracked{Backend: open(t, opts)} }
	h.Exec = func(t *testing.T, b Backend, sql string) error { return exec(t, untracked(b), sql) }
	t.Run("ExpectedVersion", func(t *testing.T) { testExpectedVersion(t, h) })
	t.Run("RecordedFields", func(t *testing.T) { testRecordedFields(t, h) })
	t.Run("HashChain", func(t *testing.T) { testHashChain(t, h) })
	t.Run("Seals", func(t *testing.T) { testSeals(t, h) })
	t.Run("SealWaitsForOpenTx", func(t *testing.T) { testSealWaitsForOpenTx(t, h) })
	t.Run("VerifyWhileAppending", func(t *testing.T) { testVerifyWhileAppending(t, h) })
	t.Run("ConcurrentSealers", func(t *testing.T) { testConcurrentSealers(t, h) })
	t.Run("SealerTakeover", func(t *testing.T) { testSealerTakeover(t, h) })
	t.Run("AtomicAppend", func(t *testing.T) { testAtomicAppend(t, h) })
	t.Run("ConcurrentSameVersion", func(t *testing.T) { testConcurrentSameVersion(t, h) })
	t.Run("ConcurrentAny", func(t *testing.T) { testConcurrentAny(t, h) })
	t.Run("IdempotentRetry", func(t *testing.T) { testIdempotentRetry(t, h) })
	t.Run("ConcurrentRetry", func(t *testing.T) { testConcurrentRetry(t, h) })
	t.Run("CancelDuringCommit", func(t *testing.T) { testCancelDuringCommit(t, h) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, h) })
	t.Run("EventSizeLimit", func(t *testing.T) { testEventSizeLimit(t, h) })
	t.Run("Immutability", func(t *testing.T) { testImmutability(t, h) })
	t.Run("ReadStream", func(t *testing.T) { testReadStream(t, h) })
	t.Run("ReadAllPaging", func(t *testing.T) { testReadAllPaging(t, h) })
	t.Run("ReadAllFilters", func(t *testing.T) { testReadAllFilters(t, h) })
	t.Run("Head", func(t *testing.T) { testHead(t, h) })
	t.Run("EventByID", func(t *testing.T) { testEventByID(t, h) })
	t.Run("Notify", func(t *testing.T) { testNotify(t, h) })
	t.Run("Snapshots", func(t *testing.T) { testSnapshots(t, h) })
	t.Run("DataKeys", func(t *testing.T) { testDataKeys(t, h) })
	t.Run("Import", func(t *testing.T) { testImport(t, h) })
	t.Run("ImportSeals", func(t *testing.T) { testImportSeals(t, h) })
	t.Run("ImportSealKeys", func(t *testing.T) { testImportSealKeys(t, h) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, h) })
	t.Run("Soak", func(t *testing.T) { testSoak(t, h) })
}
