//go:build race

package torture

// raceEnabled builds the spawned server with -race too, so that the race
// detector watches the process under attack, not only the test.
const raceEnabled = true
