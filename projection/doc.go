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
// A projection stops at an event (status "failed") only after the event
// itself failed Options.MaxAttempts times; errors of the database
// (connection lost, busy, deadlock, timeouts, disk full) say nothing about
// the event and are retried, with backoff, for as long as they last.
//
// On PostgreSQL each projection runs in one process at a time, the holder
// of its lease (a session advisory lock). When the holder dies, freezes
// (SIGSTOP, a paused VM) or is cut off from the database, the server ends
// its lease session and any apply transaction it left open after
// 3 x Options.LeaseInterval of silence, and a standby process takes over
// within about 4 x LeaseInterval: 8 s at the default of 2 s. The holder,
// when it runs again, stops at its next check of the lease. On SQLite a
// store belongs to one process, which always runs its projections.
//
// A Sink (Options.Sinks) is followed the same way, but for a consumer
// outside the database, such as the relay to a message broker: its events
// are delivered before, not inside, the transaction that moves its
// checkpoint, and it retries every failure for as long as it lasts.
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
