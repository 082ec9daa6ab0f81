// Package feed consumes chronicle's event feed (GET /events) from another
// service: Subscribe follows the global log over Server-Sent Events, hands
// each event to a handler in the log's read order, reconnects with backoff
// when the connection fails, and resumes exactly after the last event the
// handler accepted.
//
// It also holds what the server and its consumers share: the wire form of
// an event (Event) and of a checkpoint (EncodeCheckpoint, ParseCheckpoint).
// It imports only the standard library and the root package.
package feed
