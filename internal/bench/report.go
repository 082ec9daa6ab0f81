package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const rowFormat = "%-4s %-22s %-9s %7s %-8s %-28s %9s %9s %6s %9s %-19s %s"

// WriteText prints the report as text: the disk's fsync rate, then a
// table of the rows, each figure the median of the rounds with min-max in
// brackets. The ratio column is chronicle / plain of the row's main figure,
// per round, then over the rounds; it is printed on the plain row.
func WriteText(w io.Writer, rep *Report) {
	if d := rep.Disk; d != nil {
		fmt.Fprintf(w, "disk: %s fsync/s (%s): 8 KiB write+fdatasync in %s, median of %d probes (%s) before, between and after the rounds\n",
			formatFigure(d.FsyncPerSec.Median), d.Regime, d.Dir, len(d.Samples), formatRange(d.FsyncPerSec, formatFigure))
	}
	if c := rep.PlainCommits; c != nil {
		fmt.Fprintf(w, "%s: %s commits/s (%s) of the plain INSERT from 1 client (W1)\n", rep.Backend, formatFigure(c.Median), formatRange(*c, formatFigure))
	}
	line := func(a ...any) { fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf(rowFormat, a...), " ")) }
	line("wl", "case", "system", "clients", "main", fmt.Sprintf("median (min-max) of %d", rep.Rounds),
		"p50", "p99", "errors", "conflicts", "ratio", "notes")
	for _, r := range rep.Rows {
		format := formatFigure
		if r.Main == "p50" {
			format = func(v float64) string { return FormatDuration(time.Duration(v)) }
		}
		value := format(r.Value.Median)
		if len(r.Rounds) > 1 {
			value += " (" + formatRange(r.Value, format) + ")"
		}
		ratio := ""
		if r.Ratio != nil && r.System == "plain" {
			ratio = fmt.Sprintf("%.2fx", r.Ratio.Median)
			if len(r.Rounds) > 1 {
				ratio += fmt.Sprintf(" (%.2f-%.2f)", r.Ratio.Min, r.Ratio.Max)
			}
		}
		var notes []string
		if s := r.PeakRSS; s != nil {
			mib := func(v float64) string { return fmt.Sprintf("%.0f", v/(1<<20)) }
			note := "peak RSS " + mib(s.Median) + " MiB"
			if len(r.Rounds) > 1 {
				note += " (" + formatRange(*s, mib) + ")"
			}
			notes = append(notes, note)
		}
		if note := cpuNote(r); note != "" {
			notes = append(notes, note)
		}
		if r.Note != "" {
			notes = append(notes, r.Note)
		}
		if r.FirstError != "" {
			notes = append(notes, "first error: "+r.FirstError)
		}
		line(r.Workload, r.Case, r.System, fmt.Sprint(r.Clients), r.Main, value,
			FormatDuration(r.P50), FormatDuration(r.P99), fmt.Sprint(r.Errors), fmt.Sprint(r.Conflicts),
			ratio, strings.Join(notes, "; "))
	}
}

// cpuNote prints a row's CPU figures: what the machine spent per
// operation (or event), this process's share, the busy cores, and the
// ceiling those give.
func cpuNote(r Row) string {
	if r.CPUPerOp <= 0 {
		return ""
	}
	per, unit, rate := r.CPUPerOp, "op", "ops/s"
	if r.Main == "events/s" && r.CPUPerEvent > 0 {
		per, unit, rate = r.CPUPerEvent, "event", "events/s"
	}
	note := fmt.Sprintf("machine CPU %s/%s (this process %s/op), %.2f of %d cores busy",
		formatMicros(per), unit, formatMicros(r.SelfCPUPerOp), r.BusyCores, r.Cores)
	if c := r.Ceiling; c != nil {
		note += fmt.Sprintf(": ceiling %s %s", formatFigure(c.Median), rate)
	}
	return note
}

// formatMicros prints d in microseconds, with one decimal under 10 µs.
func formatMicros(d time.Duration) string {
	us := float64(d) / float64(time.Microsecond)
	if us < 10 {
		return fmt.Sprintf("%.1fµs", us)
	}
	return formatFigure(us) + "µs"
}

func formatRange(s Spread, format func(float64) string) string {
	return format(s.Min) + "-" + format(s.Max)
}

// formatFigure prints a rate rounded to a whole number, with thousands
// separators.
func formatFigure(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// FormatDuration prints d in milliseconds, or seconds from 10 s.
func FormatDuration(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
