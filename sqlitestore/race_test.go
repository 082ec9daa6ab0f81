//go:build race

package sqlitestore_test

// The race detector instruments modernc.org/sqlite's translated C too,
// which makes the full soak about 8x slower than with the cgo driver.
const raceEnabled = true
