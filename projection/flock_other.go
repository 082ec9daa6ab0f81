//go:build !unix

package projection

import (
	"errors"
	"os"
)

// flock is not available here: a rebuild takes no lock, and leftover
// shadow tables are never dropped, since a running rebuild cannot be told
// from a dead one.
func flock(f *os.File, exclusive, wait bool) error {
	if exclusive {
		return errors.ErrUnsupported
	}
	return nil
}

// lockedElsewhere: flock never locks here.
func lockedElsewhere(error) bool { return false }
