//go:build sqlite_cgo

package sqlitestore_test

const sqlDriverName = "sqlite3"
