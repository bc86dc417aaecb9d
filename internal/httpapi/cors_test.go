package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/apitest"
)

// preflight sends a browser's CORS preflight for POST /v1/keys from origin.
// It goes around apitest.Env.Do: OPTIONS is answered by the CORS layer for
// every path and is not an operation of openapi.yaml.
func preflight(t *testing.T, env *apitest.Env, origin, headers string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, env.URL+"/v1/keys", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	req.Header.Set("Access-Control-Request-Headers", headers)
	resp, err := env.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("preflight: %v", err)
	}
	resp.Body.Close()
	return resp
}

func corsHeaders(h http.Header) []string {
	var names []string
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "access-control-") {
			names = append(names, name)
		}
	}
	return names
}

func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"ALLOWED_ORIGINS": "https://app.example.com, https://*.tenant.example", "CORS_MAX_AGE": "90s"})

	t.Run("allowed", func(t *testing.T) {
		for _, origin := range []string{"https://app.example.com", "https://a.tenant.example"} {
			resp := preflight(t, env, origin, "authorization,content-type,x-api-key,x-makima-api-key")
			h := resp.Header
			if resp.StatusCode != http.StatusOK || h.Get("Access-Control-Allow-Origin") != origin {
				t.Fatalf("%s: status %d, Allow-Origin %q, want 200 and the origin echoed", origin, resp.StatusCode, h.Get("Access-Control-Allow-Origin"))
			}
			if got := h.Get("Access-Control-Allow-Methods"); got != http.MethodPost {
				t.Errorf("Allow-Methods %q", got)
			}
			if got := strings.ToLower(h.Get("Access-Control-Allow-Headers")); got != "authorization, content-type, x-api-key, x-makima-api-key" {
				t.Errorf("Allow-Headers %q", got)
			}
			if h.Get("Access-Control-Max-Age") != "90" {
				t.Errorf("Max-Age %q", h.Get("Access-Control-Max-Age"))
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("credentials allowed: %q", h.Get("Access-Control-Allow-Credentials"))
			}
			if !slices.Contains(h.Values("Vary"), "Origin") {
				t.Errorf("Vary %q lacks Origin", h.Values("Vary"))
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct{ origin, headers string }{
			{"https://evil.example", "authorization"},
			{"http://app.example.com", "authorization"},         // scheme is part of the origin
			{"https://tenant.example", "authorization"},         // the wildcard needs a subdomain
			{"https://app.example.com", "authorization,x-evil"}, // a header not allowed
		} {
			resp := preflight(t, env, tc.origin, tc.headers)
			if got := corsHeaders(resp.Header); len(got) != 0 {
				t.Errorf("%s %s: CORS headers %v on a refused preflight", tc.origin, tc.headers, got)
			}
		}
	})
}

func TestCORSActualRequest(t *testing.T) {
	t.Parallel()
	const allowed = "https://app.example.com"
	env := apitest.New(t, map[string]string{"ALLOWED_ORIGINS": allowed})
	token := env.Token(t, "cors@example.com")

	resp := env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Cred: token, Headers: map[string]string{"Origin": allowed}}).Want(t, http.StatusOK, "")
	if resp.Header.Get("Access-Control-Allow-Origin") != allowed {
		t.Fatalf("Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	exposed := strings.Split(resp.Header.Get("Access-Control-Expose-Headers"), ", ")
	for _, want := range []string{"X-Request-Id", "Retry-After", "Ratelimit", "Ratelimit-Policy"} {
		if !slices.ContainsFunc(exposed, func(h string) bool { return strings.EqualFold(h, want) }) {
			t.Errorf("Expose-Headers %q lacks %s", exposed, want)
		}
	}

	// Another origin is served unchanged, without CORS headers: the browser
	// withholds the answer.
	resp = env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Cred: token, Headers: map[string]string{"Origin": "https://evil.example"}}).Want(t, http.StatusOK, "")
	if got := corsHeaders(resp.Header); len(got) != 0 {
		t.Errorf("CORS headers %v for a disallowed origin", got)
	}
}
