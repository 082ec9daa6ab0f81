//go:build unix

// Package proccpu reads the CPU time this process has used, which the
// benchmarks report beside wall-clock figures: on a shared machine it moves
// far less with other processes' load.
package proccpu

import (
	"syscall"
	"time"
)

// Used is the process's user plus system CPU time so far (0 if unknown).
func Used() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
