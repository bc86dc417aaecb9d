// Package identity is what a service behind keyhub imports to learn who is
// calling: keyhub's gateway (the built-in proxy and forward auth, GET
// /v1/authz) sends every request it lets through with a Keyhub-Identity
// header, an ES256 JWT signed by keyhub's own key, whose public half keyhub
// serves at /.well-known/jwks.json. Middleware verifies it against that
// JWKS and puts the caller's Principal in the request's context.
//
//	mw, err := identity.Middleware("https://keyhub.example.com/.well-known/jwks.json", identity.DefaultAudience,
//		identity.WithIssuer("https://keyhub.example.com"))
//	http.ListenAndServe(":9000", mw(mux))
//	// in a handler:
//	p, _ := identity.FromContext(r.Context())
//	if !p.HasScope("app:write") { ... }
//
// The package imports nothing of keyhub's internals: it is the wire
// contract of the identity, shared by keyhub's signer and its verifiers.
package identity

import "github.com/golang-jwt/jwt/v5"

// The headers keyhub's gateway sets on a request it lets through. Every
// client-sent header starting with "Keyhub-" is removed first.
const (
	// Header carries the signed identity, the one to trust.
	Header = "Keyhub-Identity"
	// The convenience headers repeat the identity's claims in plain text.
	// Trust them only when the upstream is reachable solely through
	// keyhub (or the proxy asking keyhub); otherwise verify Header.
	HeaderUserID  = "Keyhub-User-Id"
	HeaderOwnerID = "Keyhub-Owner-Id"
	HeaderKeyID   = "Keyhub-Key-Id" // absent when a user session authenticated
	HeaderScopes  = "Keyhub-Scopes" // comma-separated scope names
	HeaderTier    = "Keyhub-Tier"
)

// DefaultAudience is the aud of identities sent to routes that name no
// audience of their own.
const DefaultAudience = "keyhub-gateway"

// JWKSPath is where keyhub serves the public key that signs identities.
const JWKSPath = "/.well-known/jwks.json"

// TokenType is the typ header of every identity (RFC 8725 explicit
// typing): an identity is never mistaken for another kind of JWT signed
// with the same algorithm, nor another JWT for an identity.
const TokenType = "keyhub-identity+jwt"

// The auth_method claim's values.
const (
	MethodAPIKey = "api_key" // an mk_ key authenticated
	MethodJWT    = "jwt"     // a dashboard user's session authenticated
)

// Claims are the claims of a Keyhub-Identity token: iss (keyhub's public
// URL), aud, sub (the user id), iat, exp (at most 60 s after iat), jti (the
// token's id: keyhub reuses a token for up to half its life, so jti names a
// token, not a request), and keyhub's own below.
type Claims struct {
	jwt.RegisteredClaims
	// OwnerID is the tenant the caller acts for.
	OwnerID string `json:"owner_id"`
	// KeyID is the API key that authenticated; empty for a user session.
	KeyID string `json:"key_id,omitempty"`
	// Scopes are the scope names the caller holds: keyhub's own and the
	// product's (PRODUCT_SCOPES).
	Scopes []string `json:"scopes"`
	// Tier is the owner's plan: free, pro, team or enterprise.
	Tier string `json:"tier"`
	// AuthMethod is MethodAPIKey or MethodJWT.
	AuthMethod string `json:"auth_method"`
}
