// Package freeport picks loopback ports for the servers tests start
// (PostgreSQL clusters, NATS). It picks below the kernel's ephemeral range:
// a port from that range, found free, can be handed to a client connection
// before the server binds it (CI lost a run that way), or while a server
// is stopped for a restart on the same port.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Loopback returns a port on 127.0.0.1 that nothing listened on a moment
// ago, from 10000 up to the ephemeral range.
func Loopback() (int, error) {
	low := EphemeralLow()
	for range 100 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, errors.New("freeport: no free loopback port below the ephemeral range")
}

// EphemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read, or leaves too little room below it).
func EphemeralLow() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}
