package bench

import (
	"os"
	"syscall"
	"time"
)

// readCPU samples the machine's idle time from /proc/stat and this
// process's CPU time from getrusage.
func readCPU() cpuSample {
	at := time.Now()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}
	}
	idle, cores, ok := parseProcStat(b)
	if !ok {
		return cpuSample{}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSample{}
	}
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpuSample{idle: idle, self: self, cores: cores, at: at, ok: true}
}
