package httpapi

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// CheckListenAddr refuses an address beyond loopback when auth is off:
// without tokens anyone who can reach the port could write orders.
// addr is host:port as http.Server takes it; an empty host means every
// interface and is refused too.
func CheckListenAddr(addr string, authEnabled bool) error {
	if authEnabled {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	if host == "" {
		host = "every interface"
	}
	return fmt.Errorf("refusing to listen on %s (%s) without tokens: set CHRONICLE_TOKENS or --tokens-file, or listen on 127.0.0.1", addr, host)
}

// LimitListener returns a Listener that keeps at most n of l's connections
// open at once. Beyond that, Accept waits until one closes: new clients
// wait in the kernel's accept queue, and are served as soon as a slot
// frees (or refused by the kernel when that queue is full too).
func LimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.closed) })
	return err
}

// limitConn frees its slot when closed, once.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
