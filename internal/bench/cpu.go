package bench

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"time"
)

// cpuSample is a moment's CPU counters: the time the machine's CPUs have
// spent idle (or waiting for I/O) and the CPU time this process has used.
type cpuSample struct {
	idle, self time.Duration
	cores      int // CPUs the idle time covers
	at         time.Time
	ok         bool // false where the system does not tell
}

// cpuWindow is what the machine (every process: the database server's
// too, when it runs here) and this process spent between two samples.
type cpuWindow struct {
	machine, self, elapsed time.Duration
	cores                  int
}

// until is the window from a to b. The machine's busy time is its cores'
// time less their idle time: Linux measures idle time exactly, where its
// per-mode counters (user, system, ...) are samples at each clock tick,
// which on a virtual machine missed a tenth of this process's own CPU.
func (a cpuSample) until(b cpuSample) (cpuWindow, bool) {
	elapsed := b.at.Sub(a.at)
	if !a.ok || !b.ok || elapsed <= 0 || b.idle < a.idle || b.self < a.self || a.cores != b.cores {
		return cpuWindow{}, false
	}
	machine := time.Duration(b.cores)*elapsed - (b.idle - a.idle)
	machine = max(machine, 0)
	return cpuWindow{machine: machine, self: b.self - a.self, elapsed: elapsed, cores: b.cores}, true
}

// setCPU puts what the machine spent in the window on res, per operation
// and per event, and how many cores were busy on average.
func (res *Result) setCPU(w cpuWindow) {
	if res.Ops == 0 || w.elapsed <= 0 {
		return
	}
	res.Cores = w.cores
	res.BusyCores = w.machine.Seconds() / w.elapsed.Seconds()
	res.CPUPerOp = w.machine / time.Duration(res.Ops)
	res.SelfCPUPerOp = w.self / time.Duration(res.Ops)
	if res.Events > 0 {
		res.CPUPerEvent = w.machine / time.Duration(res.Events)
	}
}

// Ceiling is the rate of the row's main figure that the machine's cores
// would give if every one of them were busy at the CPU per operation (or
// event) measured: what no client count can pass on this machine without
// cutting the work per operation. Zero when CPU was not measured or the
// main figure is a latency.
func (r Result) Ceiling() float64 {
	per := r.CPUPerOp
	switch r.Main() {
	case "p50":
		return 0
	case "events/s":
		per = r.CPUPerEvent
	}
	if per <= 0 || r.Cores == 0 {
		return 0
	}
	return float64(r.Cores) / per.Seconds()
}

// userHZ is the unit of /proc/stat: the kernel's USER_HZ, 100 on every
// architecture Go runs Linux on.
const userHZ = 100

// parseProcStat returns the idle and iowait time of all CPUs from the
// "cpu" line of Linux's /proc/stat, and the number of "cpuN" lines.
func parseProcStat(b []byte) (idle time.Duration, cores int, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			cores++
			continue
		}
		// cpu user nice system idle iowait ...
		if len(f) < 6 {
			return 0, 0, false
		}
		var ticks int64
		for _, v := range f[4:6] {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, 0, false
			}
			ticks += n
		}
		idle = time.Duration(ticks) * time.Second / userHZ
		ok = true
	}
	return idle, cores, ok && cores > 0
}
