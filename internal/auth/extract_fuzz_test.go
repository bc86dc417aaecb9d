package auth

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzExtract: whatever the headers, extract never panics, and what it
// returns is one of the presented values, never a mix of them.
func FuzzExtract(f *testing.F) {
	f.Add("Bearer mk_abc", "mk_abc", "")
	f.Add("bearer eyJ.x.y", "", "mk_x")
	f.Add("Basic Zm9v", "", "")
	f.Add("Bearer ", "mk_", "mk_ ")
	f.Fuzz(func(t *testing.T, authz, xAPIKey, xMakima string) {
		h := http.Header{}
		for name, v := range map[string]string{"Authorization": authz, "X-Api-Key": xAPIKey, "X-Makima-Api-Key": xMakima} {
			if v != "" {
				h[name] = []string{v}
			}
		}
		cred, err := extract(h)
		if err != nil || cred == "" {
			return
		}
		if !strings.Contains(authz, cred) && !strings.Contains(xAPIKey, cred) && !strings.Contains(xMakima, cred) {
			t.Fatalf("extracted %q from %q %q %q", cred, authz, xAPIKey, xMakima)
		}
	})
}
