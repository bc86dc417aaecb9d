// Package devissuer stands in for Supabase Auth in dev mode, so `make run`
// works without a Supabase project: it keeps an ES256 key on disk, serves
// its public half as a JWKS, and mints Supabase-shaped access tokens.
// Tokens it mints are verified by jwtverify through the JWKS endpoint, the
// same path production tokens take. Never enable it in production: whoever
// can reach Token can be anyone.
package devissuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// KeyFile is the name of the private key file inside the directory given to
// LoadOrCreate.
const KeyFile = "jwt-es256.pem"

// userNamespace is the UUID v5 namespace of dev user ids. Changing it
// changes every dev user's id: never do.
var userNamespace = uuid.MustParse("6f1c9d2e-3b7a-4c55-9e0f-8a2d4b6c1e73")

// Issuer signs dev access tokens with one ES256 key.
type Issuer struct {
	key  *ecdsa.PrivateKey
	kid  string
	jwks []byte
}

// LoadOrCreate loads the ES256 private key from dir/jwt-es256.pem, creating
// dir (0700) and the key (0600) on first use.
func LoadOrCreate(dir string) (*Issuer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devissuer: create key dir: %w", err)
	}
	path := filepath.Join(dir, KeyFile)
	key, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(dir, path)
	}
	if err != nil {
		return nil, err
	}
	return newIssuer(key)
}

// loadKey reads a P-256 private key from a PKCS#8 or SEC 1 PEM file.
func loadKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devissuer: read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("devissuer: %s is not PEM", path)
	}
	var parsed any
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("devissuer: %s holds a %q PEM block, want a private key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("devissuer: parse %s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("devissuer: %s is not an EC P-256 key", path)
	}
	return key, nil
}

// createKey generates a key and publishes it at path without ever
// overwriting one: it is written to a temporary file and hard-linked into
// place, so two processes starting at once end up with the same key and a
// reader never sees half a file.
func createKey(dir, path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devissuer: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("devissuer: encode key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, KeyFile+".tmp*") // created 0600
	if err != nil {
		return nil, fmt.Errorf("devissuer: write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("devissuer: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("devissuer: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("devissuer: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path) // another process won the race
		}
		return nil, fmt.Errorf("devissuer: write key: %w", err)
	}
	return key, nil
}

// newIssuer derives the key id and the JWKS once.
func newIssuer(key *ecdsa.PrivateKey) (*Issuer, error) {
	point, err := key.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each on P-256
	if err != nil {
		return nil, fmt.Errorf("devissuer: encode public key: %w", err)
	}
	x := base64.RawURLEncoding.EncodeToString(point[1:33])
	y := base64.RawURLEncoding.EncodeToString(point[33:])

	// RFC 7638 thumbprint: SHA-256 of the required members, in
	// lexicographic order, with no whitespace.
	thumb := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	kid := base64.RawURLEncoding.EncodeToString(thumb[:])

	type jwk struct {
		KTY string `json:"kty"`
		CRV string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		KID string `json:"kid"`
		ALG string `json:"alg"`
		USE string `json:"use"`
	}
	jwks, err := json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{{KTY: "EC", CRV: "P-256", X: x, Y: y, KID: kid, ALG: "ES256", USE: "sig"}}})
	if err != nil {
		return nil, fmt.Errorf("devissuer: encode JWKS: %w", err)
	}
	return &Issuer{key: key, kid: kid, jwks: jwks}, nil
}

// KeyID returns the key's RFC 7638 thumbprint, the kid of every token.
func (i *Issuer) KeyID() string { return i.kid }

// JWKS returns the public key set as JSON:
// {"keys":[{kty:EC,crv:P-256,x,y,kid,alg:ES256,use:sig}]}.
func (i *Issuer) JWKS() []byte { return append([]byte(nil), i.jwks...) }

// JWKSHandler serves JWKS() as application/json.
func (i *Issuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(i.jwks)
	})
}

// Token mints a Supabase-shaped access token for email: iss, sub, aud
// "authenticated", exp, iat, email, role "authenticated", a random
// session_id, aal "aal1", is_anonymous false; the header carries kid and
// alg ES256. The email is trimmed and lower-cased, as Supabase stores it.
func (i *Issuer) Token(issuer string, email string, ttl time.Duration) (string, error) {
	email = normalizeEmail(email)
	switch {
	case issuer == "":
		return "", errors.New("devissuer: empty issuer")
	case email == "":
		return "", errors.New("devissuer: empty email")
	case ttl <= 0:
		return "", fmt.Errorf("devissuer: ttl %s is not positive", ttl)
	}
	sessionID, err := uuid.NewRandom()
	if err != nil {
		return "", fmt.Errorf("devissuer: session id: %w", err)
	}
	now := time.Now()
	token := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss":          issuer,
		"sub":          UserIDForEmail(email).String(),
		"aud":          "authenticated", // a string, as Supabase writes it
		"exp":          now.Add(ttl).Unix(),
		"iat":          now.Unix(),
		"email":        email,
		"phone":        "",
		"role":         "authenticated",
		"session_id":   sessionID.String(),
		"aal":          "aal1",
		"amr":          []map[string]any{{"method": "password", "timestamp": now.Unix()}},
		"is_anonymous": false,
	})
	token.Header["kid"] = i.kid
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
