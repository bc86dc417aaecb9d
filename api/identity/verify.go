package identity

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/time/rate"
)

// Principal is the caller keyhub let through, as its identity says.
type Principal struct {
	UserID  uuid.UUID
	OwnerID uuid.UUID
	// KeyID is the API key that authenticated; uuid.Nil for a user session.
	KeyID      uuid.UUID
	Scopes     []string
	Tier       string
	AuthMethod string // MethodAPIKey or MethodJWT
	// TokenID is the token's jti. keyhub reuses a token for many requests
	// of the same caller: never use it as a per-request nonce.
	TokenID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// HasScope reports whether the caller holds scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

type contextKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, contextKey{}, p)
}

// FromContext returns the principal Middleware verified, if any.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(contextKey{}).(*Principal)
	return p, ok && p != nil
}

// Config is what a Verifier checks.
type Config struct {
	// JWKSURL is keyhub's JWKS, e.g. https://keyhub.example.com/.well-known/jwks.json.
	JWKSURL string
	// Audience is the aud the tokens must carry: DefaultAudience unless
	// keyhub's route names another.
	Audience string
	// Issuer, when set, is the iss the tokens must carry: keyhub's
	// PUBLIC_URL.
	Issuer string
	// Leeway is the clock skew allowed on exp and iat (default 5s).
	Leeway time.Duration
	// HTTPClient fetches the JWKS (default http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// CacheSize bounds the verified tokens kept (default 10000), each
	// until its exp: keyhub reuses a token for up to 30 s, so most
	// requests skip the ES256 check (≈80 µs) for a map lookup. A token
	// already verified stays accepted until its exp (at most 60 s) even if
	// keyhub stops publishing its key.
	CacheSize int
}

// Verifier checks Keyhub-Identity tokens against keyhub's JWKS. It is safe
// for concurrent use.
type Verifier struct {
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
	now    func() time.Time

	mu       sync.Mutex
	verified map[[sha256.Size]byte]*Principal
	size     int
}

// keyLookupTimeout bounds how long a request with a kid keyhub has not
// published (yet) waits for the JWKS to be fetched again.
const keyLookupTimeout = 2 * time.Second

// New returns a Verifier that fetches the JWKS now and refreshes it in the
// background (every 5 minutes, and at most once a minute when a token
// names an unknown kid) until ctx ends. A JWKS that cannot be fetched at
// start is not an error: tokens are refused until it can.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.JWKSURL == "" {
		return nil, errors.New("identity: no JWKS URL")
	}
	if cfg.Audience == "" {
		return nil, errors.New("identity: no audience (identity.DefaultAudience unless keyhub's route names another)")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 5 * time.Second
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 10_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keys, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:           cfg.HTTPClient,
		RefreshInterval:  5 * time.Minute,
		RateLimitWaitMax: keyLookupTimeout,
		// An unknown kid (keyhub rotated its key) fetches the JWKS again at
		// most once a minute, however many forged tokens name one.
		RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("identity: JWKS %s: %w", cfg.JWKSURL, err)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	return &Verifier{
		keys:     keys,
		parser:   jwt.NewParser(opts...),
		now:      cfg.Now,
		verified: make(map[[sha256.Size]byte]*Principal),
		size:     cfg.CacheSize,
	}, nil
}

// maxTokenBytes bounds what is parsed: an identity is well under 2 KiB.
const maxTokenBytes = 8 << 10

// Verify checks token and returns its principal. The principal is shared
// between the requests carrying the same token: do not modify it.
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, errors.New("no " + Header + " header")
	}
	if len(token) > maxTokenBytes {
		return nil, errors.New(Header + " is too long")
	}
	sum := sha256.Sum256([]byte(token))
	now := v.now()
	v.mu.Lock()
	p, ok := v.verified[sum]
	v.mu.Unlock()
	if ok && now.Before(p.ExpiresAt) {
		return p, nil
	}

	lookupCtx, cancel := context.WithTimeout(ctx, keyLookupTimeout)
	defer cancel()
	var claims Claims
	parsed, err := v.parser.ParseWithClaims(token, &claims, v.keys.KeyfuncCtx(lookupCtx))
	if err != nil {
		return nil, fmt.Errorf("invalid %s: %w", Header, err)
	}
	if parsed.Header["typ"] != TokenType {
		return nil, fmt.Errorf("invalid %s: typ %v, want %s", Header, parsed.Header["typ"], TokenType)
	}
	p, err = principalOf(&claims)
	if err != nil {
		return nil, fmt.Errorf("invalid %s: %w", Header, err)
	}
	v.remember(sum, p, now)
	return p, nil
}

// principalOf checks the claims keyhub always sets.
func principalOf(c *Claims) (*Principal, error) {
	p := &Principal{Scopes: c.Scopes, Tier: c.Tier, AuthMethod: c.AuthMethod, TokenID: c.ID}
	var err error
	if p.UserID, err = uuid.Parse(c.Subject); err != nil {
		return nil, errors.New("sub is not a user id")
	}
	if p.OwnerID, err = uuid.Parse(c.OwnerID); err != nil {
		return nil, errors.New("owner_id is not an owner id")
	}
	switch c.AuthMethod {
	case MethodAPIKey:
		if p.KeyID, err = uuid.Parse(c.KeyID); err != nil {
			return nil, errors.New("key_id is not a key id")
		}
	case MethodJWT:
		if c.KeyID != "" {
			return nil, errors.New("a user session with a key_id")
		}
	default:
		return nil, fmt.Errorf("unknown auth_method %q", c.AuthMethod)
	}
	if c.Tier == "" {
		return nil, errors.New("no tier")
	}
	if c.IssuedAt != nil {
		p.IssuedAt = c.IssuedAt.Time
	}
	p.ExpiresAt = c.ExpiresAt.Time // required by the parser
	return p, nil
}

// remember keeps p until its token expires; a full cache drops expired
// entries, then an arbitrary one.
func (v *Verifier) remember(sum [sha256.Size]byte, p *Principal, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.verified) >= v.size {
		for k, old := range v.verified {
			if !now.Before(old.ExpiresAt) {
				delete(v.verified, k)
			}
		}
		for k := range v.verified {
			if len(v.verified) < v.size {
				break
			}
			delete(v.verified, k)
		}
	}
	v.verified[sum] = p
}

// Handler verifies the request's Keyhub-Identity and calls next with the
// principal in the context (FromContext); a request without a valid one
// is answered 401 with keyhub's error shape and code INVALID_IDENTITY.
func (v *Verifier) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := v.Verify(r.Context(), r.Header.Get(Header))
		if err != nil {
			refuse(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
	})
}

// Middleware verifies Keyhub-Identity on every request against the JWKS
// at jwksURL, requiring audience (DefaultAudience unless keyhub's route
// names another), and puts the principal in the request's context. Its
// JWKS refresh runs for the life of the process; use New for a Verifier
// you can stop.
//
// Without options any iss is accepted: the JWKS alone says the token is
// keyhub's. WithIssuer(keyhub's PUBLIC_URL) also requires the iss, so that
// an identity issued by another keyhub deployment sharing the signing key
// (staging and production, say) is refused.
func Middleware(jwksURL, audience string, opts ...Option) (func(http.Handler) http.Handler, error) {
	cfg := Config{JWKSURL: jwksURL, Audience: audience}
	for _, opt := range opts {
		opt(&cfg)
	}
	v, err := New(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return v.Handler, nil
}

// Option adjusts the Config Middleware builds.
type Option func(*Config)

// WithIssuer makes Middleware require iss: keyhub's PUBLIC_URL, as its
// identities carry it (e.g. https://keyhub.example.com, no trailing
// slash).
func WithIssuer(iss string) Option {
	return func(c *Config) { c.Issuer = iss }
}

// CodeInvalidIdentity is the error code of a request refused by Handler.
const CodeInvalidIdentity = "INVALID_IDENTITY"

func refuse(w http.ResponseWriter, err error) {
	// The reason helps whoever wires the upstream; it names no secret.
	msg := err.Error()
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": CodeInvalidIdentity, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(append(body, '\n'))
}
