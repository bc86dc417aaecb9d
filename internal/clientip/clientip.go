// Package clientip finds the address of the client behind a request, for
// the audit trail, the WebSocket connection list and the per-address
// limits.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Of returns the address of the client behind r. X-Forwarded-For is
// believed only when the connection comes from a trusted proxy, and then
// read from the right, skipping trusted hops: anything left of the first
// untrusted address could have been written by the client itself.
func Of(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := remoteAddr(r)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			addr, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return peer
			}
			addr = addr.Unmap()
			if !isTrusted(addr, trusted) {
				return addr
			}
		}
	}
	return peer
}

// FromTrustedProxy reports whether r came straight from a trusted proxy,
// whose forwarding headers (X-Forwarded-Proto, -Host) may be believed.
func FromTrustedProxy(r *http.Request, trusted []netip.Prefix) bool {
	peer := remoteAddr(r)
	return peer.IsValid() && isTrusted(peer, trusted)
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return addr.Unmap()
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Block is the address block limits count a client by: its IPv4 address
// alone, or the /64 of an IPv6 address, the smallest block a host is
// usually given (per address, one IPv6 host could take 2^64 allowances).
func Block(addr netip.Addr) netip.Prefix { return prefix(addr, 32, 64) }

// Network is the wider block a client's network is counted by: the /24 of
// an IPv4 address or the /56 of an IPv6 one (a common site allocation), so
// that one network cannot take a cap meant to be shared by many clients
// address by address.
func Network(addr netip.Addr) netip.Prefix { return prefix(addr, 24, 56) }

// prefix is the block of v4Bits (IPv4, mapped addresses included) or
// v6Bits around addr.
func prefix(addr netip.Addr, v4Bits, v6Bits int) netip.Prefix {
	addr = addr.Unmap()
	bits := v4Bits
	if addr.Is6() {
		bits = v6Bits
	}
	p, _ := addr.Prefix(bits) // only errors for an invalid address: the zero Prefix
	return p
}
