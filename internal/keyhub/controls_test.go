package keyhub_test

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/keyhub"
)

func TestAllowedCIDRs(t *testing.T) {
	t.Parallel()
	got, err := keyhub.AllowedCIDRs([]string{" 10.1.2.3/8 ", "10.0.0.0/8", "2001:db8::1/32", "192.0.2.7", "::ffff:198.51.100.0/120", "::1"})
	want := []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32", "198.51.100.0/24", "::1/128"}
	var names []string
	for _, p := range got {
		names = append(names, p.String())
	}
	if err != nil || !slices.Equal(names, want) {
		t.Fatalf("got %v %v, want %v", names, err, want)
	}
	for _, bad := range [][]string{{"10.0.0.0/33"}, {"host"}, {""}, {"fe80::1%eth0"}, {"fe80::/10%eth0"}, {"::ffff:0:0/90"}, {"1.2.3"}, slices.Repeat([]string{"10.0.0.1"}, 33)} {
		if _, err := keyhub.AllowedCIDRs(bad); keyhub.ErrorCode(err) != keyhub.CodeValidation {
			t.Errorf("%q: %v, want VALIDATION_FAILED", bad, err)
		}
	}
	if got, err := keyhub.AllowedCIDRs(nil); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("none: %v %v", got, err)
	}
}

// Not parallel: AllocsPerRun refuses to run in a parallel test.
func TestNetAllowed(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	for addr, want := range map[string]bool{
		"203.0.113.9": true, "::ffff:203.0.113.9": true, "2001:db8:1::1": true,
		"203.0.114.1": false, "2001:db9::1": false, "127.0.0.1": false,
	} {
		if got := keyhub.NetAllowed(nets, netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: %t", addr, got)
		}
	}
	if keyhub.NetAllowed(nets, netip.Addr{}) {
		t.Error("an unknown address is allowed")
	}
	if !keyhub.NetAllowed(nil, netip.Addr{}) {
		t.Error("no restriction refuses")
	}
	if n := testing.AllocsPerRun(100, func() { keyhub.NetAllowed(nets, netip.MustParseAddr("2001:db8::5")) }); n != 0 {
		t.Errorf("%v allocations per check", n)
	}
}

func TestKeyMetadata(t *testing.T) {
	t.Parallel()
	got, err := keyhub.KeyMetadata(json.RawMessage(` { "a" : [1, 2] } `))
	if err != nil || string(got) != `{"a":[1,2]}` {
		t.Fatalf("%s %v", got, err)
	}
	big := `{"x":"` + strings.Repeat("y", keyhub.MaxMetadataBytes-8) + `"}`
	if _, err := keyhub.KeyMetadata(json.RawMessage(big)); err != nil {
		t.Fatalf("exactly %d bytes: %v", len(big), err)
	}
	for _, bad := range []string{"null", "[]", `"s"`, "1", big[:len(big)-2] + `y"}`, "{", ""} {
		if _, err := keyhub.KeyMetadata(json.RawMessage(bad)); keyhub.ErrorCode(err) != keyhub.CodeValidation {
			t.Errorf("%.40q: %v", bad, err)
		}
	}
}

// FuzzAllowedCIDRs: whatever a client sends, the parser either refuses it
// with VALIDATION_FAILED or returns networks that are normalized (masked,
// no IPv4-mapped form) and parse back to themselves.
func FuzzAllowedCIDRs(f *testing.F) {
	for _, seed := range []string{"10.0.0.0/8", "2001:db8::1/32", "::ffff:1.2.3.4/128", "1.2.3.4", "fe80::1%eth0", "300.1.1.1/8", "::/0"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nets, err := keyhub.AllowedCIDRs([]string{s})
		if err != nil {
			if keyhub.ErrorCode(err) != keyhub.CodeValidation {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		for _, n := range nets {
			if n != n.Masked() || n.Addr().Is4In6() || n.Addr().Zone() != "" {
				t.Fatalf("%q gave %v, not normalized", s, n)
			}
			again, err := keyhub.AllowedCIDRs([]string{n.String()})
			if err != nil || len(again) != 1 || again[0] != n {
				t.Fatalf("%v does not parse back: %v %v", n, again, err)
			}
		}
	})
}
