// Package torture is chronicle's reliability suite: it attacks a running
// system (kill -9 of the server under load, PostgreSQL stopped under load, a
// long-running write transaction, a full SQLite file, random payloads on both
// backends, a soak with a rebuild and a restart, the relay to NATS JetStream
// killed and its broker restarted, three serve processes on a PostgreSQL
// primary and its standby killed in turn) and fails on any
// acknowledged command lost, any duplicate, any skipped event, any panic or
// data race. The package holds tests only; RELIABILITY.md at the repository
// root lists the scenarios, how to run them and their last results.
package torture
