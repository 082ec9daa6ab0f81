// Package storeurl turns a store URL of API.md (sqlite:///path.db,
// sqlite::memory:, postgres://...) into an open event store. The CLI, its
// tests and the benchmarks share it so a URL means the same everywhere.
package storeurl
