package jwtverify

import (
	"context"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Key selection: the jwt.Keyfunc that binds a token's alg to the keys that
// may verify it — the shared secret, the static keys of the environment
// (keys.go) and the published JWKS (jwks.go).

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
