// Package eckey keeps keyhub's own ES256 signing keys: it reads a P-256
// private key from a PEM or JWK file, creates one on disk when missing
// (dev mode), and publishes the public half as a JWKS whose kid is the
// key's RFC 7638 thumbprint, so the same key has the same kid on every
// process and after every restart. The dev issuer and the gateway's
// identity signer both use it.
package eckey

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

	"github.com/MicahParks/jwkset"
)

// Load reads a P-256 private key from path: PEM (PKCS#8 "PRIVATE KEY" or
// SEC 1 "EC PRIVATE KEY") or a JWK ({"kty":"EC","crv":"P-256","d":...}).
// Errors name the file, never its contents.
func Load(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	key, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// Parse reads a P-256 private key from PEM or JWK bytes.
func Parse(data []byte) (*ecdsa.PrivateKey, error) {
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "{") {
		return parseJWK([]byte(text))
	}
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("neither PEM nor a JWK")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("more than one PEM block: want exactly the private key")
	}
	var parsed any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("a %q PEM block, want a private key", block.Type)
	}
	if err != nil {
		return nil, errors.New("unreadable private key")
	}
	return p256(parsed)
}

func parseJWK(raw []byte) (*ecdsa.PrivateKey, error) {
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("invalid JWK JSON")
	}
	if m.D == "" {
		return nil, errors.New("the JWK has no private part (d)")
	}
	if m.ALG != "" && m.ALG != jwkset.AlgES256 {
		return nil, fmt.Errorf("JWK alg %q, want ES256", m.ALG)
	}
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
	if err != nil {
		return nil, errors.New("invalid JWK")
	}
	return p256(jwk.Key())
}

func p256(parsed any) (*ecdsa.PrivateKey, error) {
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("not an EC P-256 private key (ES256 needs one)")
	}
	return key, nil
}

// LoadOrCreate loads the key at dir/file, creating dir (0700) and the key
// (0600, PKCS#8 PEM) on first use. Two processes starting at once end up
// with the same key: it is written to a temporary file and hard-linked
// into place, never overwriting one, so a reader never sees half a file.
func LoadOrCreate(dir, file string) (*ecdsa.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key dir: %w", err)
	}
	path := filepath.Join(dir, file)
	key, err := Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = create(dir, path, file)
	}
	return key, err
}

func create(dir, path, file string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, file+".tmp*") // created 0600
	if err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, fmt.Errorf("write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Load(path) // another process won the race
		}
		return nil, fmt.Errorf("write key: %w", err)
	}
	return key, nil
}

// Public is the public half of a signing key as verifiers see it.
type Public struct {
	// KeyID is the RFC 7638 thumbprint of the public key (base64url).
	KeyID string
	// JWKS is {"keys":[{kty:EC,crv:P-256,x,y,kid,alg:ES256,use:sig}]}.
	JWKS []byte
}

// PublicOf derives the kid and the JWKS of key.
func PublicOf(key *ecdsa.PrivateKey) (Public, error) {
	point, err := key.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each on P-256
	if err != nil {
		return Public{}, fmt.Errorf("encode public key: %w", err)
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
		return Public{}, fmt.Errorf("encode JWKS: %w", err)
	}
	return Public{KeyID: kid, JWKS: jwks}, nil
}

// Handler serves the JWKS as application/json to GET and HEAD. Verifiers
// may cache it for five minutes.
func (p Public) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(p.JWKS)
	})
}
