// Package aggregate loads event-sourced aggregates from a chronicle store
// and runs commands on them.
//
// A Definition is the pure part of an aggregate (decide and evolve, as in
// package order). A Repository adds the store: Load folds the latest
// snapshot and the events after it, upcast to their current shape; Handle
// loads, decides and appends with the version it loaded, retrying on a
// concurrent write unless the caller asked for an exact version (HTTP
// If-Match). LoadVersion and LoadAsOf replay a stream up to a version or a
// recorded time. Snapshots are only a cache: every N events (default 50)
// one is written after a command or a long replay, best effort, and a
// snapshot of another schema version is ignored and replaced.
package aggregate
