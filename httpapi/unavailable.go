package httpapi

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// unavailable reports whether err means the store cannot be reached now
// (database down, restarting, out of connections or disk) rather than a
// fault of this server: such requests answer 503 with Retry-After, so that
// clients retry, instead of a 500. Errors come from both backends and from
// the read models' database/sql handle, so they are recognized by behaviour
// (SQLSTATE, SQLite result code, net.Error, errno) where one exists.
func unavailable(err error) bool {
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		code := state.SQLState()
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"),                     // insufficient resources: disk full, too many connections
			code == "57P01", code == "57P02", code == "57P03": // shutdown, crash, starting up
			return true
		}
	}
	// SQLite's driver error has Code() int (the result code, extended codes
	// in the high bits). Read-only, I/O error, full disk, cannot open: the
	// store cannot write now, and space or permissions coming back cure it.
	var sq interface{ Code() int }
	if errors.As(err, &sq) {
		switch sq.Code() & 0xff {
		case 8, 10, 13, 14: // SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, driver.ErrBadConn) ||
		// pgx's answer on a connection it already closed because the
		// server went away (a crash, a shutdown, a killed backend): it
		// carries no SQLSTATE and no network error.
		errors.Is(err, pgconn.ErrConnClosed)
}
