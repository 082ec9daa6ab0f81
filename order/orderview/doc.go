// Package orderview holds the order read models and the queries the HTTP
// API answers from them.
//
//   - order_summaries: one row per order with the state body of API.md and
//     the stream version it reflects; indexed for listing by status and by
//     customer, newest first, with cursor paging.
//   - order_status_history: one row per status interval (order_id, status,
//     valid_from, valid_to; valid_to NULL while current), so that "how many
//     orders were in each status at T" is one indexed query.
//
// Both fold events with the order package's own logic (order.Evolve, and a
// status rule shared by the SQL projection and its in-memory replay), so
// projection.Runner.Verify compares persistence against the domain, not
// against a second implementation. Times are stored as unix nanoseconds
// (BIGINT), exactly as recorded, on both backends.
package orderview
