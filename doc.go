// Package chronicle is the vocabulary of the chronicle event store: events,
// stream versions, positions in the global log, the errors every backend
// returns, and the interfaces a backend implements.
//
// It imports only the standard library. Backends live in their own packages
// (sqlitestore, pgstore) and all pass the one conformance suite in storetest.
package chronicle
