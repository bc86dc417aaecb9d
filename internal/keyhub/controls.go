package keyhub

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
)

// Limits of a key's controls.
const (
	// MaxMetadataBytes bounds a key's metadata, as compact JSON.
	MaxMetadataBytes = 4 << 10
	// MaxAllowedCIDRs bounds a key's allowed_cidrs.
	MaxAllowedCIDRs = 32
)

// KeyMetadata checks a key's metadata as a client sent it: a JSON object
// of at most MaxMetadataBytes once compacted, which is what is returned.
func KeyMetadata(raw json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, Errorf(CodeValidation, "metadata must be a JSON object")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, trimmed); err != nil {
		return nil, Errorf(CodeValidation, "metadata must be a JSON object")
	}
	if compact.Len() > MaxMetadataBytes {
		return nil, Errorf(CodeValidation, "metadata must be at most %d bytes of JSON", MaxMetadataBytes)
	}
	return compact.Bytes(), nil
}

// AllowedCIDRs parses a key's allowed networks: IPv4 or IPv6 CIDRs (a
// bare address is the network of that one address), at most
// MaxAllowedCIDRs. They come back normalized: host bits cleared, an
// IPv4-mapped IPv6 network as the IPv4 one, duplicates dropped, in the
// order given.
func AllowedCIDRs(raw []string) ([]netip.Prefix, error) {
	if len(raw) > MaxAllowedCIDRs {
		return nil, Errorf(CodeValidation, "allowed_cidrs holds at most %d networks", MaxAllowedCIDRs)
	}
	out := make([]netip.Prefix, 0, len(raw))
	for _, s := range raw {
		p, ok := parseCIDR(strings.TrimSpace(s))
		if !ok {
			return nil, Errorf(CodeValidation, "allowed_cidrs: %q is not an IPv4 or IPv6 network such as 203.0.113.0/24 or 2001:db8::/32", truncate(s, 64))
		}
		if !containsPrefix(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func parseCIDR(s string) (netip.Prefix, bool) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, false
		}
	} else {
		addr, err := netip.ParseAddr(s)
		if err != nil || addr.Zone() != "" {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(addr, addr.BitLen())
	}
	if addr := p.Addr(); addr.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false // wider than the mapped range: not an IPv4 network
		}
		p = netip.PrefixFrom(addr.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// truncate cuts s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// NetAllowed reports whether a key restricted to nets may be used from
// addr: any address when nets is empty, else only one inside them (an
// unknown address is not). It runs on every request: no allocation.
func NetAllowed(nets []netip.Prefix, addr netip.Addr) bool {
	if len(nets) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, n := range nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}
