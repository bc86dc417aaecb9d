package gateway_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/gateway"
)

func TestParseRoutes(t *testing.T) {
	t.Parallel()
	routes, err := gateway.ParseRoutes(" /app/ http://127.0.0.1:9000 scope=keys:write read_scope=keys:read ;; /files/ https://files.internal/base/ strip_prefix audience=files ; ")
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 2 {
		t.Fatalf("got %d routes, want 2", len(routes))
	}
	app, files := routes[0], routes[1]
	if app.Prefix != "/app/" || app.Upstream.String() != "http://127.0.0.1:9000" || app.Scope != "keys:write" ||
		app.ReadScope != "keys:read" || app.StripPrefix || app.Audience != gateway.DefaultAudience {
		t.Errorf("app route: %+v", app)
	}
	if files.Prefix != "/files/" || files.Upstream.Path != "/base/" || !files.StripPrefix || files.Audience != "files" || files.Scope != "" {
		t.Errorf("files route: %+v", files)
	}
	if empty, err := gateway.ParseRoutes("  "); err != nil || len(empty) != 0 {
		t.Errorf("empty spec: %v, %v", empty, err)
	}
}

func TestParseRoutesRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ spec, want string }{
		{"/app/", "want PREFIX UPSTREAM_URL"},
		{"app/ http://x", "must start and end with /"},
		{"/app http://x", "must start and end with /"},
		{"/ http://x", "must start and end with /"},
		{"/a%70p/ http://x", "plain path"},
		{"/app/../v1/ http://x", "plain path"},
		{"/a//b/ http://x", "plain path"},
		{"/{id}/ http://x", "plain path"},
		{"/app/?x=1/ http://x", "plain path"},
		{"/v1/ http://x", "overlaps keyhub"},
		{"/v1/app/ http://x", "overlaps keyhub"},
		{"/ws/ http://x", "overlaps keyhub"},
		{"/dashboard/ http://x", "overlaps keyhub"},
		{"/.well-known/ http://x", "overlaps keyhub"},
		{"/app/ ftp://x", "http:// or https://"},
		{"/app/ //x", "http:// or https://"},
		{"/app/ http:x", "http:// or https://"},
		{"/app/ http://user:secret@x", "user info"},
		{"/app/ http://x/?q=1", "query or fragment"},
		{"/app/ http://x/#f", "query or fragment"},
		{"/app/ http://x scope=", "unknown option"},
		{"/app/ http://x strip_prefix=yes", "unknown option"},
		{"/app/ http://x colour=red", "unknown option"},
		{"/app/ http://x scope=a:b scope=c:d", "given twice"},
		{"/app/ http://x; /app/ http://y", "listed twice"},
	} {
		_, err := gateway.ParseRoutes(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRoutes(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseRoutes(%q) repeats the upstream's user info: %v", tc.spec, err)
		}
	}
}

// TestReservedCoversPrefixes: a prefix that ParseRoutes accepts is never
// one of keyhub's own paths, and keyhub's paths are reserved.
func TestReserved(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/v1/keys", "/api/v1/auth/api-keys/", "/ws", "/ws/daemon", "/healthz", "/readyz", "/openapi.yaml", "/dashboard", "/dashboard/app.js", "/auth/v1/.well-known/jwks.json", "/.well-known/jwks.json", "/dev/token", "/"} {
		if !gateway.Reserved(path) {
			t.Errorf("%s is not reserved", path)
		}
	}
	for _, path := range []string{"/app/", "/wsx/", "/v2/", "/healthzz/"} {
		if gateway.Reserved(path) {
			t.Errorf("%s is reserved", path)
		}
	}
}

// FuzzParseRoutes: any input either fails or parses into routes whose
// String form parses back to the same routes, each with a prefix that
// shadows nothing of keyhub's.
func FuzzParseRoutes(f *testing.F) {
	for _, seed := range []string{
		"/app/ http://127.0.0.1:9000 scope=app:write read_scope=app:read",
		"/a/ https://h/base strip_prefix audience=x; /b/ http://[::1]:80/",
		"/app/ http://x/%2F",
		";;",
		"/v1/ http://x",
		"/a%2F/ http://x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		routes, err := gateway.ParseRoutes(spec)
		if err != nil {
			return
		}
		var parts []string
		for _, rt := range routes {
			if gateway.Reserved(rt.Prefix) || !strings.HasPrefix(rt.Prefix, "/") || !strings.HasSuffix(rt.Prefix, "/") {
				t.Fatalf("accepted prefix %q", rt.Prefix)
			}
			if rt.Upstream.User != nil || rt.Upstream.RawQuery != "" || rt.Upstream.Host == "" {
				t.Fatalf("accepted upstream %q", rt.Upstream)
			}
			parts = append(parts, rt.String())
		}
		again, err := gateway.ParseRoutes(strings.Join(parts, ";"))
		if err != nil {
			t.Fatalf("String form %q does not parse: %v", parts, err)
		}
		if len(again) != len(routes) {
			t.Fatalf("round trip: %d routes, then %d", len(routes), len(again))
		}
		for i := range routes {
			a, b := routes[i], again[i]
			if a.Upstream.String() != b.Upstream.String() {
				t.Fatalf("upstream %q became %q", a.Upstream, b.Upstream)
			}
			a.Upstream, b.Upstream = nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("round trip: %+v became %+v", a, b)
			}
		}
	})
}
