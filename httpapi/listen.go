package httpapi

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
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
