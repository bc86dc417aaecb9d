package clientip

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	cases := []struct {
		name, remote, xff, want string
	}{
		{"no proxy", "203.0.113.7:5000", "", "203.0.113.7"},
		{"untrusted peer's header is ignored", "203.0.113.7:5000", "198.51.100.1", "203.0.113.7"},
		{"trusted proxy", "10.1.2.3:5000", "198.51.100.1", "198.51.100.1"},
		{"spoofed left part is skipped", "10.1.2.3:5000", "1.2.3.4, 198.51.100.1", "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:5000", "198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"several headers", "10.1.2.3:5000", "", "10.1.2.3"},
		{"garbage falls back to peer", "10.1.2.3:5000", "not-an-ip", "10.1.2.3"},
		{"ipv6 peer", "[::1]:5000", "2001:db8::1", "2001:db8::1"},
		{"ipv4-mapped peer", "[::ffff:203.0.113.9]:5000", "", "203.0.113.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := Of(r, trusted).String(); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// Limits count an IPv4 client by its address and an IPv6 client by its
// /64; an IPv4-mapped IPv6 address is its IPv4 address.
func TestBlock(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7":           "192.0.2.7/32",
		"::ffff:192.0.2.7":    "192.0.2.7/32",
		"2001:db8:1:2:3::9":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::": "2001:db8:1:2::/64",
	} {
		if got := Block(netip.MustParseAddr(addr)).String(); got != want {
			t.Errorf("Block(%s) = %s, want %s", addr, got, want)
		}
	}
}

// A client's network is the /24 of its IPv4 address or the /56 of its
// IPv6 address; an IPv4-mapped IPv6 address is its IPv4 address.
func TestNetwork(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7":            "192.0.2.0/24",
		"::ffff:192.0.2.200":   "192.0.2.0/24",
		"2001:db8:1:2:3::9":    "2001:db8:1::/56",
		"2001:db8:1:ff:ffff::": "2001:db8:1::/56",
		"2001:db8:1:100::1":    "2001:db8:1:100::/56",
	} {
		if got := Network(netip.MustParseAddr(addr)).String(); got != want {
			t.Errorf("Network(%s) = %s, want %s", addr, got, want)
		}
	}
}
