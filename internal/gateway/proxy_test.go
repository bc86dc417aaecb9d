package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/apitest"
)

// keyhubHeaders are the Keyhub- headers keyhub itself may set on a
// proxied request; a client's are never forwarded.
var keyhubHeaders = map[string]bool{
	"Keyhub-Identity": true, "Keyhub-User-Id": true, "Keyhub-Owner-Id": true,
	"Keyhub-Key-Id": true, "Keyhub-Scopes": true, "Keyhub-Tier": true,
}

// TestProxyNeverForwardsCredentials sends credentials and forged Keyhub-
// headers in every casing, spelling and number a client can, and proves
// with a recording upstream that none of them, nor any ticket parameter,
// leaves keyhub.
func TestProxyNeverForwardsCredentials(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL})
	key, jwt := newKey(t, env, nil)
	secrets := []string{key, jwt, "tkt-secret"}

	forged := "KEYHUB-IDENTITY: forged\nkeyhub-user-id: forged\nKeyhub-Owner-Id: forged-1\nKeyhub-Owner-Id: forged-2\n" +
		"Keyhub_Scopes: forged\nkeyhub-anything-else: forged\nX_API_KEY: tkt-secret\nx_makima_api_key: tkt-secret\n" +
		"Proxy-Authorization: Basic tkt-secret\nConnection: X-Hop\nX-Hop: forged\n"
	for name, request := range map[string]string{
		"key in every header, any case, duplicated": "GET /app/x?ticket=tkt-secret&keep=1&TICKET=tkt-secret&a=1;ticket=tkt-secret&t%69cket=tkt-secret HTTP/1.1\nHost: client.test\n" +
			"authorization: Bearer " + key + "\nX-API-KEY: " + key + "\nx-api-key: " + key + "\nX-Makima-Api-Key: " + key + "\nx-makima-api-key: " + key + "\n" +
			forged + "\n",
		"lower-case scheme, an escaped ticket alone": "GET /app/y?keep=1&t%69cket=tkt-secret HTTP/1.1\nHost: client.test\nAUTHORIZATION: bearer " + key + "\n" + forged + "\n",
		"user session": "POST /app/z?keep=1&ticket=tkt-secret HTTP/1.1\nHost: client.test\nAuthorization: Bearer " + jwt + "\nContent-Length: 4\n" + forged + "\nbody",
	} {
		resp := rawRequest(t, env, request)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		got := up.last(t)
		if !strings.Contains(got.RawQuery, "keep=1") || strings.Contains(strings.ToLower(got.RawQuery), "ticket") || strings.Contains(got.RawQuery, "t%69cket") {
			t.Errorf("%s: the upstream's query is %q", name, got.RawQuery)
		}
		for header, values := range got.Header {
			norm := strings.ToLower(strings.ReplaceAll(header, "_", "-"))
			switch {
			case norm == "authorization" || norm == "x-api-key" || norm == "x-makima-api-key" || norm == "proxy-authorization" || norm == "x-hop":
				t.Errorf("%s: the upstream received %s: %q", name, header, values)
			case strings.HasPrefix(norm, "keyhub-") && (!keyhubHeaders[header] || len(values) != 1):
				t.Errorf("%s: the upstream received the client's %s: %q", name, header, values)
			}
			for _, v := range values {
				for _, secret := range secrets {
					if strings.Contains(v, secret) {
						t.Errorf("%s: the upstream received a credential in %s", name, header)
					}
				}
				if strings.Contains(v, "forged") {
					t.Errorf("%s: the upstream received the forged %s: %q", name, header, v)
				}
			}
		}
	}
}

// TestProxyForwardsTheRequest: method, path, query, body and the
// forwarding headers reach the upstream; the client's own X-Forwarded-*
// are not believed from an untrusted address.
func TestProxyForwardsTheRequest(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	env := apitest.New(t, map[string]string{
		"GATEWAY_ROUTES": "/app/ " + up.URL + " ; /files/ " + up.URL + "/base/ strip_prefix",
	})
	key, _ := newKey(t, env, nil)
	upHost := strings.TrimPrefix(up.URL, "http://")

	req, _ := http.NewRequest(http.MethodPut, env.URL+"/app/tasks/a%2Fb?q=1&q=2", strings.NewReader(`{"x":1}`))
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil.test")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("X-Real-Ip", "6.6.6.6")
	req.Header.Set("X-Custom", "kept")
	resp, body := do(t, env, req)
	if resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	got := up.last(t)
	envHost := strings.TrimPrefix(env.URL, "http://")
	for what, pair := range map[string][2]string{
		"method":            {got.Method, http.MethodPut},
		"raw path":          {got.RawPath, "/app/tasks/a%2Fb"},
		"query":             {got.RawQuery, "q=1&q=2"},
		"body":              {got.Body, `{"x":1}`},
		"Host":              {got.Host, upHost},
		"X-Forwarded-For":   {strings.Join(got.Header.Values("X-Forwarded-For"), ","), "127.0.0.1"},
		"X-Forwarded-Host":  {strings.Join(got.Header.Values("X-Forwarded-Host"), ","), envHost},
		"X-Forwarded-Proto": {strings.Join(got.Header.Values("X-Forwarded-Proto"), ","), "http"},
		"Forwarded":         {got.Header.Get("Forwarded"), ""},
		"X-Real-Ip":         {got.Header.Get("X-Real-Ip"), ""},
		"X-Custom":          {got.Header.Get("X-Custom"), "kept"},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s: upstream got %q, want %q", what, pair[0], pair[1])
		}
	}
	if resp.Header.Get("RateLimit-Policy") == "" {
		t.Errorf("a proxied answer carries no RateLimit-Policy: %v", resp.Header)
	}

	// strip_prefix: the prefix goes, the upstream's base path comes first.
	resp, _ = get(t, env, "/files/dir/f.txt?v=1", map[string]string{"X-Api-Key": key})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /files/: %d", resp.StatusCode)
	}
	if got := up.last(t); got.Path != "/base/dir/f.txt" || got.RawQuery != "v=1" {
		t.Errorf("strip_prefix: upstream got %s?%s, want /base/dir/f.txt?v=1", got.Path, got.RawQuery)
	}

	// A dot segment could step out of the route (or the base path).
	before := len(up.requests())
	resp = rawRequest(t, env, "GET /files/../v1/keys HTTP/1.1\nHost: x\nX-Api-Key: "+key+"\n\n")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a dot segment: %d, want 400", resp.StatusCode)
	}
	if len(up.requests()) != before {
		t.Error("a path with a dot segment reached the upstream")
	}
}

// TestProxyTrustsForwardingFromTrustedProxies: behind a trusted proxy, the
// client address, protocol and host it reports are passed on, resolved to
// one address.
func TestProxyTrustsForwardingFromTrustedProxies(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL, "TRUSTED_PROXIES": "127.0.0.1"})
	key, _ := newKey(t, env, nil)
	resp, _ := get(t, env, "/app/", map[string]string{
		"X-Api-Key":         key,
		"X-Forwarded-For":   "6.6.6.6, 203.0.113.9",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "app.example.com",
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	got := up.last(t)
	if xff := strings.Join(got.Header.Values("X-Forwarded-For"), ","); xff != "203.0.113.9" {
		t.Errorf("X-Forwarded-For = %q, want the client the trusted proxy saw", xff)
	}
	if got.Header.Get("X-Forwarded-Proto") != "https" || got.Header.Get("X-Forwarded-Host") != "app.example.com" {
		t.Errorf("X-Forwarded-Proto/Host = %q/%q", got.Header.Get("X-Forwarded-Proto"), got.Header.Get("X-Forwarded-Host"))
	}
}

// TestProxyAdmission: a route's requests are authenticated, scoped per
// method and rate limited like REST; a refused request never reaches the
// upstream.
func TestProxyAdmission(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	env := apitest.New(t, map[string]string{
		"PRODUCT_SCOPES":      "app:read,app:write",
		"GATEWAY_ROUTES":      "/app/ " + up.URL + " scope=app:write read_scope=app:read",
		"RATE_LIMIT_TIER_RPM": "free=3",
	})
	reader, _ := newKey(t, env, []string{"app:read", "keys:write"})

	for _, tc := range []struct {
		method, cred string
		status       int
		code         string
	}{
		{http.MethodGet, "", http.StatusUnauthorized, "MISSING_CREDENTIALS"},
		{http.MethodGet, "mk_not_a_real_key", http.StatusUnauthorized, ""},
		{http.MethodPost, reader, http.StatusForbidden, "INSUFFICIENT_SCOPE"},
		{http.MethodGet, reader, http.StatusOK, ""},
		{http.MethodHead, reader, http.StatusOK, ""},
		{http.MethodGet, reader, http.StatusTooManyRequests, "RATE_LIMITED"},
	} {
		r := env.Do(t, apitest.Request{Method: tc.method, Path: "/app/thing", Cred: tc.cred})
		if r.Status != tc.status || (tc.code != "" && r.ErrorCode() != tc.code) {
			t.Fatalf("%s with %.8q: %d %s, want %d %s", tc.method, tc.cred, r.Status, r.Body, tc.status, tc.code)
		}
		if r.Status == http.StatusTooManyRequests && r.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	seen := up.requests()
	if len(seen) != 2 || seen[0].Method != http.MethodGet || seen[1].Method != http.MethodHead {
		t.Errorf("the upstream received %d requests, want the GET and the HEAD: %+v", len(seen), seen)
	}
}

// TestProxyUpstreamFailures: an upstream that is down, breaks the
// connection, is slow to answer or stalls mid-answer gets the client a
// clear answer in bounded time, never a 500 or a hung request.
func TestProxyUpstreamFailures(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	stall := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	reset := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	env := apitest.New(t, map[string]string{
		"GATEWAY_ROUTES":  "/down/ " + down + "; /slow/ " + slow.URL + "; /stall/ " + stall.URL + "; /reset/ " + reset.URL,
		"GATEWAY_TIMEOUT": "300ms",
		"REQUEST_TIMEOUT": "2s",
	})
	key, _ := newKey(t, env, nil)

	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/down/x", http.StatusBadGateway, "UPSTREAM_UNAVAILABLE"},
		{"/reset/x", http.StatusBadGateway, "UPSTREAM_UNAVAILABLE"},
		{"/slow/x", http.StatusGatewayTimeout, "UPSTREAM_TIMEOUT"},
	} {
		start := time.Now()
		r := env.Do(t, apitest.Request{Method: http.MethodGet, Path: tc.path, Cred: key})
		if r.Status != tc.status || r.ErrorCode() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.path, r.Status, r.Body, tc.status, tc.code)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", tc.path, ct)
		}
		if tc.status == http.StatusBadGateway && r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 502 without Retry-After", tc.path)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %s", tc.path, d)
		}
	}

	// Headers and a first chunk arrived, then nothing: the exchange ends at
	// REQUEST_TIMEOUT with a broken body, not a complete-looking one.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.URL+"/stall/x", nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := env.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "partial" || err == nil {
		t.Errorf("stalled upstream: %d %q, read error %v; want 200, the first chunk, then an error", resp.StatusCode, body, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a stalled upstream held the client %s", d)
	}
}

// TestProxyStreamsBothWays: the client reads the upstream's first answer
// before it sends the rest of its body, through keyhub.
func TestProxyStreamsBothWays(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return
		}
		fmt.Fprintf(w, "got %s;", buf)
		_ = http.NewResponseController(w).Flush()
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "then %s", rest)
	})
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL})
	key, _ := newKey(t, env, nil)

	bodyR, bodyW := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/app/stream", bodyR)
	req.Header.Set("X-Api-Key", key)
	go func() { _, _ = io.WriteString(bodyW, "first") }()
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := env.Server.Client().Do(req)
		done <- result{resp, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no response headers while the request body is still open: the proxy buffers")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.resp.Body.Close()
	first := make([]byte, len("got first;"))
	if _, err := io.ReadFull(res.resp.Body, first); err != nil || string(first) != "got first;" {
		t.Fatalf("first chunk: %q, %v", first, err)
	}
	_, _ = io.WriteString(bodyW, "second")
	bodyW.Close()
	rest, err := io.ReadAll(res.resp.Body)
	if err != nil || string(rest) != "then second" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
}

// TestProxyObservedNotAudited: proxied requests appear in the gateway's
// metrics by route and status, and write no audit event.
func TestProxyObservedNotAudited(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	env := apitest.New(t, map[string]string{"GATEWAY_ROUTES": "/app/ " + up.URL})
	key, jwt := newKey(t, env, nil)
	events := func() int {
		var page struct {
			Events []json.RawMessage `json:"events"`
		}
		env.Get(t, "/v1/events", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
		return len(page.Events)
	}
	before := events()
	for range 3 {
		env.Get(t, "/app/x", key).Want(t, http.StatusOK, "")
	}
	env.Get(t, "/app/x", "").Want(t, http.StatusUnauthorized, "")
	if after := events(); after != before {
		t.Errorf("proxied requests wrote %d audit events", after-before)
	}

	rec := httptest.NewRecorder()
	env.App.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`keyhub_gateway_requests_total{code="200",route="/app/"} 3`,
		`keyhub_gateway_requests_total{code="401",route="/app/"} 1`,
		`keyhub_gateway_request_duration_seconds_count{route="/app/"} 4`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(text, "keyhub_gateway"))
		}
	}
}

func grep(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
