// Package auth resolves every request to a keyhub.Principal through one
// chain of extractors, shared by REST and WebSocket: Supabase access
// tokens (JWT) for dashboard users, mk_ API keys for CLIs and daemons.
//
// Credentials are read from these headers:
//
//	Authorization: Bearer <jwt>     a Supabase access token
//	Authorization: Bearer mk_...    an API key (what CLIs send)
//	X-API-Key: mk_...               an API key
//	X-Makima-Api-Key: mk_...        an API key (the seed service's header)
//
// There is no precedence among them: a request that carries two different
// credentials is refused with AMBIGUOUS_CREDENTIALS rather than guessed
// at; the same key sent in two headers counts once.
package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/jwtverify"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
)

// TokenVerifier checks Supabase access tokens.
type TokenVerifier interface {
	Configured() bool
	Verify(ctx context.Context, token string) (jwtverify.Claims, error)
	// KeySetGeneration moves whenever the verification keys change; a
	// cached verification is trusted only under the generation it was made in.
	KeySetGeneration() uint64
}

// Authenticator is the extractor chain.
type Authenticator struct {
	keys   *ApiKeyCache
	tokens TokenVerifier
	// verified caches the claims of verified tokens; nil when tokens is.
	verified *tokenCache
	users    *userCache
	metrics  *metrics.Metrics
	log      *slog.Logger
	// anonymous is what anonymous sign-ins may do; the refusal of every
	// request (AnonymousRefuse) happens here, before a user is provisioned.
	anonymous keyhub.AnonymousPolicy
}

// Config assembles an Authenticator.
type Config struct {
	Keys      *ApiKeyCache
	Tokens    TokenVerifier
	Users     UserStore
	UserTTL   time.Duration // how long a provisioned user is cached (default 1 minute)
	UserSize  int           // how many users are cached (default 10,000)
	SeenUsers *Toucher      // receives users' last_seen_at; may be nil
	// Metrics counts the outcomes of header authentication; may be nil.
	Metrics *metrics.Metrics
	// Logger explains refused credentials at DEBUG (never the credential);
	// nil logs nothing.
	Logger *slog.Logger
	// StaleBound is the oldest a cached user may be while the change feed
	// is down (see KeyCacheConfig.StaleBound).
	StaleBound time.Duration
	// TokenCacheSize bounds how many verified access tokens are cached
	// (default 10,000).
	TokenCacheSize int
	// Now is the clock of the user and token caches (nil: time.Now); the
	// key cache has its own (KeyCacheConfig.Now).
	Now func() time.Time
	// AnonymousUsers is what anonymous sign-ins may do (ANONYMOUS_USERS);
	// empty is keyhub.AnonymousReadOnly.
	AnonymousUsers keyhub.AnonymousPolicy
}

// New returns the extractor chain.
func New(cfg Config) *Authenticator {
	if cfg.UserTTL <= 0 {
		cfg.UserTTL = time.Minute
	}
	if cfg.UserSize <= 0 {
		cfg.UserSize = 10_000
	}
	if cfg.TokenCacheSize <= 0 {
		cfg.TokenCacheSize = 10_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AnonymousUsers == "" {
		cfg.AnonymousUsers = keyhub.AnonymousReadOnly
	}
	a := &Authenticator{keys: cfg.Keys, tokens: cfg.Tokens, users: newUserCache(cfg.Users, cfg.UserSize, cfg.UserTTL, cfg.StaleBound, cfg.SeenUsers, cfg.Now),
		metrics: cfg.Metrics, log: cfg.Logger, anonymous: cfg.AnonymousUsers}
	if cfg.Tokens != nil {
		a.verified = newTokenCache(cfg.Tokens, cfg.TokenCacheSize, cfg.Now)
	}
	return a
}

// The Authenticator is the one subscriber of the change bus for both
// caches of principals it keeps (keys and users; verified tokens hold no
// principal and need no notice).
var _ keyhub.ChangeObserver = (*Authenticator)(nil)

// KeyChanged implements keyhub.ChangeObserver: the key's next use reads
// the database.
func (a *Authenticator) KeyChanged(change keyhub.KeyChange) { a.keys.Invalidate(change.KeyHash) }

// PrincipalChanged implements keyhub.ChangeObserver.
func (a *Authenticator) PrincipalChanged(change keyhub.PrincipalChange) {
	a.keys.forgetPrincipal(change)
	a.users.forget(change)
}

// EventWritten implements keyhub.ChangeObserver.
func (a *Authenticator) EventWritten(keyhub.Event) {}

// FeedDown implements keyhub.ChangeObserver.
func (a *Authenticator) FeedDown() {
	a.keys.feedDown()
	a.users.feedDown.Store(true)
}

// FeedUp implements keyhub.ChangeObserver.
func (a *Authenticator) FeedUp() {
	a.keys.feedUp()
	a.users.purge()
	a.users.feedDown.Store(false)
}

// maxCredentialLen caps what is handed to a parser: no real token or key
// comes near it, and parsing cost must not grow with a hostile header.
const maxCredentialLen = 8 << 10

// The reasons (keyhub.Error.Reason) are a fixed set, listed in the README
// with jwtverify's.
var (
	errAmbiguous   = keyhub.Errorf(keyhub.CodeAmbiguousCredentials, "the request carries more than one credential; send exactly one")
	errBadAuthz    = &keyhub.Error{Code: keyhub.CodeInvalidToken, Reason: "bad_authorization_header", Message: "the Authorization header must be \"Bearer <token>\""}
	errTooLong     = &keyhub.Error{Code: keyhub.CodeInvalidToken, Reason: "too_long", Message: "the credential is too long"}
	errKeyNotToken = &keyhub.Error{Code: keyhub.CodeInvalidAPIKey, Reason: "not_an_api_key", Message: "X-API-Key must hold an mk_ API key"}
	errKeyAsToken  = &keyhub.Error{Code: keyhub.CodeInvalidToken, Reason: "api_key_as_token", Message: "an API key was sent where an access token was expected"}
	errMissing     = keyhub.Errorf(keyhub.CodeMissingCredentials, "this endpoint requires an Authorization: Bearer token or an X-API-Key header")
	errNoJWT       = keyhub.Errorf(keyhub.CodeAuthNotConfigured, "user sign-in is not configured on this server")
	errAnonymous   = keyhub.Errorf(keyhub.CodeAnonymousUser, "anonymous sign-ins are not accepted on this server: sign in with an email or another identity")
	// errAnonymousReadOnly refuses what an anonymous sign-in may not do
	// under ANONYMOUS_USERS=read-only.
	errAnonymousReadOnly = keyhub.Errorf(keyhub.CodeAnonymousUser, "an anonymous sign-in can only read: link an email or another identity to your account, then sign in again")
)

// RecordOutcome counts one authentication attempt (method as in
// metrics.AuthOutcome) and, at DEBUG, says why a credential was refused:
// its code, reason and message, and the internal cause. None of them holds
// the credential (messages name claims, kids and key prefixes at most), so
// the line is safe to keep; it is built only when DEBUG is enabled, since
// refusals are what a flood is made of.
func (a *Authenticator) RecordOutcome(ctx context.Context, method string, err error) {
	a.metrics.AuthOutcome(method, err)
	if err == nil || !a.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := make([]slog.Attr, 0, 6)
	if id := httpjson.RequestID(ctx); id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	attrs = append(attrs, slog.String("method", method), slog.String("code", string(keyhub.ErrorCode(err))))
	var kerr *keyhub.Error
	if errors.As(err, &kerr) {
		attrs = append(attrs, slog.String("reason", kerr.Reason), slog.String("message", kerr.Message))
		err = kerr.Err
	}
	if err != nil {
		attrs = append(attrs, slog.String("cause", err.Error()))
	}
	a.log.LogAttrs(ctx, slog.LevelDebug, "credential refused", attrs...)
}

// HasCredentials reports whether the request carries any credential header.
func HasCredentials(h http.Header) bool {
	return len(h["Authorization"]) > 0 || len(h["X-Api-Key"]) > 0 || len(h["X-Makima-Api-Key"]) > 0
}

// Resolve verifies one credential: an mk_ key or a Supabase access token.
// WebSocket first-message authentication comes through here too. from is
// where the request came from, recorded as a key's last use.
func (a *Authenticator) Resolve(ctx context.Context, cred string, from keyhub.RequestMeta) (*keyhub.Principal, error) {
	if len(cred) > maxCredentialLen {
		return nil, errTooLong
	}
	if apikey.LooksLikeKey(cred) {
		return a.keys.Verify(ctx, cred, from)
	}
	return a.resolveToken(ctx, cred)
}

// ResolveKeyID resolves the key a WebSocket ticket names, with the same
// cache and the same revoked and expiry rules as a presented key.
func (a *Authenticator) ResolveKeyID(ctx context.Context, keyID uuid.UUID, from keyhub.RequestMeta) (*keyhub.Principal, error) {
	return a.keys.VerifyID(ctx, keyID, from)
}

// ResolveUser resolves the user a WebSocket ticket names, through the
// same user cache as a verified access token. The caller sets ExpiresAt
// (the session's end).
func (a *Authenticator) ResolveUser(ctx context.Context, userID uuid.UUID) (*keyhub.Principal, error) {
	p, err := a.users.principal(ctx, userID, "")
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// ResolveKey verifies a credential that must be an API key, used from from.
func (a *Authenticator) ResolveKey(ctx context.Context, key string, from keyhub.RequestMeta) (*keyhub.Principal, error) {
	if !apikey.LooksLikeKey(key) {
		return nil, errKeyNotToken
	}
	return a.Resolve(ctx, key, from)
}

// ResolveToken verifies a credential that must be a Supabase access token.
func (a *Authenticator) ResolveToken(ctx context.Context, token string) (*keyhub.Principal, error) {
	if apikey.LooksLikeKey(token) {
		return nil, errKeyAsToken
	}
	if len(token) > maxCredentialLen {
		return nil, errTooLong
	}
	return a.resolveToken(ctx, token)
}

func (a *Authenticator) resolveToken(ctx context.Context, token string) (*keyhub.Principal, error) {
	if a.tokens == nil || !a.tokens.Configured() {
		return nil, errNoJWT
	}
	claims, err := a.verified.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	if claims.Anonymous && a.anonymous == keyhub.AnonymousRefuse {
		return nil, errAnonymous // before provisioning: no tenant for it
	}
	p, err := a.users.principal(ctx, claims.Subject, claims.Email)
	if err != nil {
		return nil, err
	}
	// A session ends at the token's exp: a WebSocket opened with it closes then.
	p.ExpiresAt = claims.ExpiresAt
	// From the token, never the user cache: the user's next token, once an
	// identity is linked, has no is_anonymous.
	p.Anonymous = claims.Anonymous
	if p.Anonymous && a.anonymous == keyhub.AnonymousReadOnly {
		// The scopes a read needs, nothing more: every write, ticket and
		// socket is then refused by the scope check, as ANONYMOUS_USER.
		p.Scopes &= keyhub.AnonymousReadOnlyScopes
	}
	return &p, nil
}

// Credential is the one credential in h, by the extractor chain's rules
// ("" when there is none): a front door that also accepts a credential
// the chain cannot resolve (an operator's, POST /v1/keys/verify) reads it
// exactly as the chain would.
func Credential(h http.Header) (string, error) { return extract(h) }

// extract finds the one credential of a request ("" when there is none).
func extract(h http.Header) (string, error) {
	cred := ""
	add := func(v string) error {
		if cred != "" && cred != v {
			return errAmbiguous
		}
		cred = v
		return nil
	}
	for _, v := range h["Authorization"] {
		scheme, value, ok := strings.Cut(v, " ")
		value = strings.TrimSpace(value)
		if !ok || !strings.EqualFold(scheme, "Bearer") || value == "" {
			return "", errBadAuthz
		}
		if err := add(value); err != nil {
			return "", err
		}
	}
	for _, name := range [...]string{"X-Api-Key", "X-Makima-Api-Key"} {
		for _, v := range h[name] {
			v = strings.TrimSpace(v)
			if !apikey.LooksLikeKey(v) {
				return "", errKeyNotToken
			}
			if err := add(v); err != nil {
				return "", err
			}
		}
	}
	return cred, nil
}
