//go:build !linux

package bench

// readCPU is not available here: rows carry no CPU figures.
func readCPU() cpuSample { return cpuSample{} }
