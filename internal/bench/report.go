package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Table prints results as rows of a text table, header first.
type Table struct {
	w      io.Writer
	header bool
}

// NewTable returns a table printing to w.
func NewTable(w io.Writer) *Table { return &Table{w: w} }

const rowFormat = "%-4s %-22s %-9s %7s %10s %12s %10s %10s %7s %9s %-12s %s\n"

// Row prints r. The ratio column is chronicle / plain of the row's main
// figure; it is printed on the plain row, once both are known.
func (t *Table) Row(r Result) {
	if !t.header {
		t.header = true
		fmt.Fprintf(t.w, rowFormat, "wl", "case", "system", "clients", "ops/s", "events/s", "p50", "p99", "errors", "conflicts", "ratio", "notes")
	}
	ratio := ""
	if r.Ratio > 0 && r.System == "plain" {
		ratio = fmt.Sprintf("%.2fx %s", r.Ratio, r.Main())
	}
	var notes []string
	if r.PeakRSS > 0 {
		notes = append(notes, fmt.Sprintf("peak RSS %.0f MiB", float64(r.PeakRSS)/(1<<20)))
	}
	if r.Note != "" {
		notes = append(notes, r.Note)
	}
	if r.FirstError != "" {
		notes = append(notes, "first error: "+r.FirstError)
	}
	fmt.Fprintf(t.w, rowFormat, r.Workload, r.Case, r.System, fmt.Sprint(r.Clients),
		fmt.Sprintf("%.1f", r.OpsPerSec), fmt.Sprintf("%.0f", r.EventsPerSec),
		FormatDuration(r.P50), FormatDuration(r.P99), fmt.Sprint(r.Errors), fmt.Sprint(r.Conflicts),
		ratio, strings.Join(notes, "; "))
}

// FormatDuration prints d in milliseconds, or seconds from 10 s.
func FormatDuration(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
