package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/webhooks"
)

func TestPolicyAddrAllowed(t *testing.T) {
	t.Parallel()
	strict := webhooks.Policy{}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"93.184.215.14", true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true},
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"100.64.0.1", false},      // CGNAT
		{"100.127.255.254", false}, // CGNAT
		{"169.254.169.254", false}, // cloud metadata
		{"169.254.1.1", false},
		{"fd00:ec2::254", false}, // AWS metadata over IPv6 (ULA)
		{"fc00::1", false},
		{"fe80::1", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"::ffff:10.0.0.1", false},
		{"::ffff:93.184.215.14", true}, // a mapped public address is that address
		{"64:ff9b::7f00:1", false},     // NAT64 of 127.0.0.1
		{"2002:7f00:1::1", false},      // 6to4 of 127.0.0.1
		{"2001:0:4136:e378::1", false}, // Teredo
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"198.18.0.1", false},
		{"ff02::1", false},
	} {
		if got := strict.AddrAllowed(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("AddrAllowed(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	insecure := webhooks.Policy{AllowInsecure: true}
	if !insecure.AddrAllowed(netip.MustParseAddr("127.0.0.1")) || !insecure.AddrAllowed(netip.MustParseAddr("::1")) {
		t.Error("WEBHOOKS_ALLOW_INSECURE does not allow loopback")
	}
	if insecure.AddrAllowed(netip.MustParseAddr("10.0.0.1")) || insecure.AddrAllowed(netip.MustParseAddr("169.254.169.254")) {
		t.Error("WEBHOOKS_ALLOW_INSECURE allows more than loopback")
	}
	private := webhooks.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	if !private.AddrAllowed(netip.MustParseAddr("10.20.3.4")) || private.AddrAllowed(netip.MustParseAddr("10.21.0.1")) {
		t.Error("WEBHOOKS_ALLOWED_NETWORKS is not applied exactly")
	}
}

// resolver answers from a table, as DNS would.
type resolver map[string][]string

func (r resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range r[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	dns := resolver{
		"hooks.example.com": {"93.184.215.14"},
		"internal.example":  {"10.0.0.5"},
		"rebind.example":    {"93.184.215.14", "127.0.0.1"},
		"metadata.example":  {"169.254.169.254"},
		"localhost":         {"127.0.0.1", "::1"},
	}
	strict, insecure := webhooks.Policy{}, webhooks.Policy{AllowInsecure: true}
	for _, tc := range []struct {
		policy webhooks.Policy
		url    string
		want   keyhub.Code // "" accepted
	}{
		{strict, "https://hooks.example.com/keyhub?token=abc", ""},
		{strict, "https://93.184.215.14:8443/x", ""},
		{strict, "http://hooks.example.com/x", keyhub.CodeValidation},
		{strict, "ftp://hooks.example.com/x", keyhub.CodeValidation},
		{strict, "https://user:pass@hooks.example.com/x", keyhub.CodeValidation},
		{strict, "https://hooks.example.com/x#frag", keyhub.CodeValidation},
		{strict, "/relative", keyhub.CodeValidation},
		{strict, "https:///nohost", keyhub.CodeValidation},
		{strict, "https://nowhere.example/x", keyhub.CodeValidation},
		{strict, "https://" + strings.Repeat("a", 2050) + ".example/", keyhub.CodeValidation},
		{strict, "https://internal.example/x", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://rebind.example/x", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://metadata.example/latest/meta-data", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://169.254.169.254/latest/meta-data", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://127.0.0.1/x", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://[::1]/x", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://[::ffff:127.0.0.1]/x", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://[fd00:ec2::254]/x", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://100.64.1.1/x", keyhub.CodeWebhookURLNotAllowed},
		{strict, "https://localhost/x", keyhub.CodeWebhookURLNotAllowed},
		{strict, "http://localhost/x", keyhub.CodeValidation},
		{insecure, "http://127.0.0.1:9000/x", ""},
		{insecure, "http://localhost:9000/x", ""},
		{insecure, "http://[::1]:9000/x", ""},
		{insecure, "http://hooks.example.com/x", keyhub.CodeValidation}, // plain http only to loopback
		{insecure, "https://internal.example/x", keyhub.CodeWebhookURLNotAllowed},
	} {
		_, err := tc.policy.CheckURL(context.Background(), dns, tc.url)
		if got := code(err); got != tc.want {
			t.Errorf("CheckURL(%.60q, insecure=%v) = %v, want %q", tc.url, tc.policy.AllowInsecure, err, tc.want)
		}
	}
}

func code(err error) keyhub.Code {
	if err == nil {
		return ""
	}
	return keyhub.ErrorCode(err)
}

// countingServer counts the requests it gets.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestClientRefusesTheAddressItDials: the check is made on the address
// actually connected to, whatever the URL's host was when it was
// registered (DNS rebinding): "localhost" and 127.0.0.1 both resolve to
// a loopback address at dial time and are refused before a byte is sent.
func TestClientRefusesTheAddressItDials(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	client := webhooks.NewClient(webhooks.Policy{}, 5*time.Second, nil)
	for _, target := range []string{srv.URL, "http://localhost:" + port} {
		resp, err := client.Post(target, "application/json", strings.NewReader("{}"))
		if resp != nil {
			resp.Body.Close()
		}
		var refused *webhooks.AddrRefusedError
		if !errors.As(err, &refused) || !refused.Addr.IsLoopback() {
			t.Fatalf("POST %s: %v, want the loopback address refused", target, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver got %d requests", hits.Load())
	}
	// Allowed by configuration, the same call goes through.
	allowed := webhooks.NewClient(webhooks.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, 5*time.Second, nil)
	resp, err := allowed.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || hits.Load() != 1 {
		t.Fatalf("allowed: %d, %d hits", resp.StatusCode, hits.Load())
	}
}

// TestClientFollowsNoRedirect: a 3xx is the answer; its Location is
// never called (it could point anywhere, inside too).
func TestClientFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	target, targetHits := countingServer(t, func(w http.ResponseWriter, _ *http.Request) {})
	redirector, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	})
	client := webhooks.NewClient(webhooks.Policy{AllowInsecure: true}, 5*time.Second, nil)
	resp, err := client.Post(redirector.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || targetHits.Load() != 0 {
		t.Fatalf("status %d, redirect target hit %d times", resp.StatusCode, targetHits.Load())
	}
}

// TestClientTimesOut: a receiver that holds the request does not hold
// the attempt longer than the timeout.
func TestClientTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	client := webhooks.NewClient(webhooks.Policy{AllowInsecure: true}, 200*time.Millisecond, nil)
	start := time.Now()
	resp, err := client.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if resp != nil {
		resp.Body.Close()
	}
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}
