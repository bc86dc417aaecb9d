package auth

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/clientip"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ratelimit"
	"github.com/keyhub/keyhub/internal/usage"
)

// Gate is the one admission step every front door calls: the REST
// middleware, the WebSocket upgrade (headers, ticket or first message), the
// gateway's proxy and forward auth, and the verify API (AdmitKey, for the
// key asked about). Its order is fixed here, once:
//
//  1. an address over its failed-authentication limit is refused before
//     its credential is looked at (guessing costs no database query);
//  2. the credential is resolved (extractor chain, caches);
//  3. a failed authentication spends from the address's failure bucket,
//     and once that is empty the answer is 429 instead of 401;
//  4. the principal's request bucket is spent (a Redis outage fails open);
//  5. the principal must not have expired and must hold the needed scope;
//     a key restricted to networks (allowed_cidrs) must come from one of
//     them (IP_NOT_ALLOWED, judged on the trusted client address).
//
// A refusal is an error: WriteError answers it, with Retry-After and the
// RateLimit headers when it is a rate limit.
type Gate struct {
	auth    *Authenticator
	limits  *ratelimit.Limits // nil: no rate limits
	trusted []netip.Prefix
	now     func() time.Time
	// scopes names the scopes a refusal says are missing (product scopes
	// have names only in the catalog).
	scopes *keyhub.ScopeCatalog
	// policies is the RateLimit-Policy value per tier, built once: the
	// header is the same for every request of a tier.
	policies map[string][]string
	// usage counts the requests of each key by outcome; nil counts none.
	usage *usage.Counter
}

// NewGate returns the admission step over a's extractor chain; limits may
// be nil (no rate limiting), trustedProxies say whose X-Forwarded-For is
// believed for the client address, scopes names the scopes (nil: keyhub's
// own only).
func NewGate(a *Authenticator, limits *ratelimit.Limits, trustedProxies []netip.Prefix, scopes *keyhub.ScopeCatalog) *Gate {
	g := &Gate{auth: a, limits: limits, trusted: trustedProxies, now: time.Now, policies: map[string][]string{}, scopes: scopes}
	if limits != nil {
		for _, tier := range []keyhub.Tier{keyhub.TierFree, keyhub.TierPro, keyhub.TierTeam, keyhub.TierEnterprise} {
			g.policies[string(tier)] = []string{ratelimit.PolicyHeader(string(tier), limits.TierLimit(tier))}
		}
	}
	return g
}

// CountUsage makes the gate count every request made with a key, by
// outcome class, on c. Call it before use.
func (g *Gate) CountUsage(c *usage.Counter) *Gate {
	g.usage = c
	return g
}

// Authenticator is the extractor chain behind the gate.
func (g *Gate) Authenticator() *Authenticator { return g.auth }

// Need says what a front door requires of a request.
type Need struct {
	// Scope must be held (0: none).
	Scope keyhub.Scopes
	// Anonymous lets a request without credentials through with a nil
	// principal; without it, such a request is MISSING_CREDENTIALS.
	Anonymous bool
	// laterSteps says that the request is not judged in full here (the
	// REST middleware: each route checks its own scope afterwards), so
	// its usage is counted once it has been answered, not at admission.
	laterSteps bool
}

// Admission is an admitted request.
type Admission struct {
	// Principal is nil only for an anonymous request that Need allowed.
	// It may be shared with a cache: never modify it.
	Principal *keyhub.Principal
	// Client is the request's address, as the trusted proxies tell it.
	Client netip.Addr
	// Decision is the principal's bucket after this request; Spent is
	// false when no bucket was spent (anonymous, or no rate limits).
	Decision ratelimit.Decision
	Spent    bool
	// At is when the request was judged.
	At time.Time
}

// Refusal is a request refused by a rate limit: the RATE_LIMITED error
// with the decision its headers come from.
type Refusal struct {
	Decision ratelimit.Decision
	err      error
}

func (r *Refusal) Error() string { return r.err.Error() }

// Unwrap exposes the RATE_LIMITED keyhub error.
func (r *Refusal) Unwrap() error { return r.err }

// Refuse is the error of a request refused by the limit d decided, why
// saying which: WriteError answers it with Retry-After and the RateLimit
// headers. Limits spent outside the gate (a route's own budget) refuse
// with it too.
func Refuse(d ratelimit.Decision, why string) error {
	return &Refusal{Decision: d, err: ratelimit.RefusalError(d, why)}
}

// WhyPrincipalLimit says why a request over its key's or user's limit is
// refused.
func whyPrincipalLimit(p *keyhub.Principal) string {
	if p.IsKey() {
		return "too many requests for this API key"
	}
	return "too many requests for this user"
}

// Client is the request's client address, as the trusted proxies tell it.
func (g *Gate) Client(r *http.Request) netip.Addr { return clientip.Of(r, g.trusted) }

// Admit runs the admission step on the credential in r's headers.
func (g *Gate) Admit(r *http.Request, need Need) (Admission, error) {
	client := g.Client(r)
	if !HasCredentials(r.Header) {
		if need.Anonymous {
			return Admission{Client: client}, nil
		}
		return Admission{Client: client}, errMissing
	}
	return g.admit(r.Context(), client, need, g.HeaderResolver(r, client))
}

// HeaderResolver resolves the credential in r's headers, which came from
// client, by the extractor chain: what Admit admits. A front door that
// accepts one more kind of credential (the verify API's operators) wraps
// it and calls AdmitWith.
func (g *Gate) HeaderResolver(r *http.Request, client netip.Addr) Resolver {
	return func(context.Context) (*keyhub.Principal, string, error) {
		cred, err := extract(r.Header)
		if err != nil {
			return nil, "unknown", err
		}
		if cred == "" {
			return nil, "unknown", errMissing
		}
		method := keyhub.AuthJWT
		if apikey.LooksLikeKey(cred) {
			method = keyhub.AuthAPIKey
		}
		p, err := g.auth.Resolve(r.Context(), cred, keyhub.RequestMeta{IP: client, UserAgent: r.UserAgent()})
		return p, string(method), err
	}
}

// Resolver resolves a credential that did not come in the headers (a
// WebSocket ticket, a first message). method labels the outcome metric.
type Resolver func(ctx context.Context) (p *keyhub.Principal, method string, err error)

// AdmitWith runs the admission step on a credential resolve finds.
func (g *Gate) AdmitWith(ctx context.Context, client netip.Addr, need Need, resolve Resolver) (Admission, error) {
	return g.admit(ctx, client, need, resolve)
}

// RefuseBlocked answers whether client is over its failed-authentication
// limit, from memory alone: a front door that must accept a connection
// before it can read the credential (first-message WebSocket) asks first.
func (g *Gate) RefuseBlocked(client netip.Addr) error {
	if g.limits == nil {
		return nil
	}
	if d, blocked := g.limits.AuthBlocked(client); blocked {
		return Refuse(d, ratelimit.AuthFailureMessage)
	}
	return nil
}

// AdmitKey runs the admission step on an API key presented on someone
// else's behalf: a product's backend asking whether its customer's key may
// be used now (POST /v1/keys/verify). The key is resolved through the same
// caches, refused when expired, spends its own bucket and must hold
// need.Scope, by the same code as a request made with it. The address
// steps are left out: the address is the backend's, which passed them with
// its own credential, and must neither be blocked by nor pay for its
// customers' mistyped keys. A key's allowed networks are judged on client,
// the address the backend says its customer came from (the zero Addr,
// unknown, is outside every network), which is also recorded as the key's
// last use (with no agent: the request's is the backend's).
func (g *Gate) AdmitKey(ctx context.Context, key string, client netip.Addr, need Need) (Admission, error) {
	adm, _, err := g.judge(ctx, need, &client, func(ctx context.Context) (*keyhub.Principal, string, error) {
		p, err := g.auth.ResolveKey(ctx, key, keyhub.RequestMeta{IP: client})
		return p, "verify", err
	})
	return adm, err
}

func (g *Gate) admit(ctx context.Context, client netip.Addr, need Need, resolve Resolver) (Admission, error) {
	if err := g.RefuseBlocked(client); err != nil {
		return Admission{Client: client}, err
	}
	adm, resolved, err := g.judge(ctx, need, &client, resolve)
	adm.Client = client
	if !resolved {
		err = g.countFailure(ctx, client, err)
	}
	return adm, err
}

// judge is the admission step after the address's: resolve the
// credential, refuse it expired, spend its bucket, check the scope.
// resolved is false when the credential itself was refused (a failed
// authentication, which admit counts against the address). The client
// address, unless nil, is checked against a key's allowed networks (an
// unknown address is outside every network).
func (g *Gate) judge(ctx context.Context, need Need, client *netip.Addr, resolve Resolver) (adm Admission, resolved bool, err error) {
	p, method, err := resolve(ctx)
	if err == nil && p == nil {
		err = errMissing
	}
	adm.At = g.now()
	if err == nil {
		if err = g.checkExpiry(p, adm.At); err != nil {
			g.countUse(p, adm.At, keyhub.UsageRefused)
		}
	}
	if err == nil && client != nil && !keyhub.NetAllowed(p.AllowedNets, *client) {
		err = keyhub.ErrIPNotAllowed
		g.countUse(p, adm.At, keyhub.UsageRefused) // the owner sees attempts from outside
	}
	g.auth.RecordOutcome(ctx, method, err)
	if err != nil {
		return adm, false, err
	}
	adm.Principal = p
	if g.limits != nil {
		d := g.limits.Principal(ctx, p)
		adm.Decision, adm.Spent = d, true
		if !d.Allowed {
			g.countUse(p, adm.At, keyhub.UsageRateLimited)
			return adm, true, Refuse(d, whyPrincipalLimit(p))
		}
	}
	err = g.CheckScope(p, need.Scope)
	switch {
	case err != nil:
		g.countUse(p, adm.At, keyhub.UsageRefused)
	case !need.laterSteps:
		g.countUse(p, adm.At, keyhub.UsageOK)
	}
	return adm, true, err
}

// countUse counts a request of p, when p is a key, in the hour of at.
func (g *Gate) countUse(p *keyhub.Principal, at time.Time, o keyhub.UsageOutcome) {
	if g.usage != nil && p.IsKey() {
		g.usage.Add(p.KeyID, at, o)
	}
}

// countFailure spends one unit of client's failed-authentication bucket
// when err is a failed authentication; over the limit the answer becomes
// a 429.
func (g *Gate) countFailure(ctx context.Context, client netip.Addr, err error) error {
	if g.limits == nil || !ratelimit.IsAuthFailure(err) {
		return err
	}
	if d := g.limits.AuthFailure(ctx, client); !d.Allowed {
		return Refuse(d, ratelimit.AuthFailureMessage)
	}
	return err
}

func (g *Gate) checkExpiry(p *keyhub.Principal, now time.Time) error {
	if !p.Expired(now) {
		return nil
	}
	if p.IsKey() {
		return keyhub.Errorf(keyhub.CodeKeyExpired, "the API key has expired")
	}
	return keyhub.Errorf(keyhub.CodeExpiredToken, "the access token has expired")
}

// CheckScope refuses a principal that lacks scope with INSUFFICIENT_SCOPE
// naming the first scope missing (dashboard users hold every scope), or
// with ANONYMOUS_USER for an anonymous sign-in, which lacks it only
// because it has not linked an identity (ANONYMOUS_USERS=read-only).
func (g *Gate) CheckScope(p *keyhub.Principal, scope keyhub.Scopes) error {
	if p.Scopes.Has(scope) {
		return nil
	}
	if p.Anonymous {
		return errAnonymousReadOnly
	}
	name := "required"
	if names := g.scopes.Names(scope &^ p.Scopes); len(names) > 0 {
		name = names[0]
	}
	return keyhub.Errorf(keyhub.CodeInsufficientScope, "this API key lacks the %s scope", name)
}

// RequireScope refuses requests whose principal lacks scope (or that have
// none), by the same rule as Admit.
func (g *Gate) RequireScope(scope keyhub.Scopes) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := FromContext(r.Context())
			if p == nil {
				WriteError(w, r, errMissing)
				return
			}
			if err := g.CheckScope(p, scope); err != nil {
				WriteError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// SetHeaders sets the RateLimit-Policy and RateLimit headers of an
// admitted request.
func (g *Gate) SetHeaders(h http.Header, a Admission) {
	if !a.Spent {
		return
	}
	d := a.Decision
	if v, ok := g.policies[d.Policy]; ok {
		h[ratelimit.HeaderKeyPolicy] = v // never modified downstream: shared safely
	} else {
		h.Set(ratelimit.HeaderPolicy, ratelimit.PolicyHeader(d.Policy, d.Limit))
	}
	if d.Err == nil { // without Redis's answer, nothing is known to remain
		h[ratelimit.HeaderKeyRateLimit] = []string{d.RateLimitHeader()}
	}
}

// SetRefusalHeaders sets Retry-After and the RateLimit headers when err is
// a rate-limit refusal, and reports whether it was one.
func SetRefusalHeaders(h http.Header, err error) bool {
	var rf *Refusal
	if !errors.As(err, &rf) {
		return false
	}
	ratelimit.SetRefusalHeaders(h, rf.Decision)
	return true
}

// WriteError answers a refused request: the JSON error, with Retry-After
// and the RateLimit headers for a rate limit.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	refused(r.Context(), err)
	SetRefusalHeaders(w.Header(), err)
	httpjson.Error(w, r, err)
}

// Middleware admits every request whose headers carry a credential and
// puts its principal in the context, with the RateLimit headers on the
// answer. A request without credentials passes on anonymous (routes that
// need a principal add RequireScope or Require); invalid credentials are
// refused here, on every route, so a mistyped key is never treated as no
// key.
//
// A request made with a key counts in the key's usage once it has been
// answered: refused when a route's own check answered it with WriteError
// (its scope, a user-session route, its own rate limit), else ok.
func (g *Gate) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		adm, err := g.Admit(r, Need{Anonymous: true, laterSteps: true})
		if err != nil {
			WriteError(w, r, err)
			return
		}
		if adm.Principal == nil {
			next.ServeHTTP(w, r)
			return
		}
		g.SetHeaders(w.Header(), adm)
		ctx := &admitted{Context: r.Context(), p: adm.Principal, at: adm.At}
		next.ServeHTTP(w, r.WithContext(ctx))
		g.countUse(adm.Principal, ctx.at, keyhub.UsageOutcome(ctx.outcome.Load()))
	})
}
