// Package httpapi is chronicle's HTTP API, as README.md and docs/ describe it:
// the order commands (write side, read-your-writes), the queries (read
// models, time travel, timelines, status counts), the event feed of the
// global log for other services (GET /events: pages, or Server-Sent Events
// that follow the log; package feed consumes it), the operations routes
// (projections, health, metrics, OpenAPI) and the hook for the web console.
//
// New builds a Server from explicit dependencies (Options); the Server is an
// http.Handler. Around every route it adds request ids, access logs,
// Prometheus metrics, bearer auth with roles (named tokens, or JWTs checked
// against an identity provider's JWK set), strict JSON decoding and RFC 9457
// problem details, so that handlers only decide and answer. Every event a
// command appends records who did it: actor, request_id and correlation_id
// in its metadata.
//
// Idempotency keys live in the event log itself: the event ids of a keyed
// command are derived from the key, and the key and a hash of the request
// travel in the events' metadata, so a retry is recognised in the same
// transaction that wrote the events, also after a restart.
package httpapi
