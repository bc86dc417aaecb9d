// Package operator recognises the credentials of the people who run the
// product behind keyhub, as opposed to its tenants: the Supabase project's
// legacy service_role key, and the secrets listed in VERIFY_TOKENS. Only
// they may ask keyhub whether a tenant's key is valid (POST
// /v1/keys/verify); a tenant's own key or session never may.
package operator

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/golang-jwt/jwt/v5"
)

// Config lists what counts as an operator.
type Config struct {
	// JWTSecret is the Supabase project's legacy JWT secret
	// (SUPABASE_JWT_SECRET): the service_role key is an HS256 JWT signed
	// with it. Empty: no service_role key is accepted.
	JWTSecret string
	// Tokens are the secrets of VERIFY_TOKENS.
	Tokens []string
}

// Checker tells operator credentials from everything else. It is safe for
// concurrent use.
type Checker struct {
	secret []byte
	// digests of Tokens: compared in constant time, and all of them every
	// time, so neither a token's length nor its position leaks.
	digests [][sha256.Size]byte
	parser  *jwt.Parser
}

// New returns the checker of cfg.
func New(cfg Config) *Checker {
	c := &Checker{
		secret: []byte(cfg.JWTSecret),
		// Supabase's legacy keys carry exp (years ahead): require it, so a
		// hand-made token without one is no operator forever.
		parser: jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("supabase"), jwt.WithExpirationRequired()),
	}
	for _, t := range cfg.Tokens {
		c.digests = append(c.digests, sha256.Sum256([]byte(t)))
	}
	return c
}

// Configured reports whether any operator credential can be accepted.
func (c *Checker) Configured() bool { return c != nil && (len(c.secret) > 0 || len(c.digests) > 0) }

// IsOperator reports whether bearer (the Authorization: Bearer value) is
// an operator credential: one of Tokens, or a service_role key. A nil
// Checker accepts none.
func (c *Checker) IsOperator(bearer string) bool {
	if c == nil || bearer == "" {
		return false
	}
	digest := sha256.Sum256([]byte(bearer))
	match := 0
	for i := range c.digests {
		match |= subtle.ConstantTimeCompare(digest[:], c.digests[i][:])
	}
	if match == 1 {
		return true
	}
	return c.isServiceRole(bearer)
}

// isServiceRole checks the legacy service_role key exactly as Supabase
// issues it: HS256 with the project's secret, iss "supabase", role
// "service_role", and neither sub nor aud (a token with them is a user's,
// whatever its role claims).
func (c *Checker) isServiceRole(token string) bool {
	if len(c.secret) == 0 || len(token) > 4096 {
		return false
	}
	var claims struct {
		jwt.RegisteredClaims
		Role string `json:"role"`
	}
	_, err := c.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return c.secret, nil })
	if err != nil {
		return false
	}
	return claims.Role == "service_role" && claims.Subject == "" && len(claims.Audience) == 0
}
