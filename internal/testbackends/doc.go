// Package testbackends opens fresh stores of every backend for tests, so a
// test body written once runs on SQLite and on PostgreSQL alike.
//
// PostgreSQL tests read the server's URL from CHRONICLE_TEST_POSTGRES and
// are skipped, with the reason, when it is unset; each store gets a fresh
// random schema, dropped when the test ends.
package testbackends
