// Package inturn times several forms of one operation in turn, for the
// floor benchmarks (pgstore's LoneFloor, sqlitestore's AppendFloor): each
// round runs every form once, the order rotating, so that a machine whose
// speed drifts during the run slows every form alike.
package inturn

import (
	"fmt"
	"time"

	"github.com/chronicle-es/chronicle/internal/proccpu"
)

// Form is one way of doing the operation.
type Form struct {
	Name string
	// Prepare does what is not timed and returns what is.
	Prepare func() (run func() error)
}

// Totals is one form's wall time and this process's CPU time over the
// measured rounds.
type Totals struct {
	Wall, CPU time.Duration
}

// Run runs warm rounds, then n measured ones, and returns each form's
// totals over the measured rounds, in the order of forms. The first error
// stops it, named after its form.
func Run(warm, n int, forms []Form) ([]Totals, error) {
	totals := make([]Totals, len(forms))
	for i := range warm + n {
		for j := range forms {
			k := (i + j) % len(forms)
			run := forms[k].Prepare()
			c0, t0 := proccpu.Used(), time.Now()
			if err := run(); err != nil {
				return nil, fmt.Errorf("%s: %w", forms[k].Name, err)
			}
			if i >= warm {
				totals[k].Wall += time.Since(t0)
				totals[k].CPU += proccpu.Used() - c0
			}
		}
	}
	return totals, nil
}
