package proccpu

import (
	"runtime"
	"testing"
	"time"
)

// TestUsedGrows: spinning the CPU for a while shows in Used.
func TestUsedGrows(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("not measured on " + runtime.GOOS)
	}
	start := Used()
	if start <= 0 {
		t.Fatalf("Used() = %v at start", start)
	}
	x := 0
	for deadline := time.Now().Add(10 * time.Second); Used()-start < 20*time.Millisecond; x++ {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning added %v of CPU time", Used()-start)
		}
	}
	_ = x
}
