// Package jwtverify verifies Supabase Auth access tokens (JWTs) presented by
// dashboard users. Keys come from the project's JWKS endpoint (fetched at
// start, every 10 minutes, and on an unknown kid within a budget of one
// fetch per 30 s; see remote.go), from a static public key pasted into the
// environment, or from the legacy HS256 shared secret. Each key is bound to
// the one algorithm it can verify, so a token can never choose how it is
// checked.
//
// This file builds the Verifier. verify.go checks a token and explains a
// refusal; keyfunc.go picks the key that may verify it; keys.go parses the
// static keys of the environment; jwks.go starts the JWKS fetches and
// checks a published key; remote.go fetches and holds the published set.
package jwtverify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// MaxTokenLength caps the size of a token before any parsing. Supabase
// access tokens are well under 2 KiB; the cap keeps a hostile header from
// costing more than a few microseconds (CVE-2025-30204 style).
const MaxTokenLength = 8 << 10

// Defaults of the verifier (the JWKS fetches are tuned in remote.go).
const (
	defaultAudience       = "authenticated"
	defaultRefreshTimeout = 2 * time.Second
	// minRSABits rejects toy RSA keys wherever they come from.
	minRSABits = 2048
)

// Names of the environment variables the static keys come from; errors and
// warnings name them so an operator knows which one to fix.
const (
	envES256PublicKey = "SUPABASE_JWT_PUBLIC_KEY"
	envRSAPublicKey   = "SUPABASE_JWT_RSA_PUBLIC_KEY"
)

// Config says where the verification keys come from and what a token must
// claim.
type Config struct {
	JWKSURL        string        // e.g. SUPABASE_URL + "/auth/v1/.well-known/jwks.json"; empty = no remote keys
	ES256PublicKey string        // SUPABASE_JWT_PUBLIC_KEY: a JWK, a JWKS, PEM, or base64 DER (SPKI) of an EC P-256 key
	RSAPublicKey   string        // SUPABASE_JWT_RSA_PUBLIC_KEY: same formats, RSA key (PKIX or PKCS1)
	HS256Secret    string        // SUPABASE_JWT_SECRET, legacy shared secret
	Issuer         string        // required value of iss
	Audience       string        // required aud, default "authenticated" if empty
	Leeway         time.Duration // clock skew allowance for exp/nbf/iat, e.g. 30s
	RefreshTimeout time.Duration // max time a request waits for an unknown-kid JWKS refresh (default 2s)
	HTTPClient     *http.Client  // optional, for JWKS fetches
	Logger         *slog.Logger  // warnings (e.g. a private JWK pasted: private part dropped), JWKS fetches and refusals
	// UnknownKeyHint is added to the error of a token whose signing key is
	// not known (dev mode says where its key lives).
	UnknownKeyHint string
	// Now is the clock of the JWKS fetch budget (tests move it to prove
	// the 30 s spacing without waiting); nil is time.Now.
	Now func() time.Time
}

// Claims are the parts of a verified Supabase access token keyhub uses.
type Claims struct {
	Subject   uuid.UUID
	Email     string
	Role      string
	SessionID string
	ExpiresAt time.Time
	// Anonymous is the is_anonymous claim: an anonymous sign-in.
	Anonymous bool
}

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	parser         *jwt.Parser
	hsKey          any         // []byte of SUPABASE_JWT_SECRET, or nil; boxed once so keyFor does not allocate
	ecKeys         []staticKey // *ecdsa.PublicKey on P-256, for ES256 only
	rsaKeys        []staticKey // *rsa.PublicKey, for RS256 only
	remote         *remoteKeys // the fetched JWKS; nil unless JWKSURL is set
	refreshTimeout time.Duration
	methods        []string // the algs the configured keys can verify
	configured     bool
	// issuer, audience and unknownKeyHint make the errors say which check
	// failed: the expected values are configuration, not secrets.
	issuer         string
	audience       string
	unknownKeyHint string
}

// New builds a verifier. ctx bounds the background JWKS refresh goroutine
// (cancel it to stop). A malformed static key is an error naming its
// environment variable. An unreachable JWKS endpoint is not an error: the
// service must start while the auth server is briefly down, and in dev mode
// the JWKS is served by this very process, which is not listening yet. The
// keys are then fetched on the first unknown kid or the periodic refresh.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("jwtverify: negative leeway %s", cfg.Leeway)
	}
	v := &Verifier{refreshTimeout: cfg.RefreshTimeout, issuer: cfg.Issuer, unknownKeyHint: cfg.UnknownKeyHint}
	if v.refreshTimeout <= 0 {
		v.refreshTimeout = defaultRefreshTimeout
	}

	var err error
	if v.ecKeys, err = parseStaticKeys(cfg.ES256PublicKey, envES256PublicKey, keyKindEC, log); err != nil {
		return nil, err
	}
	if v.rsaKeys, err = parseStaticKeys(cfg.RSAPublicKey, envRSAPublicKey, keyKindRSA, log); err != nil {
		return nil, err
	}
	if cfg.HS256Secret != "" {
		// Supabase signs with the secret's bytes as written, not base64-decoded.
		v.hsKey = []byte(cfg.HS256Secret)
		if len(cfg.HS256Secret) < 32 {
			log.Warn("SUPABASE_JWT_SECRET is shorter than 32 bytes; HS256 tokens signed with it are easy to forge")
		}
	}
	if cfg.JWKSURL != "" {
		now := cfg.Now
		if now == nil {
			now = time.Now
		}
		if err := v.startJWKS(ctx, cfg.JWKSURL, cfg.HTTPClient, log, now); err != nil {
			return nil, err
		}
	}

	// Only what a configured source can issue is allowed: with no shared
	// secret, an HS256 token is refused before any key is looked at.
	var methods []string
	if len(v.ecKeys) > 0 || v.remote != nil {
		methods = append(methods, jwt.SigningMethodES256.Alg())
	}
	if len(v.rsaKeys) > 0 || v.remote != nil {
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	if v.hsKey != nil {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	v.methods = methods
	v.configured = len(methods) > 0
	if !v.configured {
		return v, nil
	}

	audience := cfg.Audience
	if audience == "" {
		audience = defaultAudience
	}
	v.audience = audience
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithAudience(audience),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	} else {
		log.Warn("no JWT issuer configured; the iss claim of access tokens is not checked")
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Configured reports whether any key source is present.
func (v *Verifier) Configured() bool { return v.configured }
