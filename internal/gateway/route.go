package gateway

import (
	"fmt"
	"net/url"
	"strings"
)

// DefaultAudience is the aud of the identity a route's upstream receives
// unless the route names its own.
const DefaultAudience = "keyhub-gateway"

// Route is one entry of GATEWAY_ROUTES:
//
//	PREFIX UPSTREAM_URL [scope=SCOPE] [read_scope=SCOPE] [strip_prefix] [audience=AUD]
//
// A request whose path starts with Prefix is admitted (credential, rate
// limit, scope) and proxied to Upstream. The table says nothing about the
// transport: the same route serves plain requests and, where the front door
// accepts them, WebSocket upgrades.
type Route struct {
	// Prefix starts and ends with "/" ("/app/").
	Prefix string
	// Upstream is an http(s) URL without user info, query or fragment; its
	// path, if any, is prepended to the forwarded path.
	Upstream *url.URL
	// Scope must be held by every request ("" : none beyond a valid
	// credential); ReadScope, when set, replaces it for GET, HEAD and
	// OPTIONS.
	Scope, ReadScope string
	// StripPrefix forwards the path without Prefix (keeping its last "/"):
	// /app/tasks/1 reaches the upstream as /tasks/1.
	StripPrefix bool
	// Audience is the aud of the identity the upstream receives.
	Audience string
}

// String is the route as GATEWAY_ROUTES spells it; ParseRoutes reads it
// back to the same Route.
func (rt Route) String() string {
	var b strings.Builder
	b.WriteString(rt.Prefix)
	b.WriteByte(' ')
	b.WriteString(rt.Upstream.String())
	if rt.Scope != "" {
		b.WriteString(" scope=" + rt.Scope)
	}
	if rt.ReadScope != "" {
		b.WriteString(" read_scope=" + rt.ReadScope)
	}
	if rt.StripPrefix {
		b.WriteString(" strip_prefix")
	}
	if rt.Audience != DefaultAudience {
		b.WriteString(" audience=" + rt.Audience)
	}
	return b.String()
}

// reservedTrees and reservedPaths are keyhub's own paths: a route may not
// shadow them, or a product could capture keyhub's API (and its
// credentials). A test walks the router to keep these lists complete.
var (
	reservedTrees = []string{"/v1/", "/api/", "/auth/", "/dashboard/", "/dev/", "/.well-known/", "/ws/"}
	reservedPaths = []string{"/", "/healthz", "/readyz", "/openapi.yaml", "/dashboard", "/ws"}
)

// Reserved reports whether path is one of keyhub's own: under a reserved
// tree, or a reserved path itself.
func Reserved(path string) bool {
	for _, t := range reservedTrees {
		if strings.HasPrefix(path, t) {
			return true
		}
	}
	for _, p := range reservedPaths {
		if path == p {
			return true
		}
	}
	return false
}

// shadows reports whether a route under prefix would receive requests
// meant for keyhub itself.
func shadows(prefix string) bool {
	for _, t := range reservedTrees {
		if strings.HasPrefix(prefix, t) || strings.HasPrefix(t, prefix) {
			return true
		}
	}
	for _, p := range reservedPaths {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// ParseRoutes reads GATEWAY_ROUTES: routes separated by ";", fields by
// white space. An empty spec is no routes. Errors name the route by its
// position and never repeat an upstream URL (it may hold a secret).
func ParseRoutes(spec string) ([]Route, error) {
	var routes []Route
	seen := map[string]bool{}
	for i, entry := range strings.Split(spec, ";") {
		fields := strings.Fields(entry)
		if len(fields) == 0 {
			continue
		}
		rt, err := parseRoute(fields)
		if err != nil {
			return nil, fmt.Errorf("route %d: %w", i+1, err)
		}
		if seen[rt.Prefix] {
			return nil, fmt.Errorf("route %d: prefix %q is listed twice", i+1, rt.Prefix)
		}
		seen[rt.Prefix] = true
		routes = append(routes, rt)
	}
	return routes, nil
}

func parseRoute(fields []string) (Route, error) {
	if len(fields) < 2 {
		return Route{}, fmt.Errorf("want PREFIX UPSTREAM_URL [scope=S] [read_scope=S] [strip_prefix] [audience=A]")
	}
	rt := Route{Prefix: fields[0], Audience: DefaultAudience}
	if err := checkPrefix(rt.Prefix); err != nil {
		return Route{}, err
	}
	up, err := parseUpstream(fields[1])
	if err != nil {
		return Route{}, err
	}
	rt.Upstream = up
	given := map[string]bool{}
	for _, opt := range fields[2:] {
		name, value, hasValue := strings.Cut(opt, "=")
		if given[name] {
			return Route{}, fmt.Errorf("option %q is given twice", name)
		}
		given[name] = true
		switch {
		case name == "strip_prefix" && !hasValue:
			rt.StripPrefix = true
		case name == "scope" && value != "":
			rt.Scope = value
		case name == "read_scope" && value != "":
			rt.ReadScope = value
		case name == "audience" && value != "":
			rt.Audience = value
		default:
			return Route{}, fmt.Errorf("unknown option %q (known: scope=S, read_scope=S, strip_prefix, audience=A)", opt)
		}
	}
	return rt, nil
}

func checkPrefix(prefix string) error {
	u, err := url.Parse(prefix)
	switch {
	case !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") || prefix == "/":
		return fmt.Errorf("prefix %q must start and end with / and name a path (e.g. /app/)", prefix)
	case err != nil || u.Path != prefix || u.RawQuery != "" || u.Fragment != "" || strings.Contains(prefix, "//") ||
		strings.Contains(prefix, "/./") || strings.Contains(prefix, "/../") || strings.ContainsAny(prefix, "*{}%"):
		// The router matches the path as decoded: an escape or a pattern
		// character in the prefix would never match what it seems to.
		return fmt.Errorf("prefix %q must be a plain path (no escapes, query, dot segments or pattern characters)", prefix)
	case shadows(prefix):
		return fmt.Errorf("prefix %q overlaps keyhub's own paths (/v1/, /api/, /ws, /dashboard, /auth/, /dev/, /.well-known/, /healthz, /readyz, /openapi.yaml)", prefix)
	}
	return nil
}

func parseUpstream(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("the upstream must be an http:// or https:// URL with a host")
	case u.User != nil:
		return nil, fmt.Errorf("the upstream URL must not hold user info")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("the upstream URL must not have a query or fragment")
	}
	if u.Port() == "" && strings.HasSuffix(u.Host, ":") {
		return nil, fmt.Errorf("the upstream URL has an empty port")
	}
	return u, nil
}
