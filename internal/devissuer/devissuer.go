// Package devissuer stands in for Supabase Auth in dev mode, so `make run`
// works without a Supabase project: it keeps an ES256 key on disk, serves
// its public half as a JWKS, and mints Supabase-shaped access tokens.
// Tokens it mints are verified by jwtverify through the JWKS endpoint, the
// same path production tokens take. Never enable it in production: whoever
// can reach Token can be anyone.
package devissuer

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/eckey"
)

// KeyFile is the name of the private key file inside the directory given to
// LoadOrCreate.
const KeyFile = "jwt-es256.pem"

// userNamespace is the UUID v5 namespace of dev user ids. Changing it
// changes every dev user's id: never do.
var userNamespace = uuid.MustParse("6f1c9d2e-3b7a-4c55-9e0f-8a2d4b6c1e73")

// Issuer signs dev access tokens with one ES256 key.
type Issuer struct {
	key    *ecdsa.PrivateKey
	public eckey.Public
}

// LoadOrCreate loads the ES256 private key from dir/jwt-es256.pem, creating
// dir (0700) and the key (0600) on first use.
func LoadOrCreate(dir string) (*Issuer, error) {
	key, err := eckey.LoadOrCreate(dir, KeyFile)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	public, err := eckey.PublicOf(key)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	return &Issuer{key: key, public: public}, nil
}

// KeyID returns the key's RFC 7638 thumbprint, the kid of every token.
func (i *Issuer) KeyID() string { return i.public.KeyID }

// JWKS returns the public key set as JSON:
// {"keys":[{kty:EC,crv:P-256,x,y,kid,alg:ES256,use:sig}]}.
func (i *Issuer) JWKS() []byte { return append([]byte(nil), i.public.JWKS...) }

// JWKSHandler serves JWKS() as application/json.
func (i *Issuer) JWKSHandler() http.Handler { return i.public.Handler() }

// Token mints a Supabase-shaped access token for email: iss, sub, aud
// "authenticated", exp, iat, email, role "authenticated", a random
// session_id, aal "aal1", is_anonymous false; the header carries kid and
// alg ES256. The email is trimmed and lower-cased, as Supabase stores it.
func (i *Issuer) Token(issuer string, email string, ttl time.Duration) (string, error) {
	return i.TokenFor(issuer, UserIDForEmail(email), email, ttl)
}

// TokenFor is Token for a given user id: the token Supabase issues once an
// anonymous user has linked email to the account (same sub, is_anonymous
// false).
func (i *Issuer) TokenFor(issuer string, user uuid.UUID, email string, ttl time.Duration) (string, error) {
	email = normalizeEmail(email)
	if email == "" {
		return "", errors.New("devissuer: empty email")
	}
	return i.mint(issuer, user, email, false, ttl)
}

// AnonymousToken mints the access token of a Supabase anonymous sign-in
// for user: no email, is_anonymous true, amr method "anonymous"; what
// ANONYMOUS_USERS decides about.
func (i *Issuer) AnonymousToken(issuer string, user uuid.UUID, ttl time.Duration) (string, error) {
	return i.mint(issuer, user, "", true, ttl)
}

// mint signs a Supabase-shaped token.
func (i *Issuer) mint(issuer string, user uuid.UUID, email string, anonymous bool, ttl time.Duration) (string, error) {
	switch {
	case issuer == "":
		return "", errors.New("devissuer: empty issuer")
	case ttl <= 0:
		return "", fmt.Errorf("devissuer: ttl %s is not positive", ttl)
	}
	amr := "password"
	if anonymous {
		amr = "anonymous"
	}
	sessionID, err := uuid.NewRandom()
	if err != nil {
		return "", fmt.Errorf("devissuer: session id: %w", err)
	}
	now := time.Now()
	token := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss":          issuer,
		"sub":          user.String(),
		"aud":          "authenticated", // a string, as Supabase writes it
		"exp":          now.Add(ttl).Unix(),
		"iat":          now.Unix(),
		"email":        email,
		"phone":        "",
		"role":         "authenticated",
		"session_id":   sessionID.String(),
		"aal":          "aal1",
		"amr":          []map[string]any{{"method": amr, "timestamp": now.Unix()}},
		"is_anonymous": anonymous,
	})
	token.Header["kid"] = i.public.KeyID
	signed, err := token.SignedString(i.key)
	if err != nil {
		return "", fmt.Errorf("devissuer: sign token: %w", err)
	}
	return signed, nil
}

// UserIDForEmail derives the token's sub deterministically (UUID v5 over the
// trimmed, lower-cased email in a fixed namespace), so the same email is the
// same dev user across runs.
func UserIDForEmail(email string) uuid.UUID {
	return uuid.NewSHA1(userNamespace, []byte(normalizeEmail(email)))
}

func normalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}
