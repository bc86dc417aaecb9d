// Package jwtverify verifies Supabase Auth access tokens (JWTs) presented by
// dashboard users. Keys come from the project's JWKS endpoint (fetched at
// start, every 10 minutes, and on an unknown kid within a budget of one
// fetch per 30 s; see remote.go), from a static public key pasted into the
// environment, or from the legacy HS256 shared secret. Each key is bound to
// the one algorithm it can verify, so a token can never choose how it is
// checked.
package jwtverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
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

// The roles Supabase puts in the tokens it signs.
const (
	roleAuthenticated = "authenticated"
	roleAnon          = "anon"
	roleServiceRole   = "service_role"
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

// staticKey is a public key from the environment; kid is empty unless it
// came from a JWK that had one.
type staticKey struct {
	kid string
	key any
}

// tokenClaims is what a token's payload is decoded into.
type tokenClaims struct {
	jwt.RegisteredClaims
	Email       string `json:"email"`
	Role        string `json:"role"`
	SessionID   string `json:"session_id"`
	IsAnonymous bool   `json:"is_anonymous"`
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

// startJWKS fetches the JWKS once (bounded by jwksHTTPTimeout) and starts
// the periodic fetch. Tokens with an unknown kid fetch it too, within the
// budget remoteKeys keeps (one fetch of any kind per 30 s).
func (v *Verifier) startJWKS(ctx context.Context, rawURL string, client *http.Client, log *slog.Logger, now func() time.Time) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("jwtverify: JWKS URL %q is not an http(s) URL", rawURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		log.Warn("JWKS URL is plain http; keys can be swapped in transit", "url", rawURL)
	}
	v.remote = newRemoteKeys(ctx, rawURL, client, log, now)
	err = v.remote.fetchNow()
	go v.remote.runPeriodic(ctx)
	if err != nil || len(v.remote.snapshot().all) > 0 {
		return nil // a failed fetch has said so itself
	}
	// The JWKS answered with no keys. A legacy project that signs with
	// the shared secret publishes none, legitimately: HS256 tokens never
	// look at the JWKS, so there is nothing to warn about.
	if v.hsKey != nil {
		log.Info("the JWKS publishes no keys: access tokens are verified with SUPABASE_JWT_SECRET (HS256)", "url", rawURL)
		return nil
	}
	log.Warn("the JWKS publishes no keys: ES256 and RS256 tokens are refused until it does (it is fetched again every 10 minutes, and on a token with an unknown kid at most every 30 s)", "url", rawURL)
	return nil
}

// KeySetGeneration counts the changes of the fetched JWKS since start: it
// moves whenever a refresh installs a key set that differs from the one
// before (a key added, removed or replaced), after the new set is in
// place. A verification result may be reused only while the generation
// read before the verification is still current. Static keys and the
// shared secret never change while the process runs.
func (v *Verifier) KeySetGeneration() uint64 {
	if v.remote == nil {
		return 0
	}
	return v.remote.snapshot().generation
}

// Configured reports whether any key source is present.
func (v *Verifier) Configured() bool { return v.configured }

// Verify checks token and returns its claims, or a *keyhub.Error:
// AUTH_NOT_CONFIGURED, INVALID_TOKEN, EXPIRED_TOKEN (only for a token whose
// signature is valid) or NOT_A_USER_SESSION (a validly signed anon or
// service_role token). An INVALID_TOKEN error's Reason says which check
// refused the token.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if !v.configured {
		return Claims{}, keyhub.Errorf(keyhub.CodeAuthNotConfigured, "token authentication is not configured")
	}
	if len(token) > MaxTokenLength {
		return Claims{}, invalid(reasonTooLong, "token is too long", nil)
	}
	if token == "" {
		return Claims{}, invalid(reasonEmpty, "token is empty", nil)
	}

	var tc tokenClaims
	parsed, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		// jwt checks the signature before the claims, and wraps
		// ErrTokenInvalidClaims only around claim errors: without it the
		// token is malformed, unverifiable or forged, and none of its claims
		// (exp included) can be trusted.
		if !errors.Is(err, jwt.ErrTokenInvalidClaims) || errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			return Claims{}, v.unverified(parsed, err)
		}
		// Validly signed by us. An anon or service_role key has no aud or
		// another iss, so this comes before the claim errors.
		if notUserSession(&tc) {
			return Claims{}, keyhub.Errorf(keyhub.CodeNotUserSession, "token is not a user session")
		}
		if onlyExpired(err) {
			e := keyhub.Errorf(keyhub.CodeExpiredToken, "token has expired")
			e.Err = err
			return Claims{}, e
		}
		reason, msg := v.claimsMessage(err, &tc)
		return Claims{}, invalid(reason, msg, err)
	}

	if notUserSession(&tc) {
		return Claims{}, keyhub.Errorf(keyhub.CodeNotUserSession, "token is not a user session")
	}
	// Supabase user sessions always carry role "authenticated" (anonymous
	// sign-ins too). A missing role, or any other role (say a custom one from
	// an access-token hook), is not a token we know how to authorize, so it
	// is INVALID_TOKEN rather than a guess.
	if tc.Role == "" {
		return Claims{}, invalid(reasonMissingClaim, "token lacks a required claim (role)", nil)
	}
	if tc.Role != roleAuthenticated {
		return Claims{}, invalid(reasonWrongRole, fmt.Sprintf("token role %q is not accepted", clip(tc.Role)), nil)
	}
	if tc.Subject == "" {
		return Claims{}, invalid(reasonMissingClaim, "token lacks a required claim (sub)", nil)
	}
	// Only the canonical 36-character form: uuid.Parse would also take the
	// urn:uuid:, braced and undashed spellings of the same id.
	if len(tc.Subject) != 36 {
		return Claims{}, invalid(reasonBadSubject, "token subject is not a user id", nil)
	}
	sub, err := uuid.Parse(tc.Subject)
	if err != nil || sub == uuid.Nil {
		return Claims{}, invalid(reasonBadSubject, "token subject is not a user id", err)
	}
	return Claims{
		Subject:   sub,
		Email:     tc.Email,
		Role:      tc.Role,
		SessionID: tc.SessionID,
		ExpiresAt: tc.ExpiresAt.Time, // non-nil: WithExpirationRequired
		Anonymous: tc.IsAnonymous,
	}, nil
}

// Why a token was refused, finer than its code: the Reason of the
// INVALID_TOKEN errors Verify returns, logged at DEBUG and counted in
// keyhub_auth_outcomes_total. A fixed set (never a value from the token),
// listed in the README.
const (
	reasonTooLong        = "too_long"
	reasonEmpty          = "empty"
	reasonMalformed      = "malformed"        // not three base64url parts of JSON
	reasonAlgNotAccepted = "alg_not_accepted" // an alg no configured key issues
	reasonBadSignature   = "bad_signature"
	reasonUnknownKID     = "unknown_kid"           // no configured or published key (the JWKS was checked)
	reasonKIDThrottled   = "unknown_kid_throttled" // refused without a fetch: the JWKS fetch budget is spent
	reasonJWKSDown       = "jwks_unavailable"      // the fetch for an unknown kid failed or took too long
	reasonBadHeader      = "bad_header"            // crit, or a kid that is not a string
	reasonWrongIssuer    = "wrong_issuer"
	reasonWrongAudience  = "wrong_audience"
	reasonMissingClaim   = "missing_claim"
	reasonNotYetValid    = "not_yet_valid"    // nbf in the future
	reasonIssuedInFuture = "issued_in_future" // iat in the future
	reasonBadClaims      = "bad_claims"       // a claim of the wrong type, or several failures
	reasonWrongRole      = "wrong_role"
	reasonBadSubject     = "bad_subject"
)

// unverified explains a token whose signature could not be checked or did
// not verify: none of its claims can be trusted.
func (v *Verifier) unverified(parsed *jwt.Token, err error) *keyhub.Error {
	switch {
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		var unknown *unknownKeyError
		if errors.As(err, &unknown) {
			reason := reasonUnknownKID
			var spent *refreshBudgetSpentError
			var failed *fetchFailedError
			switch {
			case errors.As(err, &spent):
				reason = reasonKIDThrottled
			case errors.As(err, &failed), errors.Is(err, errFetchWaitOver), errors.Is(err, context.DeadlineExceeded):
				reason = reasonJWKSDown
			}
			return invalid(reason, v.unknownKeyMessage(unknown), err)
		}
		return invalid(reasonBadHeader, "token header is not supported (crit, or a kid that is not a string)", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// jwt refuses an alg outside the allow-list with this same error,
		// before any key is looked at; parsed is set on both paths.
		if parsed != nil && parsed.Method != nil && !slices.Contains(v.methods, parsed.Method.Alg()) {
			return invalid(reasonAlgNotAccepted, fmt.Sprintf("token alg %q is not accepted", clip(parsed.Method.Alg())), err)
		}
		return invalid(reasonBadSignature, "token signature is invalid", err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid(reasonMalformed, "token is malformed", err)
	}
	return invalid(reasonBadClaims, "token is invalid", err)
}

// unknownKeyMessage says that no configured key verifies the token, and
// why when that is safe to say (the kid is unknown).
func (v *Verifier) unknownKeyMessage(unknown *unknownKeyError) string {
	msg := "token signing key is unknown"
	if unknown.kid != "" {
		msg = fmt.Sprintf("token signing key is unknown: no %s key with kid %q", unknown.alg, clip(unknown.kid))
	}
	if v.unknownKeyHint != "" {
		msg += " (" + v.unknownKeyHint + ")"
	}
	return msg
}

// claimsMessage says which claim of a validly signed token failed, and its
// reason. The expected values are configuration, and the token's own are
// the caller's: neither is a secret, and both help whoever set the token up.
func (v *Verifier) claimsMessage(err error, tc *tokenClaims) (reason, msg string) {
	switch {
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return reasonMissingClaim, missingClaimsMessage(v.missingClaims(tc))
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return reasonWrongIssuer, fmt.Sprintf("token iss %q does not match the expected issuer %q", clip(tc.Issuer), v.issuer)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		got := make([]string, 0, len(tc.Audience))
		for _, aud := range tc.Audience {
			got = append(got, clip(aud))
		}
		return reasonWrongAudience, fmt.Sprintf("token aud %q does not include the expected audience %q", got, v.audience)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return reasonNotYetValid, "token is not valid yet (nbf is in the future)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reasonIssuedInFuture, "token was issued in the future (iat): check the clocks"
	}
	return reasonBadClaims, "token claims are invalid"
}

// missingClaims names the claims the parser requires that tc lacks, read
// from the claims themselves: jwt's error says only that one is missing.
func (v *Verifier) missingClaims(tc *tokenClaims) []string {
	var missing []string
	if tc.Issuer == "" && v.issuer != "" {
		missing = append(missing, "iss")
	}
	if len(tc.Audience) == 0 || len(tc.Audience) == 1 && tc.Audience[0] == "" {
		missing = append(missing, "aud")
	}
	if tc.ExpiresAt == nil {
		missing = append(missing, "exp")
	}
	return missing
}

// missingClaimsMessage says which required claims a token lacks.
func missingClaimsMessage(missing []string) string {
	switch len(missing) {
	case 0:
		return "token lacks a required claim"
	case 1:
		return "token lacks a required claim (" + missing[0] + ")"
	}
	return "token lacks required claims (" + strings.Join(missing, ", ") + ")"
}

// clip bounds a value echoed from a token.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// unknownKeyError is keyFor's answer when no configured key matches.
type unknownKeyError struct {
	alg, kid string
	cause    error // why the JWKS had none, for the logs
}

func (e *unknownKeyError) Error() string {
	msg := fmt.Sprintf("no %s key for kid %q", e.alg, e.kid)
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

func (e *unknownKeyError) Unwrap() error { return e.cause }

// keyFor is the jwt.Keyfunc: it returns only keys of the type the token's
// alg needs, so an HS256 token can never be checked against a public key.
// jwt has already refused any alg outside the allow-list.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	// RFC 7515 4.1.11: extensions we do not understand must be refused.
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("crit header is not supported")
	}
	alg := t.Method.Alg()
	var static []staticKey
	switch alg {
	case jwt.SigningMethodHS256.Alg():
		if v.hsKey == nil {
			return nil, errors.New("no HS256 secret")
		}
		return v.hsKey, nil
	case jwt.SigningMethodES256.Alg():
		static = v.ecKeys
	case jwt.SigningMethodRS256.Alg():
		static = v.rsaKeys
	default:
		return nil, fmt.Errorf("alg %q is not accepted", alg)
	}

	var kid string
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok || s == "" {
			return nil, errors.New("kid header is not a non-empty string")
		}
		kid = s
	}

	// A static key whose kid matches wins outright.
	if kid != "" {
		for _, k := range static {
			if k.kid == kid {
				return k.key, nil
			}
		}
	}

	var candidates []jwt.VerificationKey
	var jwksErr error // why the JWKS had no key, for the logs
	if v.remote != nil {
		if kid != "" {
			key, err := v.jwksKey(ctx, kid, alg)
			if err == nil && !hasUnnamed(static) {
				return key, nil // the common case: no allocation
			}
			if err == nil {
				candidates = append(candidates, key)
			}
			jwksErr = err
		} else {
			// No kid: try every fetched key of the right type (keyfunc does
			// the same). This never triggers a fetch.
			for _, j := range v.remote.snapshot().all {
				if key, err := checkKey(alg, j); err == nil {
					candidates = append(candidates, key)
				}
			}
		}
	}
	// Static keys are tried by alg, and by kid only when both sides have one.
	for _, k := range static {
		if kid == "" || k.kid == "" {
			candidates = append(candidates, k.key)
		}
	}
	switch len(candidates) {
	case 0:
		return nil, &unknownKeyError{alg: alg, kid: kid, cause: jwksErr}
	case 1:
		return candidates[0], nil
	default:
		return jwt.VerificationKeySet{Keys: candidates}, nil
	}
}

// jwksKey finds kid among the fetched keys (read by kid, check the JWK's
// alg, take the public half, check the key type). On a miss the JWKS is
// fetched within its budget, the request waiting at most RefreshTimeout.
func (v *Verifier) jwksKey(ctx context.Context, kid, alg string) (any, error) {
	j, err := v.remote.key(ctx, kid, v.refreshTimeout)
	if err != nil {
		return nil, err
	}
	return checkKey(alg, j)
}

// checkKey returns the public key of a fetched JWK if it may verify alg.
func checkKey(alg string, j jwkset.JWK) (any, error) {
	if a := j.Marshal().ALG; a != "" && string(a) != alg {
		return nil, fmt.Errorf("JWK alg %q does not match token alg %q", a, alg)
	}
	key := j.Key()
	// A JWKS that (wrongly) publishes private keys still only gives us the
	// public half.
	if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = pk.Public()
	}
	return checkKeyType(alg, key)
}

// checkKeyType binds the algorithm to the key type: ES256 needs an EC P-256
// key, RS256 an RSA key of at least 2048 bits. A symmetric ("oct") JWK is
// never accepted.
func checkKeyType(alg string, key any) (any, error) {
	switch alg {
	case jwt.SigningMethodES256.Alg():
		if k, ok := key.(*ecdsa.PublicKey); ok && k.Curve == elliptic.P256() {
			return k, nil
		}
	case jwt.SigningMethodRS256.Alg():
		if k, ok := key.(*rsa.PublicKey); ok && k.N.BitLen() >= minRSABits {
			return k, nil
		}
	}
	return nil, fmt.Errorf("key of type %T cannot verify %s", key, alg)
}

// hasUnnamed reports whether some static key has no kid, and so is a
// candidate for every token of its alg.
func hasUnnamed(keys []staticKey) bool {
	for _, k := range keys {
		if k.kid == "" {
			return true
		}
	}
	return false
}

// notUserSession reports whether a validly signed token is one of the
// project's API keys (anon, service_role) rather than a user's session.
func notUserSession(tc *tokenClaims) bool {
	return tc.Role == roleAnon || tc.Role == roleServiceRole || slices.Contains(tc.Audience, roleAnon)
}

// onlyExpired reports whether expiry is the only claim the token fails.
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return false
	}
	for _, other := range []error{
		jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenInvalidIssuer,
		jwt.ErrTokenNotValidYet,
		jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenRequiredClaimMissing,
		jwt.ErrTokenInvalidSubject,
		jwt.ErrTokenInvalidId,
		jwt.ErrInvalidType,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}

// invalid builds an INVALID_TOKEN error with its reason, keeping the cause
// for the logs.
func invalid(reason, msg string, cause error) *keyhub.Error {
	return &keyhub.Error{Code: keyhub.CodeInvalidToken, Message: msg, Reason: reason, Err: cause}
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
