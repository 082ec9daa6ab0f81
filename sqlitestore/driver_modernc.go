//go:build !sqlite_cgo

package sqlitestore

import (
	"errors"
	"strconv"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The default driver is modernc.org/sqlite (pure Go: no cgo, cross-compiles);
// build with -tags sqlite_cgo for github.com/mattn/go-sqlite3. See doc.go for
// the measurements behind the choice.
const driverName = "sqlite"

// dsnParams renders per-connection settings in this driver's DSN syntax.
func dsnParams(p connParams) string {
	q := "_pragma=busy_timeout(" + itoa(p.busyTimeoutMS) + ")"
	if p.synchronous != "" {
		q += "&_pragma=synchronous(" + p.synchronous + ")"
	}
	if p.queryOnly {
		q += "&_pragma=query_only(1)"
	}
	if p.immediate {
		q += "&_txlock=immediate"
	}
	if p.tempMemory {
		q += "&_pragma=temp_store(memory)"
	}
	if p.noAutoCheckpoint {
		q += "&_pragma=wal_autocheckpoint(0)"
	}
	if p.secureDelete {
		q += "&_pragma=secure_delete(1)"
	}
	if p.mmapSize > 0 {
		q += "&_pragma=mmap_size(" + strconv.FormatInt(p.mmapSize, 10) + ")"
	}
	return q
}

// isConstraintViolation reports a unique key or a trigger refusing a row.
func isConstraintViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}
