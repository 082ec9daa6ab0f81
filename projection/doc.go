// Package projection keeps read models in step with the global log.
//
// A Runner follows the log for each of its projections: it reads events
// after the projection's checkpoint in (TxID, Position) order, upcasts them,
// hands them to the projection inside a transaction on the store's own
// database, and commits the read-model changes together with a
// compare-and-set of the checkpoint. A crash anywhere therefore loses or
// repeats nothing, and a second runner of the same projection is fenced off
// by the compare-and-set (on PostgreSQL an advisory-lock lease keeps it idle
// in the first place).
//
// Besides following live, the package rebuilds a read model into shadow
// tables and swaps them in atomically (Runner.Rebuild; Runner.RebuildAll
// rebuilds several in one pass over the log; the optional Builder and
// Indexer interfaces let a projection fill its shadow tables in bulk),
// replays the log in memory to prove a stored read model right
// (Runner.Verify), reports lag
// (Runner.Status), lets an operator retry or skip an event that a projection
// cannot apply (Runner.Retry, Runner.Skip), and lets callers wait until a
// projection has caught up with a write (Runner.WaitFor, Runner.WaitForStream).
package projection
