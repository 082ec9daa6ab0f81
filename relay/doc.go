// Package relay publishes the global log to NATS JetStream: every event, in
// the log's read order, to subject <prefix>.<stream_type>.<type>, with the
// event JSON of GET /events as body and headers Nats-Msg-Id (the event id),
// Chronicle-Stream, Chronicle-Version and Chronicle-Checkpoint.
//
// A Relay is a projection.Sink: a projection.Runner follows the log for it
// from its checkpoint (named relay_nats), under a lease, one window (batch)
// at a time. The relay publishes a window asynchronously and returns once
// JetStream acknowledged all of it; only then does the runner store the
// checkpoint past it. A crash in between publishes the window again, and
// JetStream drops the repeats by Nats-Msg-Id within the stream's duplicate
// window (2 minutes). NATS down is retried with backoff for as long as it
// lasts: no event is skipped.
//
// It creates the stream CHRONICLE (subjects <prefix>.>, file storage,
// duplicate window 2 minutes) when missing. docs/integration.md says what
// consumers can count on, and where that ends.
package relay
