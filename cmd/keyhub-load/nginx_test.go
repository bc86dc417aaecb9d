package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/keyhub/keyhub/internal/testdep"
)

// startNginx runs the README's block in front of an upstream, asking a
// keyhub (here a stand-in answering /v1/authz) about every request: a
// request keyhub allows reaches the upstream without its credential, one
// keyhub refuses does not.
func TestStartNginx(t *testing.T) {
	bin := testdep.Program(t, "nginx")
	var mu sync.Mutex
	var asked []string
	keyhub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		if r.Header.Get("X-Api-Key") != "mk_good" {
			w.Header().Set("Keyhub-Error", "INVALID_API_KEY")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer keyhub.Close()
	var upstreamSawKey string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		upstreamSawKey = r.Header.Get("X-Api-Key")
		_, _ = io.WriteString(w, "hello from the product\n")
	}))
	defer upstream.Close()

	n, err := startNginx(bin, keyhub.Listener.Addr().String(), upstream.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer n.stop()
	get := func(key string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.addr+"/hello", nil)
		req.Header.Set("X-API-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	status, body := get("mk_good")
	mu.Lock()
	sawKey := upstreamSawKey
	mu.Unlock()
	if status != http.StatusOK || body != "hello from the product\n" || sawKey != "" {
		t.Fatalf("allowed: %d %q, the upstream saw key %q", status, body, sawKey)
	}
	if status, body := get("mk_bad"); status != http.StatusUnauthorized || !strings.Contains(body, "INVALID_API_KEY") {
		t.Fatalf("refused: %d %q", status, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || !strings.HasPrefix(asked[0], "/v1/authz?scope=") {
		t.Fatalf("keyhub was asked %v", asked)
	}
}
