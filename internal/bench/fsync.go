package bench

import (
	"fmt"
	"os"
	"time"
)

// FsyncRate measures how many durable writes per second the disk under
// dir takes: one 8 KiB block written and flushed (fdatasync where the
// system has it), again and again for about d, in a temporary file of
// its own. That is the ceiling of serial durable commits, the figure that
// group commit works against: the same code measures 1.5x apart on a disk
// that flushes fast and one that flushes slowly.
func FsyncRate(dir string, d time.Duration) (float64, error) {
	f, err := os.CreateTemp(dir, ".chronicle-fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 8<<10)
	// The first write allocates the block: flushed before the clock starts.
	if _, err := f.WriteAt(block, 0); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	n, start := 0, time.Now()
	for {
		block[0]++
		if _, err := f.WriteAt(block, 0); err != nil {
			return 0, err
		}
		if err := datasync(f); err != nil {
			return 0, fmt.Errorf("sync %s: %w", f.Name(), err)
		}
		n++
		if el := time.Since(start); el >= d {
			return float64(n) / el.Seconds(), nil
		}
	}
}

// Regime names a disk by its fsync rate, for the report.
func Regime(perSec float64) string {
	switch {
	case perSec < 250:
		return "slow" // 4 ms or more a flush: a spinning disk, a throttled volume
	case perSec < 1000:
		return "medium"
	case perSec < 10000:
		return "fast"
	}
	return "very fast: does the flush reach stable storage?"
}
