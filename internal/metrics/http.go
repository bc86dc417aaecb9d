package metrics

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// requestKey finds a request's histogram child without building its
// route pattern: chi's RoutePattern joins the matched sub-patterns into a
// new string on every call, so the key holds the (constant) sub-patterns
// themselves, and the pattern is built once per label set.
type requestKey struct {
	patterns [maxPatterns]string
	n        int
	method   string
	status   int
}

// maxPatterns is the deepest nesting of routers the key holds; deeper
// routes (none today) pay RoutePattern's allocation.
const maxPatterns = 4

func requestKeyOf(r *http.Request, status int) requestKey {
	k := requestKey{method: methodLabel(r.Method), status: status}
	rc := chi.RouteContext(r.Context())
	if rc == nil {
		return k
	}
	if len(rc.RoutePatterns) > maxPatterns {
		k.patterns[0], k.n = rc.RoutePattern(), -1
		return k
	}
	k.n = copy(k.patterns[:], rc.RoutePatterns)
	return k
}

// route is the pattern chi matched ("/v1/keys/{id}"), never the path: ids
// in labels would explode the series and leak data.
func (k requestKey) route() string {
	var pattern string
	switch {
	case k.n < 0:
		pattern = k.patterns[0]
	case k.n > 0:
		rc := chi.NewRouteContext()
		rc.RoutePatterns = k.patterns[:k.n]
		pattern = rc.RoutePattern()
	}
	if pattern == "" {
		return "unmatched"
	}
	return pattern
}

// Middleware observes each request's duration by chi route pattern,
// method and status. Mount it inside the chi router (r.Use), where the
// route pattern is known once the handler has run. It reuses the status
// recorder of an outer chi WrapResponseWriter (the request logger's) when
// there is one, so it adds no allocation of its own.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww, ok := w.(middleware.WrapResponseWriter)
		if !ok {
			ww = middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		}
		next.ServeHTTP(ww, r)
		status := ww.Status()
		switch status {
		case http.StatusSwitchingProtocols:
			return // a WebSocket session, not a request: the ws collectors count it
		case 0:
			status = http.StatusOK // nothing written
		}
		m.requests.get(requestKeyOf(r, status)).Observe(time.Since(start).Seconds())
	})
}

// methodLabel keeps the method label to the standard methods: a client
// can send any token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// InstrumentJWKS counts the JWKS fetches made through next: every fetch
// is a refresh (at start, periodic, unknown kid); a network error or a
// status other than 2xx is a failure.
func (m *Metrics) InstrumentJWKS(next http.RoundTripper) http.RoundTripper {
	if m == nil {
		return next
	}
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		m.jwksRefreshes.Inc()
		resp, err := next.RoundTrip(req)
		if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
			m.jwksRefreshFailures.Inc()
		}
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
