package jwtverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// The verifier's side of the JWKS: starting the fetches (remote.go keeps
// the fetched set and its budget), the generation that tells caches the
// set changed, and the checks a published key must pass before it verifies
// anything.

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

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
