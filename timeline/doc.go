// Package timeline renders a stream's debug timeline: every event of one
// order, upcast to the current schema, as the text the CLI prints (one event
// a line with a short summary of its salient fields) and as the JSON of
// GET /orders/{id}/events.
//
// The text format is part of the contract (API.md):
//
//	ord_123:
//	  v1 OrderCreated {customer: cust_456, total: $99.99}
//	  v2 PaymentReceived {method: card, amount: $99.99}
//
// Both the CLI and the HTTP API render through this package so the two
// never drift apart.
package timeline
