// Package console serves chronicle's web console: one page a support
// engineer uses to answer "what happened to order X?". It shows an order's
// timeline, the state after any event and what that event changed, the
// projections and their lag, order status counts over the last hours, and a
// live tail of the log (GET /events as Server-Sent Events, read with fetch
// so that the token goes in the Authorization header, resumed with
// Last-Event-ID after a dropped connection).
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no
// build step, no external network. It talks to the HTTP API of the same
// origin (GET /orders/{id}/events, /orders/{id}?version=N, /projections,
// /stats/order-status) and sends a bearer token from sessionStorage when
// the user gives one.
package console
