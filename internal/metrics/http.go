package metrics

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

type requestLabels struct {
	route, method string
	status        int
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
		m.requests.get(requestLabels{route: routeOf(r), method: methodLabel(r.Method), status: status}).Observe(time.Since(start).Seconds())
	})
}

// routeOf is the pattern chi matched ("/v1/keys/{id}"), never the path:
// ids in labels would explode the series and leak data.
func routeOf(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
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
