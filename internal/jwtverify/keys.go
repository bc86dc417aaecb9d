package jwtverify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/MicahParks/jwkset"
)

// staticKey is a public key from the environment; kid is empty unless it
// came from a JWK that had one.
type staticKey struct {
	kid string
	key any
}

// keyKind is the one kind of key an environment variable may hold.
type keyKind int

const (
	keyKindEC  keyKind = iota // EC P-256, verifies ES256
	keyKindRSA                // RSA >= 2048 bits, verifies RS256
)

func (k keyKind) String() string {
	if k == keyKindEC {
		return "an EC P-256 public key"
	}
	return "an RSA public key"
}

// alg is the only algorithm a key of this kind may verify.
func (k keyKind) alg() string {
	if k == keyKindEC {
		return "ES256"
	}
	return "RS256"
}

// parseStaticKeys reads the public key(s) in value: a JWK, a JWKS, PEM
// block(s) or base64 DER. A pasted private key is accepted with a warning and
// only its public part is kept. Errors name env, never the value.
func parseStaticKeys(value, env string, kind keyKind, log *slog.Logger) ([]staticKey, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	var keys []staticKey
	var hadPrivate bool
	var err error
	switch {
	case strings.HasPrefix(value, "{"):
		keys, hadPrivate, err = parseJWKJSON(value, kind)
	case strings.HasPrefix(value, "-----BEGIN"):
		keys, hadPrivate, err = parsePEM(value, kind)
	default:
		keys, hadPrivate, err = parseBase64DER(value, kind)
	}
	if err != nil {
		return nil, fmt.Errorf("jwtverify: %s: %w", env, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwtverify: %s holds no key", env)
	}
	if hadPrivate {
		// Never log the key itself, not even the public part.
		log.Warn(env+" holds a private key; the private part was dropped and only the public key is used. Remove the private key from this environment.", "env", env)
	}
	return keys, nil
}

// parseJWKJSON reads a single JWK or a JWKS ({"keys": [...]}).
func parseJWKJSON(value string, kind keyKind) ([]staticKey, bool, error) {
	var probe struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(value), &probe); err != nil {
		return nil, false, errors.New("invalid JSON")
	}
	raws := probe.Keys
	if probe.Keys == nil {
		raws = []json.RawMessage{json.RawMessage(value)}
	}
	var keys []staticKey
	var hadPrivate bool
	for i, raw := range raws {
		key, private, err := parseJWK(raw, kind)
		if err != nil {
			return nil, false, fmt.Errorf("JWK %d: %w", i, err)
		}
		hadPrivate = hadPrivate || private
		keys = append(keys, key)
	}
	return keys, hadPrivate, nil
}

// parseJWK reads one JWK, dropping any private member before jwkset sees it.
func parseJWK(raw json.RawMessage, kind keyKind) (staticKey, bool, error) {
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return staticKey{}, false, errors.New("invalid JWK JSON")
	}
	if m.K != "" {
		return staticKey{}, false, errors.New("symmetric (oct) JWK; put a shared secret in SUPABASE_JWT_SECRET")
	}
	if m.ALG != "" && string(m.ALG) != kind.alg() {
		return staticKey{}, false, fmt.Errorf("JWK alg %q, want %s", m.ALG, kind.alg())
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return staticKey{}, false, fmt.Errorf("JWK use %q, want sig", m.USE)
	}
	private := m.D != "" || m.P != "" || m.Q != "" || m.DP != "" || m.DQ != "" || m.QI != "" || len(m.OTH) > 0
	m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH = "", "", "", "", "", "", nil
	// key_ops of a private key ("sign") would make no sense on the public
	// half; they play no part in verification.
	m.KEYOPS = nil
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return staticKey{}, false, fmt.Errorf("invalid JWK: %w", err)
	}
	key, err := checkKind(jwk.Key(), kind)
	if err != nil {
		return staticKey{}, false, err
	}
	return staticKey{kid: m.KID, key: key}, private, nil
}

// parsePEM reads every PEM block in value. Env files often carry PEM with
// literal "\n" sequences instead of newlines; those are accepted too.
func parsePEM(value string, kind keyKind) ([]staticKey, bool, error) {
	if !strings.Contains(value, "\n") && strings.Contains(value, `\n`) {
		value = strings.ReplaceAll(value, `\n`, "\n")
	}
	rest := []byte(value)
	var keys []staticKey
	var hadPrivate bool
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		pub, private, err := parseDER(block.Bytes)
		if err != nil {
			return nil, false, fmt.Errorf("PEM block %q: %w", block.Type, err)
		}
		key, err := checkKind(pub, kind)
		if err != nil {
			return nil, false, err
		}
		hadPrivate = hadPrivate || private
		keys = append(keys, staticKey{key: key})
	}
	if len(keys) == 0 {
		return nil, false, errors.New("invalid PEM")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, false, errors.New("trailing data after PEM")
	}
	return keys, hadPrivate, nil
}

// parseBase64DER reads a DER key in standard or URL base64, padded or not,
// with any whitespace removed.
func parseBase64DER(value string, kind keyKind) ([]staticKey, bool, error) {
	compact := strings.Join(strings.Fields(value), "")
	var der []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err = enc.DecodeString(compact); err == nil {
			break
		}
	}
	if err != nil {
		return nil, false, errors.New("not a JWK, JWKS, PEM or base64 DER key")
	}
	pub, private, err := parseDER(der)
	if err != nil {
		return nil, false, err
	}
	key, err := checkKind(pub, kind)
	if err != nil {
		return nil, false, err
	}
	return []staticKey{{key: key}}, private, nil
}

// parseDER tries the public encodings (SPKI, PKCS#1), then the private ones
// (PKCS#8, SEC 1, PKCS#1), of which only the public key is kept.
func parseDER(der []byte) (pub crypto.PublicKey, private bool, err error) {
	if pub, err := x509.ParsePKIXPublicKey(der); err == nil {
		return pub, false, nil
	}
	if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return pub, false, nil
	}
	if priv, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if signer, ok := priv.(crypto.Signer); ok {
			return signer.Public(), true, nil
		}
	}
	if priv, err := x509.ParseECPrivateKey(der); err == nil {
		return priv.Public(), true, nil
	}
	if priv, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return priv.Public(), true, nil
	}
	return nil, false, errors.New("unrecognized DER key (want SPKI or PKCS#1)")
}

// checkKind makes sure key is the public key kind the variable is for.
func checkKind(key any, kind keyKind) (any, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if kind == keyKindEC && k.Curve == elliptic.P256() {
			return k, nil
		}
	case *rsa.PublicKey:
		if kind == keyKindRSA {
			if k.N.BitLen() < minRSABits {
				return nil, fmt.Errorf("RSA key of %d bits, want at least %d", k.N.BitLen(), minRSABits)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("want %s, got %s", kind, describeKey(key))
}

// describeKey names a key's type for an error message without its material.
func describeKey(key any) string {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return "an EC key on " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return "an RSA key"
	default:
		return fmt.Sprintf("a %T key", key)
	}
}
