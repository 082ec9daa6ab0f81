package projection

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// dbTrouble reports whether err is the database's rather than the event's:
// the connection lost, the server restarting or out of resources, a lock
// busy, a deadlock, a serialization failure or a timeout. Such an error says
// nothing about the event being applied, so the runner retries it with
// backoff for as long as it lasts and never counts it as an attempt.
func dbTrouble(err error) bool {
	var state interface{ SQLState() string } // PostgreSQL (pgx)
	if errors.As(err, &state) {
		code := state.SQLState()
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"),    // insufficient resources
			strings.HasPrefix(code, "58"),    // system error (I/O)
			code == "40001", code == "40P01", // serialization failure, deadlock
			code == "55P03",                  // lock not available (lock_timeout)
			code == "57014",                  // statement timeout or cancel
			code == "25P03", code == "57P05", // idle (in transaction) session timeout
			code == "57P01", code == "57P02", code == "57P03": // terminated, crash, starting up
			return true
		}
		return false
	}
	var sq interface{ Code() int } // SQLite (modernc.org/sqlite)
	if errors.As(err, &sq) {
		switch sq.Code() & 0xff {
		case 5, 6, 7, 8, 10, 13, 14, 15: // BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL
			return true
		}
		return false
	}
	// pgx says a failure happened before anything reached the server
	// (a closed connection, a failed dial).
	var safe interface{ SafeToRetry() bool }
	if errors.As(err, &safe) && safe.SafeToRetry() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
