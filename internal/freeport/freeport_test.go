package freeport

import (
	"fmt"
	"net"
	"testing"
)

func TestLoopbackIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		port, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		if port < 10000 || port >= EphemeralLow() {
			t.Fatalf("Loopback() = %d, want 10000 <= port < %d", port, EphemeralLow())
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("Loopback() = %d, which cannot be listened on: %v", port, err)
		}
		ln.Close()
	}
}
