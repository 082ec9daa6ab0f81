//go:build unix

package projection

import (
	"errors"
	"os"
	"syscall"
)

// flock locks f, exclusively or shared, waiting for it or not.
func flock(f *os.File, exclusive, wait bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// lockedElsewhere reports whether flock's error says another open file
// holds the lock.
func lockedElsewhere(err error) bool { return errors.Is(err, syscall.EWOULDBLOCK) }
