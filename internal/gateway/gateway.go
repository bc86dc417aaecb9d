// Package gateway puts a product behind keyhub: a reverse proxy
// (GATEWAY_ROUTES) that admits each request with keyhub's credentials,
// rate limits and scopes and forwards it without them, and forward auth
// (GET /v1/authz) for the gateways people already run (nginx, Caddy,
// Traefik).
//
// Nothing the client sent as a credential ever reaches an upstream:
// Authorization, X-API-Key, X-Makima-Api-Key, the ticket query parameter
// and every header that starts with Keyhub- are removed, whatever their
// case or count; the upstream learns who is calling from the headers keyhub
// sets itself.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/keyhub/keyhub/internal/clientip"

	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
)

// Admitter is the admission step every front door shares (auth.Gate):
// resolve the request's credential and spend the principal's rate-limit
// bucket (the route checks its own scope after, naming it). On success it
// has set the RateLimit headers on w; on refusal it returns the error
// WriteError answers.
type Admitter interface {
	// Admit refuses a request without a valid credential holding scope
	// (0: none), in the order and with the answers of keyhub's own routes.
	Admit(w http.ResponseWriter, r *http.Request, scope keyhub.Scopes) (*keyhub.Principal, error)
	WriteError(w http.ResponseWriter, r *http.Request, err error)
}

// Identities tells an upstream who is calling: the headers it returns
// replace whatever the client sent under those names.
type Identities interface {
	// Headers returns the identity headers of p for audience; an error is
	// an expired credential or a failure to sign.
	Headers(p *keyhub.Principal, audience string) (IdentityHeaders, error)
}

// IdentityHeaders are one principal's identity headers, ready to set.
type IdentityHeaders interface {
	Set(h http.Header)
}

// SocketRelay serves the WebSocket upgrades of a route (ws.Hub.Relay):
// admitted like keyhub's own sockets with scope (header or ticket),
// holding a connection slot, closed with 4001 when the key stops working,
// relayed frame by frame to the socket dial opens. dialFailed answers a
// failed dial before the client is upgraded.
type SocketRelay func(scope keyhub.Scopes,
	dial func(ctx context.Context, r *http.Request, p *keyhub.Principal, subprotocols []string) (*websocket.Conn, error),
	dialFailed func(w http.ResponseWriter, r *http.Request, err error)) http.Handler

// Config assembles a Gateway.
type Config struct {
	// Sockets relays WebSocket upgrades under a route; nil proxies them
	// like any request (and they fail: ReverseProxy's tunnel is not used).
	Sockets SocketRelay
	Routes  []Route
	// LookupScope resolves a route's scope name (keyhub's own or a
	// product scope).
	LookupScope func(name string) (keyhub.Scopes, bool)
	Admit       Admitter
	// Identities sets the identity headers of a proxied request; nil sets
	// none.
	Identities     Identities
	TrustedProxies []netip.Prefix
	// UpstreamTimeout bounds the wait for an upstream's response headers
	// (then 504). The whole exchange, streaming included, ends with the
	// request's own deadline (REQUEST_TIMEOUT).
	UpstreamTimeout time.Duration
	Metrics         *metrics.Metrics
	Log             *slog.Logger
}

// Gateway is the reverse proxy of GATEWAY_ROUTES and forward auth.
type Gateway struct {
	routes      []*routeProxy
	forwardAuth *forwardAuth
}

// New builds the proxy of every route; an unknown scope is an error.
func New(cfg Config) (*Gateway, error) {
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 20 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	transport := newTransport(cfg.UpstreamTimeout)
	buffers := &copyBuffers{}
	g := &Gateway{forwardAuth: &forwardAuth{cfg: &cfg}}
	for _, rt := range cfg.Routes {
		rp := &routeProxy{route: rt, cfg: &cfg}
		var err error
		if rp.scope, err = lookup(cfg.LookupScope, rt.Scope); err != nil {
			return nil, fmt.Errorf("route %s: %w", rt.Prefix, err)
		}
		rp.readScope = rp.scope
		if rt.ReadScope != "" {
			if rp.readScope, err = lookup(cfg.LookupScope, rt.ReadScope); err != nil {
				return nil, fmt.Errorf("route %s: %w", rt.Prefix, err)
			}
		}
		rp.proxy = &httputil.ReverseProxy{
			Rewrite:    rp.rewrite,
			Transport:  transport,
			BufferPool: buffers,
			// FlushInterval stays 0: ReverseProxy already flushes every write
			// of a streamed answer (no Content-Length, or server-sent
			// events); an answer of known length is written once, not
			// flushed per write (with -1 the headers and the body went out
			// as separate writes: 0.11× the upstream's throughput measured).
			ErrorHandler: rp.upstreamFailed,
			// The upstream's failures are answered by ErrorHandler; what
			// ReverseProxy would log itself (a client gone mid-copy) is noise.
			ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
		}
		if cfg.Sockets != nil {
			// An upgrade is a GET: the route's read scope applies.
			rp.sockets = cfg.Sockets(rp.readScope, rp.dialUpstream, rp.upstreamFailed)
		}
		g.routes = append(g.routes, rp)
	}
	return g, nil
}

func lookup(find func(string) (keyhub.Scopes, bool), name string) (keyhub.Scopes, error) {
	if name == "" {
		return 0, nil
	}
	if find != nil {
		if s, ok := find(name); ok {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown scope %q (keyhub's own, or one of PRODUCT_SCOPES)", name)
}

// newTransport is the connection pool to every upstream: dialling and TLS
// fail fast (502), response headers have UpstreamTimeout (504), and idle
// connections are kept per upstream so a busy route does not dial per
// request.
func newTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // an upstream is reached directly, never through HTTP_PROXY
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// Mount is one route as the router mounts it.
type Mount struct {
	// Pattern is the router pattern ("/app/*").
	Pattern string
	Handler http.Handler
}

// Mounts lists the routes to mount, one per GATEWAY_ROUTES entry.
func (g *Gateway) Mounts() []Mount {
	if g == nil {
		return nil
	}
	out := make([]Mount, 0, len(g.routes))
	for _, rp := range g.routes {
		out = append(out, Mount{Pattern: rp.route.Prefix + "*", Handler: rp})
	}
	return out
}

// routeProxy serves one route.
type routeProxy struct {
	route            Route
	scope, readScope keyhub.Scopes
	cfg              *Config
	proxy            *httputil.ReverseProxy
	sockets          http.Handler // nil: no WebSocket relay
}

// identityKey carries a request's identity headers from ServeHTTP, where a
// failure to sign can still be answered, to rewrite.
type identityKey struct{}

// ServeHTTP admits the request and proxies it.
func (rp *routeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ww, ok := w.(middleware.WrapResponseWriter)
	if !ok {
		ww = middleware.NewWrapResponseWriter(w, r.ProtoMajor)
	}
	defer func() {
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		rp.cfg.Metrics.GatewayRequest(rp.route.Prefix, status, time.Since(start))
	}()

	if rp.sockets != nil && isUpgrade(r) {
		rp.sockets.ServeHTTP(ww, r)
		return
	}
	p, err := rp.cfg.Admit.Admit(ww, r, rp.needs(r.Method))
	if err != nil {
		rp.cfg.Admit.WriteError(ww, r, err)
		return
	}
	if hasDotSegment(r.URL.Path) {
		// An upstream that resolves "/app/../x" would serve a path outside
		// the one the route names (and its base path).
		httpjson.Error(ww, r, errDotSegment)
		return
	}
	// Bodies stream both ways at once (a client may read the upstream's
	// first answer before it has sent all of its own): net/http's HTTP/1
	// server otherwise closes the request body once the answer begins.
	_ = http.NewResponseController(ww).EnableFullDuplex() // HTTP/2 always is
	if ids := rp.cfg.Identities; ids != nil {
		v, err := ids.Headers(p, rp.route.Audience)
		if err != nil {
			httpjson.Error(ww, r, keyhub.Internal(fmt.Errorf("gateway identity: %w", err)))
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), identityKey{}, v))
	}
	// The exchange ends at the connection's deadline (REQUEST_TIMEOUT, set
	// by the router): net/http then cancels the request's context, and with
	// it the upstream request, so an upstream that stalls mid-body cannot
	// hold the client.
	rp.proxy.ServeHTTP(ww, r)
}

// needs is the scope a request with method must hold.
func (rp *routeProxy) needs(method string) keyhub.Scopes {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return rp.readScope
	}
	return rp.scope
}

var errDotSegment = keyhub.Errorf(keyhub.CodeValidation, "the path must not contain . or .. segments")

// hasDotSegment reports whether path holds a "." or ".." segment.
func hasDotSegment(path string) bool {
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// rewrite builds the upstream request. ReverseProxy has already removed
// the inbound hop-by-hop headers (including any named in Connection) and
// X-Forwarded-*, so nothing here can be undone by a client's Connection
// header.
func (rp *routeProxy) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	if rp.route.StripPrefix && strings.HasPrefix(out.URL.Path, rp.route.Prefix) {
		keep := len(rp.route.Prefix) - 1 // the prefix's last "/" stays
		out.URL.Path = out.URL.Path[keep:]
		if out.URL.RawPath != "" {
			// RawPath is set only when the path holds escapes; it starts
			// with the same (escape-free) prefix.
			out.URL.RawPath = strings.TrimPrefix(out.URL.RawPath, rp.route.Prefix[:keep])
		}
	}
	out.URL.RawQuery = withoutTicket(out.URL.RawQuery)
	pr.SetURL(rp.route.Upstream) // also sends the upstream's own Host
	stripCredentials(out.Header)
	rp.setForwarded(in, out)
	if ids, ok := in.Context().Value(identityKey{}).(IdentityHeaders); ok {
		ids.Set(out.Header)
	}
}

// setForwarded says who the client is from what keyhub trusts: the
// client address TRUSTED_PROXIES resolve (one address, never a chain the
// client could have begun), and the protocol and host the client used, as
// a trusted proxy reports them or as keyhub saw them.
func (rp *routeProxy) setForwarded(in, out *http.Request) {
	h := out.Header
	// ReverseProxy has removed the client's Forwarded and X-Forwarded-*;
	// X-Real-Ip is another spelling an upstream could believe.
	h.Del("X-Real-Ip")
	client := clientip.Of(in, rp.cfg.TrustedProxies)
	if client.IsValid() {
		h.Set("X-Forwarded-For", client.String())
	}
	proto, host := "http", in.Host
	if in.TLS != nil {
		proto = "https"
	}
	if clientip.FromTrustedProxy(in, rp.cfg.TrustedProxies) {
		if p := in.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			proto = p
		}
		if fh := in.Header.Get("X-Forwarded-Host"); fh != "" && !strings.ContainsAny(fh, ", \t") {
			host = fh
		}
	}
	h.Set("X-Forwarded-Proto", proto)
	if host != "" {
		h.Set("X-Forwarded-Host", host)
	}
}

// credentialHeaders are the headers keyhub reads credentials from, in
// lower case with "-" (see stripCredentials).
var credentialHeaders = []string{"authorization", "x-api-key", "x-makima-api-key"}

// stripCredentials removes every credential and every client-sent Keyhub-
// header. Names are compared in lower case with "_" read as "-": servers
// behind CGI-style gateways (WSGI, PHP) see X_API_KEY and X-Api-Key as the
// same variable, so neither spelling may pass.
func stripCredentials(h http.Header) {
	for name := range h {
		if isCredentialHeader(name) {
			delete(h, name)
		}
	}
}

func isCredentialHeader(name string) bool {
	if len(name) >= len("keyhub-") && normalizedEqual(name[:len("keyhub-")], "keyhub-") {
		return true
	}
	for _, c := range credentialHeaders {
		if len(name) == len(c) && normalizedEqual(name, c) {
			return true
		}
	}
	return false
}

// normalizedEqual compares name with lower (lower case, "-") ignoring case
// and reading "_" as "-"; the lengths are equal.
func normalizedEqual(name, lower string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// withoutTicket removes every ticket parameter (any case) from a raw query
// and leaves the rest byte for byte. A parameter is also dropped when a
// ";"-separated part of it is a ticket: some frameworks split on ";" too.
func withoutTicket(raw string) string {
	// A name can be escaped ("t%69cket" is a ticket to url.Values, and so
	// to admission): only a query with neither the word nor an escape is
	// surely free of one.
	if raw == "" || (!strings.Contains(strings.ToLower(raw), "ticket") && !strings.Contains(raw, "%")) {
		return raw // the usual case: nothing to parse
	}
	var kept []string
	for _, part := range strings.Split(raw, "&") {
		if !holdsTicket(part) {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "&")
}

func holdsTicket(part string) bool {
	for _, sub := range strings.Split(part, ";") {
		name, _, _ := strings.Cut(sub, "=")
		if unescaped, err := url.QueryUnescape(name); err == nil {
			name = unescaped
		}
		if strings.EqualFold(strings.TrimSpace(name), "ticket") {
			return true
		}
	}
	return false
}

// upstreamFailed answers a request whose upstream did not: 502
// UPSTREAM_UNAVAILABLE (with Retry-After) when it could not be reached or
// broke the exchange, 504 UPSTREAM_TIMEOUT when it was too slow to
// answer. A client that went away is logged as such, not as a failure.
func (rp *routeProxy) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	log := httpjson.Logger(r.Context())
	if errors.Is(r.Context().Err(), context.Canceled) {
		log.Info("client closed request", "status", httpjson.StatusClientClosedRequest, "route", rp.route.Prefix)
		w.WriteHeader(httpjson.StatusClientClosedRequest)
		return
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) {
		log.Warn("upstream timed out", "route", rp.route.Prefix, "err", err)
		httpjson.Error(w, r, errUpstreamTimeout)
		return
	}
	log.Warn("upstream unavailable", "route", rp.route.Prefix, "err", err)
	httpjson.Error(w, r, errUpstreamUnavailable)
}

var (
	errUpstreamUnavailable = keyhub.Errorf(keyhub.CodeUpstreamUnavailable, "the upstream service is not reachable; retry later")
	errUpstreamTimeout     = keyhub.Errorf(keyhub.CodeUpstreamTimeout, "the upstream service did not answer in time")
)

// copyBuffers lends ReverseProxy the buffers it copies answers through.
// Without a pool it allocates (and the runtime clears) 32 KiB for every
// request: 7.5 % of keyhub's CPU on the proxy path in the load harness.
type copyBuffers struct{ pool sync.Pool }

// copyBufferSize is ReverseProxy's own default.
const copyBufferSize = 32 << 10

// Get implements httputil.BufferPool.
func (b *copyBuffers) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, copyBufferSize)
}

// Put implements httputil.BufferPool.
func (b *copyBuffers) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return
	}
	buf = buf[:copyBufferSize]
	b.pool.Put(&buf)
}
