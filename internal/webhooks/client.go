package webhooks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Policy says which endpoints keyhub may call. By default only public
// HTTPS: an owner's webhook must not become a way to reach keyhub's own
// network (SSRF), its cloud metadata service or the host itself.
type Policy struct {
	// AllowInsecure (WEBHOOKS_ALLOW_INSECURE, tests only) allows plain
	// http:// to a loopback host, and loopback addresses.
	AllowInsecure bool
	// Allowed are networks called although they are not public
	// (WEBHOOKS_ALLOWED_NETWORKS), e.g. a receiver on the private network.
	Allowed []netip.Prefix
}

// blocked are the networks that are not the public internet, or that
// embed an IPv4 address a gateway would translate to (so an internal one
// could hide behind them). Addresses are judged after unmapping, so
// ::ffff:127.0.0.1 is judged as 127.0.0.1.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this" network; 0.0.0.0 reaches the host
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, with the metadata service at 169.254.169.254
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and the broadcast address
		"::/128",          // unspecified
		"::1/128",         // loopback
		"::ffff:0:0/96",   // IPv4-mapped (judged unmapped; here for completeness)
		"64:ff9b::/96",    // NAT64: embeds an IPv4 address
		"64:ff9b:1::/48",  // local NAT64
		"100::/64",        // discard
		"2001::/32",       // Teredo: embeds an IPv4 address
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: embeds an IPv4 address
		"fc00::/7",        // unique local (AWS's metadata service is fd00:ec2::254)
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// AddrAllowed reports whether keyhub may connect to addr.
func (p Policy) AddrAllowed(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, pfx := range p.Allowed {
		if pfx.Contains(addr) {
			return true
		}
	}
	if p.AllowInsecure && addr.IsLoopback() {
		return true
	}
	if !addr.IsValid() || !addr.IsGlobalUnicast() {
		return false
	}
	for _, pfx := range blocked {
		if pfx.Contains(addr) {
			return false
		}
	}
	return true
}

// AddrRefusedError is the error of a connection the policy refused.
type AddrRefusedError struct{ Addr netip.Addr }

func (e *AddrRefusedError) Error() string {
	return fmt.Sprintf("address %s is not allowed (not a public address; see WEBHOOKS_ALLOWED_NETWORKS)", e.Addr)
}

// control refuses, at the moment of connecting, an address the policy does
// not allow. Checking the address actually dialled, rather than what the
// host name resolved to when the webhook was registered, closes DNS
// rebinding: a name that resolves to a public address once and to
// 127.0.0.1 later is refused when it matters.
func (p Policy) control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dialling %q: not an IP address", host)
	}
	if !p.AddrAllowed(addr) {
		return &AddrRefusedError{Addr: addr.Unmap()}
	}
	return nil
}

// maxResponseBytes is how much of an answer is read (and dropped) so that
// the connection can be reused; a receiver cannot make keyhub read more.
const maxResponseBytes = 64 << 10

// NewClient returns the HTTP client deliveries use: every connection is
// checked against the policy when it is dialled, no proxy from the
// environment (it would dial for us, unchecked), no redirect followed (a
// 3xx is the answer, and a failure), and timeout bounds a whole attempt.
// tlsConfig may be nil (the system's roots).
func NewClient(p Policy, timeout time.Duration, tlsConfig *tls.Config) *http.Client {
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), Control: p.control}
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		ResponseHeaderTimeout:  timeout,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// maxURLLength bounds an endpoint URL, as the webhooks table does.
const maxURLLength = 2048

// lookupTimeout bounds resolving an endpoint's host at registration.
const lookupTimeout = 5 * time.Second

// Resolver resolves host names (net.DefaultResolver; tests give their own).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckURL validates an endpoint for registration: https (http only for a
// loopback host with AllowInsecure), a host, no credentials or fragment,
// and every address the host resolves to allowed. The check at dial time
// (NewClient) is the one that protects; this one tells the owner at once.
func (p Policy) CheckURL(ctx context.Context, resolver Resolver, raw string) (*url.URL, error) {
	invalid := func(format string, args ...any) error {
		return keyhub.Errorf(keyhub.CodeValidation, "url "+format, args...)
	}
	if len(raw) > maxURLLength {
		return nil, invalid("must be at most %d characters", maxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, invalid("must be an absolute URL such as https://example.com/hooks/keyhub")
	}
	if u.User != nil {
		return nil, invalid("must not carry a user name or password")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, invalid("must not have a fragment")
	}
	host := u.Hostname()
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowInsecure || !isLoopbackHost(host) {
			return nil, invalid("must use https (plain http is only for a loopback receiver with WEBHOOKS_ALLOW_INSECURE=1)")
		}
	default:
		return nil, invalid("must use https")
	}
	var addrs []netip.Addr
	if addr, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{addr}
	} else {
		lookupCtx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		addrs, err = resolver.LookupNetIP(lookupCtx, "ip", host)
		if err != nil || len(addrs) == 0 {
			return nil, invalid("host %q does not resolve", host)
		}
	}
	for _, addr := range addrs {
		if !p.AddrAllowed(addr) {
			return nil, keyhub.Errorf(keyhub.CodeWebhookURLNotAllowed,
				"url host %q resolves to %s, which is not a public address; keyhub does not call loopback, private, link-local or metadata addresses", host, addr.Unmap())
		}
	}
	return u, nil
}

// isLoopbackHost reports whether host names the machine itself.
func isLoopbackHost(host string) bool {
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.Unmap().IsLoopback()
	}
	return strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost")
}

// describeError says why an attempt got no answer, in words fit for the
// owner: never the URL (its query may hold a token) nor a body.
func describeError(err error, timeout time.Duration) string {
	var refused *AddrRefusedError
	if errors.As(err, &refused) {
		return refused.Error()
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		if urlErr.Timeout() {
			return fmt.Sprintf("no answer within %s", timeout)
		}
		err = urlErr.Err
	}
	if errors.Is(err, context.Canceled) {
		return "canceled: keyhub was shutting down"
	}
	return err.Error()
}
