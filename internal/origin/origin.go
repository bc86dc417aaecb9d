// Package origin decides whether a browser origin is listed in
// ALLOWED_ORIGINS. The WebSocket Origin check and REST CORS share it, so a
// dashboard allowed to call the API is also allowed to open the socket.
package origin

import (
	"net/url"
	"path"
	"strings"
)

// Allowed reports whether origin ("https://app.example.com") matches one of
// patterns. A pattern with a scheme ("https://app.example.com",
// "https://*.example.com") is matched against scheme://host; one without
// ("app.example.com:8443") against the host alone. Matching is
// case-insensitive and uses path.Match wildcards. "null" and malformed
// origins never match.
func Allowed(origin string, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return false
	}
	for _, pattern := range patterns {
		target := u.Host
		if strings.Contains(pattern, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}
