package gateway

import (
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// AuthzPath is forward auth's path. Gateways that append the original path
// to the one they call (Envoy's ext_authz) reach it under AuthzPath + "/".
const AuthzPath = "/v1/authz"

// The headers forward auth answers with beside the identity's.
const (
	// HeaderStatus carries the status keyhub meant when refuse_as=403 made
	// it answer 403 instead (nginx's auth_request passes on only 2xx, 401
	// and 403: the nginx snippet maps it back).
	HeaderStatus = "Keyhub-Status"
	// HeaderError carries a refusal's error code, so a gateway that
	// discards the JSON body (nginx) can still answer with it.
	HeaderError = "Keyhub-Error"
)

// noStore is forward auth's Cache-Control, set without canonicalising its
// name per answer; net/http never changes a value slice in place.
var noStore = []string{"no-store"}

// The headers gateways send the original request's method and URI in:
// Traefik and Caddy's, then nginx's (set by its snippet).
var (
	methodHeaders = []string{"X-Forwarded-Method", "X-Original-Method"}
	uriHeaders    = []string{"X-Forwarded-Uri", "X-Original-Uri"}
)

// authzQuery is what the operator's gateway configuration asks of forward
// auth, in the query of AuthzPath (its names mirror a GATEWAY_ROUTES
// route's options).
type authzQuery struct {
	// scope must be held; readScope instead of it when the original
	// method is GET, HEAD or OPTIONS (0: none).
	scope, readScope keyhub.Scopes
	readScopeGiven   bool
	// audience is the identity's aud.
	audience string
	// refuseAs403 answers every refusal other than 401 and 403 as 403,
	// with the real status in HeaderStatus.
	refuseAs403 bool
}

var (
	errAuthzQuery    = keyhub.Errorf(keyhub.CodeValidation, "the query of /v1/authz may hold only scope, read_scope, audience and refuse_as=403, each once")
	errAuthzRefuseAs = keyhub.Errorf(keyhub.CodeValidation, "refuse_as must be 403")
)

// forwardAuth answers GET (or any method) /v1/authz for a gateway that
// asks keyhub whether to let a request through: the credential in the
// request's headers is admitted by the one admission step (rate limit
// spent like REST), the query's scope checked against the original
// method, and the answer is 200 with the identity headers the gateway
// copies upstream, or keyhub's refusal. The answer never carries the
// credential: it has no body on success and only keyhub's own headers.
type forwardAuth struct {
	cfg *Config
}

// ForwardAuth returns the handler of AuthzPath and everything under it.
func (g *Gateway) ForwardAuth() http.Handler {
	if g == nil {
		return nil
	}
	return g.forwardAuth
}

func (fa *forwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method, uri := original(r)
	q, err := fa.parseQuery(r)
	if err != nil {
		fa.refuse(w, r, q, err)
		return
	}
	need := q.scope
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		need = q.readScope
	}
	p, err := fa.cfg.Admit.Admit(w, r, need)
	if err != nil {
		fa.refuse(w, r, q, err)
		return
	}
	if ids := fa.cfg.Identities; ids != nil {
		v, err := ids.Headers(p, q.audience)
		if err != nil {
			fa.refuse(w, r, q, err) // an expired credential, or a signing failure
			return
		}
		v.Set(w.Header())
	}
	// Asked before the request's logger is built: building it costs
	// allocations on every answer, and the line is rarely wanted.
	if httpjson.LogEnabled(r.Context(), slog.LevelDebug) {
		httpjson.Logger(r.Context()).Debug("forward auth allowed", "original_method", method, "original_path", pathOf(uri))
	}
	w.Header()["Cache-Control"] = noStore
	w.WriteHeader(http.StatusOK)
}

// original is the method and URI of the request the gateway asks about:
// from the headers Traefik, Caddy and nginx send, else (Envoy) the request
// itself, whose path is the original one after AuthzPath.
func original(r *http.Request) (method, uri string) {
	for _, h := range methodHeaders {
		if method = headerValue(r.Header, h); method != "" {
			break
		}
	}
	if method == "" {
		method = r.Method
	}
	for _, h := range uriHeaders {
		if uri = headerValue(r.Header, h); uri != "" {
			return strings.ToUpper(method), uri
		}
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, AuthzPath); ok && rest != "" {
		uri = rest
	}
	return strings.ToUpper(method), uri
}

// headerValue is h.Get(name) for a name already canonical (those above):
// the map is indexed directly, without canonicalising the name on every
// answer.
func headerValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// pathOf is uri without its query (which may carry a ticket or a secret:
// never logged).
func pathOf(uri string) string {
	path, _, _ := strings.Cut(uri, "?")
	return path
}

// parseQuery reads the operator's requirements from the query of
// AuthzPath itself. Under AuthzPath + "/" the query is the original
// request's (the client's), never read: a client cannot choose its
// requirements. An unknown parameter is refused, so a typo cannot drop a
// scope silently.
//
// The query is read as url.ParseQuery reads it (a ";" or a bad escape
// refuses the whole query), without building its map: a gateway asks the
// same few parameters on every request.
func (fa *forwardAuth) parseQuery(r *http.Request) (authzQuery, error) {
	q := authzQuery{audience: DefaultAudience}
	if r.URL.Path != AuthzPath || r.URL.RawQuery == "" {
		return q, nil
	}
	var params authzParams
	if err := params.read(r.URL.RawQuery); err != nil {
		return q, errAuthzQuery
	}
	// refuse_as first: it decides how every other error is answered.
	if as := params.refuseAs; as.count > 0 {
		if as.count != 1 || as.value != "403" {
			return q, errAuthzRefuseAs
		}
		q.refuseAs403 = true
	}
	if params.unknown || params.scope.count > 1 || params.readScope.count > 1 || params.audience.count > 1 {
		return q, errAuthzQuery
	}
	var err error
	if params.scope.count == 1 {
		if q.scope, err = fa.scopeOf(params.scope.value); err != nil {
			return q, err
		}
	}
	if params.readScope.count == 1 {
		q.readScopeGiven = true
		if q.readScope, err = fa.scopeOf(params.readScope.value); err != nil {
			return q, err
		}
	}
	if params.audience.count == 1 {
		if params.audience.value == "" {
			return q, errAuthzQuery
		}
		q.audience = params.audience.value
	}
	if !q.readScopeGiven {
		q.readScope = q.scope
	}
	return q, nil
}

// authzParams are the parameters of forward auth's query: how often each
// known one was given (its last value), and whether any other was.
type authzParams struct {
	scope, readScope, audience, refuseAs authzParam
	unknown                              bool
}

type authzParam struct {
	count int
	value string
}

// maxQueryParams is url.ParseQuery's default limit on a query's
// parameters (GODEBUG urlmaxqueryparams).
const maxQueryParams = 10000

// read reads raw as url.ParseQuery does, failing where it fails: more
// than maxQueryParams parts, a ";" in a part, or a bad escape in a name or
// a value. Empty parts are skipped; a name without "=" has the value "".
func (p *authzParams) read(raw string) error {
	if strings.Count(raw, "&")+1 > maxQueryParams {
		return errAuthzQuery
	}
	var failed bool
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if strings.Contains(part, ";") {
			failed = true
			continue
		}
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(name) // allocates only for an escape
		if err != nil {
			failed = true
			continue
		}
		if value, err = url.QueryUnescape(value); err != nil {
			failed = true
			continue
		}
		var param *authzParam
		switch name {
		case "scope":
			param = &p.scope
		case "read_scope":
			param = &p.readScope
		case "audience":
			param = &p.audience
		case "refuse_as":
			param = &p.refuseAs
		default:
			p.unknown = true
			continue
		}
		param.count++
		param.value = value
	}
	if failed {
		return errAuthzQuery
	}
	return nil
}

// scopeOf resolves a scope name as a route's is resolved: keyhub's own or
// a product scope.
func (fa *forwardAuth) scopeOf(name string) (keyhub.Scopes, error) {
	if fa.cfg.LookupScope != nil {
		if s, ok := fa.cfg.LookupScope(name); ok {
			return s, nil
		}
	}
	return 0, keyhub.Errorf(keyhub.CodeInvalidScope, "unknown scope %q (keyhub's own, or one of PRODUCT_SCOPES)", name)
}

// refuse answers keyhub's JSON error (WWW-Authenticate on 401, Retry-After
// and the RateLimit headers on 429), with its code in HeaderError; with
// refuse_as=403, a status other than 401 and 403 is sent as 403 carrying
// the real one in HeaderStatus.
func (fa *forwardAuth) refuse(w http.ResponseWriter, r *http.Request, q authzQuery, err error) {
	w.Header().Set(HeaderError, string(keyhub.ErrorCode(err)))
	if q.refuseAs403 {
		w = statusAs403{w}
	}
	fa.cfg.Admit.WriteError(w, r, err)
}

// statusAs403 sends every error status but 401 and 403 as 403, naming the
// real one in HeaderStatus.
type statusAs403 struct{ http.ResponseWriter }

func (s statusAs403) WriteHeader(status int) {
	if status >= 400 && status != http.StatusUnauthorized && status != http.StatusForbidden {
		s.Header().Set(HeaderStatus, strconv.Itoa(status))
		status = http.StatusForbidden
	}
	s.ResponseWriter.WriteHeader(status)
}
