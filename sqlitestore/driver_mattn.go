//go:build sqlite_cgo

package sqlitestore

import (
	"errors"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Built with -tags sqlite_cgo: the cgo driver, kept so the driver
// measurement in doc.go can be repeated.
const driverName = "sqlite3"

func dsnParams(p connParams) string {
	q := "_busy_timeout=" + itoa(p.busyTimeoutMS)
	if p.synchronous != "" {
		q += "&_synchronous=" + p.synchronous
	}
	if p.queryOnly {
		q += "&_query_only=1"
	}
	if p.immediate {
		q += "&_txlock=immediate"
	}
	if p.secureDelete {
		q += "&_secure_delete=on"
	}
	// p.tempMemory, p.noAutoCheckpoint, p.mmapSize: this driver's DSN has
	// none of temp_store, wal_autocheckpoint and mmap_size; statement
	// journals may spill to a temporary file, commits still checkpoint, and
	// readers read every page with a system call (slower, same results).
	return q
}

// isConstraintViolation reports a unique key or a trigger refusing a row.
func isConstraintViolation(err error) bool {
	var e sqlite3.Error
	return errors.As(err, &e) && e.Code == sqlite3.ErrConstraint
}
