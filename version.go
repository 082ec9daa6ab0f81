package chronicle

import "fmt"

// ExpectedVersion is the condition an append puts on the stream's current
// version. Use Any, NoStream, StreamExists or Exact(n).
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version, creating it if needed.
	Any ExpectedVersion = -1
	// NoStream appends only when the stream has no events. Exact(0) is the same.
	NoStream ExpectedVersion = 0
	// StreamExists appends only when the stream has at least one event.
	StreamExists ExpectedVersion = -2
)

// Exact appends only when the stream's current version is exactly v.
// Exact(0) is NoStream.
func Exact(v int64) ExpectedVersion {
	if v < 0 {
		panic(fmt.Sprintf("chronicle: Exact(%d): version must be >= 0", v))
	}
	return ExpectedVersion(v)
}

// Check reports whether a stream at version current (0 = no events) satisfies e.
func (e ExpectedVersion) Check(current int64) bool {
	switch {
	case e == Any:
		return true
	case e == StreamExists:
		return current > 0
	case e >= 0:
		return current == int64(e)
	}
	return false
}

// Valid reports whether e is one of the defined conditions.
func (e ExpectedVersion) Valid() bool { return e >= StreamExists }

func (e ExpectedVersion) String() string {
	switch e {
	case Any:
		return "any"
	case NoStream:
		return "no stream"
	case StreamExists:
		return "stream exists"
	}
	if e >= 0 {
		return fmt.Sprintf("version %d", int64(e))
	}
	return fmt.Sprintf("invalid expected version %d", int64(e))
}
