package jwtverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// TestVerify covers one token per row against the configuration it names.
// want "" means the token must verify.
func TestVerify(t *testing.T) {
	k := loadTestKeys()
	srv := newJWKSServer(t, defaultJWKS(t))

	ecPEM := pemOf("PUBLIC KEY", spkiDER(t, &k.ec.PublicKey))
	rsaPEM := pemOf("PUBLIC KEY", spkiDER(t, &k.rsa.PublicKey))
	rsaPKCS1PEM := pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey))
	ecJWK := mustJSON(t, jwkOf(t, &k.ec.PublicKey, "static-ec", jwkset.AlgES256, false))
	ecJWKNoKID := mustJSON(t, jwkOf(t, &k.ec.PublicKey, "", "", false))
	rsaJWK := mustJSON(t, jwkOf(t, &k.rsa.PublicKey, "static-rsa", jwkset.AlgRS256, false))

	cfgJWKS := Config{JWKSURL: srv.URL, Issuer: testIssuer}
	cfgRSAOnly := Config{RSAPublicKey: rsaPEM, Issuer: testIssuer}
	cfgRSAAndHS := Config{RSAPublicKey: rsaPEM, HS256Secret: testSecret, Issuer: testIssuer}
	cfgJWKSAndHS := Config{JWKSURL: srv.URL, HS256Secret: testSecret, Issuer: testIssuer}
	cfgHS := Config{HS256Secret: testSecret, Issuer: testIssuer}
	cfgAll := Config{JWKSURL: srv.URL, ES256PublicKey: ecPEM, RSAPublicKey: rsaPEM, HS256Secret: testSecret, Issuer: testIssuer}

	es := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodES256, k.ec, kidEC, c) }
	rs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, k.rsa, kidRSA, c) }
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c) }
	past := time.Now().Add(-time.Hour).Unix()

	// Confusion attack: HS256 "signed" with the RSA public key as the
	// secret, as a verifier that hands its public key to HMAC would accept.
	hsWithRSAPEM := sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), "", claims())
	hsWithRSADER := sign(t, jwt.SigningMethodHS256, spkiDER(t, &k.rsa.PublicKey), "", claims())
	hsWithRSAPEMKid := sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), kidRSA, claims())
	hsWithECPEM := sign(t, jwt.SigningMethodHS256, []byte(ecPEM), kidEC, claims())

	noneToken := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims())
	noneTokenKid := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kidEC, claims())

	// Tampered: a valid token whose payload is swapped for another user's.
	valid := es(claims())
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(es(claims("sub", uuid.NewString())), ".")[1]
	tampered := parts[0] + "." + otherPayload + "." + parts[2]
	// Tampered header: alg changed from ES256 to RS256.
	tamperedHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"ec-1","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]

	longToken := es(claims("padding", strings.Repeat("x", MaxTokenLength)))

	critToken := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims())
		tok.Header["kid"] = kidEC
		tok.Header["crit"] = []string{"exp"}
		s, err := tok.SignedString(k.ec)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()

	tests := []struct {
		name  string
		cfg   Config
		token string
		want  keyhub.Code
	}{
		// Valid tokens, from each key source and format.
		{"ES256 via JWKS", cfgJWKS, es(claims()), ""},
		{"ES256 via JWKS without kid", cfgJWKS, sign(t, jwt.SigningMethodES256, k.ec, "", claims()), ""},
		{"ES256 static JWK", Config{ES256PublicKey: ecJWK, Issuer: testIssuer}, sign(t, jwt.SigningMethodES256, k.ec, "static-ec", claims()), ""},
		{"ES256 static JWK without kid", Config{ES256PublicKey: ecJWKNoKID, Issuer: testIssuer}, es(claims()), ""},
		{"ES256 static JWKS", Config{ES256PublicKey: `{"keys":[` + ecJWK + `]}`, Issuer: testIssuer}, sign(t, jwt.SigningMethodES256, k.ec, "static-ec", claims()), ""},
		{"ES256 static PEM", Config{ES256PublicKey: ecPEM, Issuer: testIssuer}, es(claims()), ""},
		{"ES256 static PEM with escaped newlines", Config{ES256PublicKey: strings.ReplaceAll(ecPEM, "\n", `\n`), Issuer: testIssuer}, es(claims()), ""},
		{"ES256 static base64 DER", Config{ES256PublicKey: b64(spkiDER(t, &k.ec.PublicKey)), Issuer: testIssuer}, es(claims()), ""},
		{"ES256 static and JWKS both", Config{JWKSURL: srv.URL, ES256PublicKey: ecJWK, Issuer: testIssuer}, es(claims()), ""},
		{"RS256 via JWKS", cfgJWKS, rs(claims()), ""},
		{"RS256 static PEM", cfgRSAOnly, rs(claims()), ""},
		{"RS256 static PKCS1 PEM", Config{RSAPublicKey: rsaPKCS1PEM, Issuer: testIssuer}, rs(claims()), ""},
		{"RS256 static base64 DER", Config{RSAPublicKey: b64(spkiDER(t, &k.rsa.PublicKey)), Issuer: testIssuer}, rs(claims()), ""},
		{"RS256 static JWK", Config{RSAPublicKey: rsaJWK, Issuer: testIssuer}, sign(t, jwt.SigningMethodRS256, k.rsa, "static-rsa", claims()), ""},
		{"HS256 shared secret", cfgHS, hs(claims()), ""},
		{"HS256 with kid", cfgHS, sign(t, jwt.SigningMethodHS256, []byte(testSecret), "some-kid", claims()), ""},
		{"all sources configured", cfgAll, es(claims()), ""},
		{"aud as array", cfgJWKS, es(claims("aud", []string{"authenticated"})), ""},
		{"expired within leeway", Config{JWKSURL: srv.URL, Issuer: testIssuer, Leeway: 30 * time.Second}, es(claims("exp", time.Now().Add(-10*time.Second).Unix())), ""},
		{"no issuer configured", Config{JWKSURL: srv.URL}, es(claims("iss", "anything")), ""},
		{"anonymous sign-in is a user", cfgJWKS, es(claims("is_anonymous", true)), ""},

		// alg none never passes.
		{"alg none", cfgAll, noneToken, keyhub.CodeInvalidToken},
		{"alg none with kid", cfgAll, noneTokenKid, keyhub.CodeInvalidToken},

		// Algorithm confusion.
		{"HS256 with RSA PEM as secret, RSA only", cfgRSAOnly, hsWithRSAPEM, keyhub.CodeInvalidToken},
		{"HS256 with RSA DER as secret, RSA only", cfgRSAOnly, hsWithRSADER, keyhub.CodeInvalidToken},
		{"HS256 with RSA PEM as secret, RSA and HS", cfgRSAAndHS, hsWithRSAPEM, keyhub.CodeInvalidToken},
		{"HS256 with RSA DER as secret, RSA and HS", cfgRSAAndHS, hsWithRSADER, keyhub.CodeInvalidToken},
		{"HS256 with RSA PEM as secret, JWKS only", cfgJWKS, hsWithRSAPEMKid, keyhub.CodeInvalidToken},
		{"HS256 with RSA PEM as secret, JWKS and HS", cfgJWKSAndHS, hsWithRSAPEMKid, keyhub.CodeInvalidToken},
		{"HS256 with EC PEM as secret, all", cfgAll, hsWithECPEM, keyhub.CodeInvalidToken},
		{"ES256 token naming the RSA kid", cfgJWKS, sign(t, jwt.SigningMethodES256, k.ec, kidRSA, claims()), keyhub.CodeInvalidToken},
		{"RS256 token naming the EC kid", cfgJWKS, sign(t, jwt.SigningMethodRS256, k.rsa, kidEC, claims()), keyhub.CodeInvalidToken},
		{"RS256 token with only an EC key", Config{ES256PublicKey: ecPEM, Issuer: testIssuer}, rs(claims()), keyhub.CodeInvalidToken},
		{"ES256 token with only an HS secret", cfgHS, es(claims()), keyhub.CodeInvalidToken},
		{"HS256 token with another secret", cfgHS, sign(t, jwt.SigningMethodHS256, []byte(testSecret+"x"), "", claims()), keyhub.CodeInvalidToken},
		{"ES384 not allowed", cfgJWKS, sign(t, jwt.SigningMethodES384, mustECKey(t, elliptic.P384()), kidEC, claims()), keyhub.CodeInvalidToken},

		// Claims.
		{"wrong aud", cfgJWKS, es(claims("aud", "someone-else")), keyhub.CodeInvalidToken},
		{"missing aud", cfgJWKS, es(claims("aud", nil)), keyhub.CodeInvalidToken},
		{"wrong iss", cfgJWKS, es(claims("iss", "https://evil.example/auth/v1")), keyhub.CodeInvalidToken},
		{"missing iss", cfgJWKS, es(claims("iss", nil)), keyhub.CodeInvalidToken},
		{"missing exp", cfgJWKS, es(claims("exp", nil)), keyhub.CodeInvalidToken},
		{"not valid yet", cfgJWKS, es(claims("nbf", time.Now().Add(time.Hour).Unix())), keyhub.CodeInvalidToken},
		{"issued in the future", cfgJWKS, es(claims("iat", time.Now().Add(time.Hour).Unix())), keyhub.CodeInvalidToken},
		{"missing sub", cfgJWKS, es(claims("sub", nil)), keyhub.CodeInvalidToken},
		{"non-uuid sub", cfgJWKS, es(claims("sub", "user-42")), keyhub.CodeInvalidToken},
		{"urn uuid sub", cfgJWKS, es(claims("sub", "urn:uuid:"+testSub)), keyhub.CodeInvalidToken},
		{"nil uuid sub", cfgJWKS, es(claims("sub", uuid.Nil.String())), keyhub.CodeInvalidToken},
		{"missing role", cfgJWKS, es(claims("role", nil)), keyhub.CodeInvalidToken},
		{"other role", cfgJWKS, es(claims("role", "supabase_admin")), keyhub.CodeInvalidToken},
		{"exp of wrong type", cfgJWKS, es(claims("exp", "tomorrow")), keyhub.CodeInvalidToken},

		// Expiry only counts when the signature is ours.
		{"expired ES256", cfgJWKS, es(claims("exp", past)), keyhub.CodeExpiredToken},
		{"expired RS256", cfgJWKS, rs(claims("exp", past)), keyhub.CodeExpiredToken},
		{"expired HS256", cfgHS, hs(claims("exp", past)), keyhub.CodeExpiredToken},
		{"expired with bad signature", cfgJWKS, sign(t, jwt.SigningMethodES256, k.ecOther, kidEC, claims("exp", past)), keyhub.CodeInvalidToken},
		{"expired with bad HS signature", cfgHS, sign(t, jwt.SigningMethodHS256, []byte("wrong-secret-wrong-secret-wrong-secret"), "", claims("exp", past)), keyhub.CodeInvalidToken},
		{"expired and wrong aud", cfgJWKS, es(claims("exp", past, "aud", "other")), keyhub.CodeInvalidToken},

		// Keys.
		{"unknown kid", cfgJWKS, sign(t, jwt.SigningMethodES256, k.ec, "no-such-kid", claims()), keyhub.CodeInvalidToken},
		{"static JWK kid mismatch", Config{ES256PublicKey: ecJWK, Issuer: testIssuer}, sign(t, jwt.SigningMethodES256, k.ec, "other-kid", claims()), keyhub.CodeInvalidToken},
		{"signed by an untrusted key", cfgJWKS, sign(t, jwt.SigningMethodES256, k.ecOther, kidEC, claims()), keyhub.CodeInvalidToken},
		{"untrusted key without kid", cfgAll, sign(t, jwt.SigningMethodES256, k.ecOther, "", claims()), keyhub.CodeInvalidToken},
		{"kid not a string", cfgJWKS, signWithHeader(t, k.ec, "kid", 42), keyhub.CodeInvalidToken},
		{"crit header", cfgJWKS, critToken, keyhub.CodeInvalidToken},

		// Shape.
		{"tampered payload", cfgJWKS, tampered, keyhub.CodeInvalidToken},
		{"tampered header", cfgJWKS, tamperedHeader, keyhub.CodeInvalidToken},
		{"signature stripped", cfgJWKS, parts[0] + "." + parts[1] + ".", keyhub.CodeInvalidToken},
		{"over-long token", cfgJWKS, longToken, keyhub.CodeInvalidToken},
		{"empty token", cfgJWKS, "", keyhub.CodeInvalidToken},
		{"garbage", cfgJWKS, "not-a-jwt", keyhub.CodeInvalidToken},
		{"dots", cfgJWKS, "a.b.c", keyhub.CodeInvalidToken},
		{"many dots", cfgJWKS, strings.Repeat(".", 4000), keyhub.CodeInvalidToken},

		// Validly signed, but not a user session.
		{"anon role", cfgJWKS, es(claims("role", "anon")), keyhub.CodeNotUserSession},
		{"service_role", cfgJWKS, es(claims("role", "service_role")), keyhub.CodeNotUserSession},
		{"anon aud", cfgJWKS, es(claims("aud", "anon")), keyhub.CodeNotUserSession},
		{"supabase anon key shape", cfgHS, hs(jwt.MapClaims{"iss": "supabase", "ref": "project", "role": "anon", "iat": time.Now().Unix(), "exp": time.Now().Add(24 * 365 * time.Hour).Unix()}), keyhub.CodeNotUserSession},
		{"supabase service key shape", cfgHS, hs(jwt.MapClaims{"iss": "supabase", "ref": "project", "role": "service_role", "iat": time.Now().Unix(), "exp": time.Now().Add(24 * 365 * time.Hour).Unix()}), keyhub.CodeNotUserSession},
		{"anon role with bad signature", cfgJWKS, sign(t, jwt.SigningMethodES256, k.ecOther, kidEC, claims("role", "anon")), keyhub.CodeInvalidToken},

		// Nothing configured.
		{"no config", Config{}, es(claims()), keyhub.CodeAuthNotConfigured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newVerifier(t, tt.cfg)
			got, err := v.Verify(t.Context(), tt.token)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.Subject.String() != testSub || got.Role != "authenticated" || got.Email != "ada@example.com" || got.SessionID == "" {
					t.Errorf("claims = %+v", got)
				}
				if d := time.Until(got.ExpiresAt); d > time.Hour || d < -time.Minute {
					t.Errorf("ExpiresAt = %v", got.ExpiresAt)
				}
				return
			}
			t.Logf("err: %v", err)
			var kerr *keyhub.Error
			if !errors.As(err, &kerr) {
				t.Fatalf("err = %v (%T), want *keyhub.Error %s", err, err, tt.want)
			}
			if kerr.Code != tt.want {
				t.Fatalf("code = %s, want %s (err: %v)", kerr.Code, tt.want, err)
			}
			if got != (Claims{}) {
				t.Errorf("claims returned with an error: %+v", got)
			}
			if tt.token != "" && len(tt.token) > 8 && (strings.Contains(kerr.Message, tt.token) || strings.Contains(err.Error(), tt.token)) {
				t.Errorf("error text contains the token")
			}
		})
	}
}

func mustECKey(t testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// signWithHeader signs a valid ES256 token with one extra header field.
func signWithHeader(t testing.TB, key *ecdsa.PrivateKey, name string, value any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims())
	tok.Header[name] = value
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewRejectsMalformedStaticKeys(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	ecPEM := pemOf("PUBLIC KEY", spkiDER(t, &k.ec.PublicKey))
	rsaPEM := pemOf("PUBLIC KEY", spkiDER(t, &k.rsa.PublicKey))
	p384 := pemOf("PUBLIC KEY", spkiDER(t, &mustECKey(t, elliptic.P384()).PublicKey))
	tests := []struct {
		name, env string
		cfg       Config
	}{
		{"EC garbage", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: "not a key!"}},
		{"EC bad JSON", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: `{"kty":`}},
		{"EC empty JWKS", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: `{"keys":[]}`}},
		{"EC broken PEM", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}},
		{"EC var holds RSA", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: rsaPEM}},
		{"EC var holds P-384", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: p384}},
		{"EC JWK with RS256 alg", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: mustJSON(t, jwkOf(t, &k.ec.PublicKey, "x", jwkset.AlgRS256, false))}},
		{"EC var holds oct JWK", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: `{"kty":"oct","k":"c2VjcmV0"}`}},
		{"EC JWK off curve", "SUPABASE_JWT_PUBLIC_KEY", Config{ES256PublicKey: `{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}`}},
		{"RSA garbage", "SUPABASE_JWT_RSA_PUBLIC_KEY", Config{RSAPublicKey: "%%%"}},
		{"RSA var holds EC", "SUPABASE_JWT_RSA_PUBLIC_KEY", Config{RSAPublicKey: ecPEM}},
		{"RSA var holds EC DER", "SUPABASE_JWT_RSA_PUBLIC_KEY", Config{RSAPublicKey: b64(spkiDER(t, &k.ec.PublicKey))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(t.Context(), tt.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.env) {
				t.Errorf("error %q does not name %s", err, tt.env)
			}
			for _, value := range []string{tt.cfg.ES256PublicKey, tt.cfg.RSAPublicKey} {
				if len(value) > 8 && strings.Contains(err.Error(), value) {
					t.Errorf("error %q contains the key", err)
				}
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{JWKSURL: "ftp://example.com/jwks.json"},
		{JWKSURL: "not a url"},
		{HS256Secret: testSecret, Leeway: -time.Second},
	} {
		if _, err := New(t.Context(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestConfigured(t *testing.T) {
	t.Parallel()
	if newVerifier(t, Config{}).Configured() {
		t.Error("empty config is configured")
	}
	if !newVerifier(t, Config{HS256Secret: testSecret}).Configured() {
		t.Error("HS256 secret is not configured")
	}
}

// A private JWK pasted as the static key works; only its public half is
// kept, a warning is logged, and the key material never reaches the log.
func TestPrivateKeyPastedAsStaticKey(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	ecPrivJWK := jwkOf(t, k.ec, "pasted", jwkset.AlgES256, true)
	if ecPrivJWK.D == "" {
		t.Fatal("test JWK has no private part")
	}
	rsaPrivJWK := jwkOf(t, k.rsa, "pasted-rsa", jwkset.AlgRS256, true)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cfg    Config
		token  string
		secret []string
	}{
		{"EC JWK", Config{ES256PublicKey: mustJSON(t, ecPrivJWK)}, sign(t, jwt.SigningMethodES256, k.ec, "pasted", claims()), []string{ecPrivJWK.D}},
		{"RSA JWK in a JWKS", Config{RSAPublicKey: `{"keys":[` + mustJSON(t, rsaPrivJWK) + `]}`}, sign(t, jwt.SigningMethodRS256, k.rsa, "pasted-rsa", claims()), []string{rsaPrivJWK.D, rsaPrivJWK.P, rsaPrivJWK.Q}},
		{"EC PKCS8 PEM", Config{ES256PublicKey: pemOf("PRIVATE KEY", pkcs8)}, sign(t, jwt.SigningMethodES256, k.ec, "", claims()), []string{b64(pkcs8)[:40]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs logBuffer
			cfg := tt.cfg
			cfg.Issuer, cfg.Logger = testIssuer, logs.logger()
			v := newVerifier(t, cfg)
			if _, err := v.Verify(t.Context(), tt.token); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			for _, sk := range append(v.ecKeys, v.rsaKeys...) {
				switch sk.key.(type) {
				case *ecdsa.PublicKey, *rsa.PublicKey:
				default:
					t.Errorf("kept key is a %T, want a public key", sk.key)
				}
			}
			out := logs.String()
			if !strings.Contains(out, "private") || !strings.Contains(out, "level=WARN") {
				t.Errorf("no warning about the private key; log: %s", out)
			}
			for _, s := range tt.secret {
				if strings.Contains(out, s) {
					t.Errorf("log contains key material")
				}
			}
		})
	}
}

// The service must start while the JWKS endpoint is down (in dev mode it is
// served by the process being started); keys come with the first unknown
// kid once it is up.
func TestJWKSUnreachableAtStart(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	// Reserve an address, then free it: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	var logs logBuffer
	start := time.Now()
	v := newVerifier(t, Config{JWKSURL: "http://" + addr + "/auth/v1/.well-known/jwks.json", Issuer: testIssuer, Logger: logs.logger()})
	if time.Since(start) > 3*time.Second {
		t.Errorf("New blocked for %v", time.Since(start))
	}
	if !v.Configured() {
		t.Fatal("not configured")
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning logged: %s", logs.String())
	}
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, k.ec, kidEC, claims()))
	if keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
		t.Fatalf("Verify with no keys: %v, want INVALID_TOKEN", err)
	}
}

// 100 concurrent tokens with an unknown kid cost the JWKS server at most one
// extra fetch, and good tokens keep working.
func TestUnknownKIDBurst(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	srv := newJWKSServer(t, defaultJWKS(t))
	v := newVerifier(t, Config{JWKSURL: srv.URL, Issuer: testIssuer})
	before := srv.fetches.Load()
	if before != 1 {
		t.Fatalf("fetches at start = %d, want 1", before)
	}

	bad := sign(t, jwt.SigningMethodES256, k.ec, "rotated-away", claims())
	var wg sync.WaitGroup
	codes := make([]keyhub.Code, 100)
	start := time.Now()
	for i := range codes {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), bad)
			codes[i] = keyhub.ErrorCode(err)
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != keyhub.CodeInvalidToken {
			t.Fatalf("request %d: code %s, want INVALID_TOKEN", i, c)
		}
	}
	if extra := srv.fetches.Load() - before; extra > 1 {
		t.Errorf("burst caused %d JWKS fetches, want at most 1", extra)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("burst took %v: requests waited on the rate limiter", d)
	}
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, k.ec, kidEC, claims())); err != nil {
		t.Errorf("good token after burst: %v", err)
	}
}

// A key published after start (rotation) is picked up on its first token
// once the fetch budget allows (30 s after the last fetch), and refused
// without a fetch before that.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	clock := newFakeClock()
	srv := newJWKSServer(t, defaultJWKS(t))
	v := newVerifier(t, Config{JWKSURL: srv.URL, Issuer: testIssuer, Now: clock.Now})

	next := mustECKey(t, elliptic.P256())
	srv.publish(rotatedJWKS(t, next))
	rotated := sign(t, jwt.SigningMethodES256, next, "ec-2", claims())
	clock.Advance(jwksMinFetchInterval - time.Second)
	fetches := srv.fetches.Load()
	if _, err := v.Verify(t.Context(), rotated); keyhub.ErrorCode(err) != keyhub.CodeInvalidToken || reasonOf(err) != "unknown_kid_throttled" {
		t.Fatalf("token of the new key 29s after the last fetch: %v (reason %q), want INVALID_TOKEN, unknown_kid_throttled", err, reasonOf(err))
	}
	if srv.fetches.Load() != fetches {
		t.Fatal("fetched within 30s of the last fetch")
	}
	clock.Advance(time.Second)
	if _, err := v.Verify(t.Context(), rotated); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, k.ec, kidEC, claims())); err != nil {
		t.Fatalf("token of the old key: %v", err)
	}
}

// A failing JWKS endpoint keeps the last good keys, and never lets a token
// through that the keys do not verify.
func TestJWKSKeepsLastGoodKeys(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	srv := newJWKSServer(t, defaultJWKS(t))
	var logs logBuffer
	clock := newFakeClock()
	v := newVerifier(t, Config{JWKSURL: srv.URL, Issuer: testIssuer, Logger: logs.logger(), Now: clock.Now})

	srv.fail.Store(true)
	clock.Advance(jwksMinFetchInterval)
	before := srv.fetches.Load()
	// An unknown kid forces a refresh, which fails.
	_, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, k.ec, "unknown", claims()))
	if keyhub.ErrorCode(err) != keyhub.CodeInvalidToken || reasonOf(err) != "jwks_unavailable" {
		t.Fatalf("unknown kid: %v (reason %q), want INVALID_TOKEN, jwks_unavailable", err, reasonOf(err))
	}
	if srv.fetches.Load() == before {
		t.Fatal("no refresh attempted")
	}
	if !strings.Contains(logs.String(), "JWKS refresh failed") {
		t.Errorf("refresh failure not logged: %s", logs.String())
	}
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, k.ec, kidEC, claims())); err != nil {
		t.Fatalf("good token while JWKS is down: %v", err)
	}
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, k.ecOther, kidEC, claims()))
	if keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
		t.Fatalf("forged token while JWKS is down: %v", err)
	}
}

// An "oct" key in the remote JWKS must never verify an HS256 token, even
// when a shared secret is configured too.
func TestJWKSOctKeyIgnored(t *testing.T) {
	t.Parallel()
	octSecret := []byte("a-symmetric-key-someone-published-in-jwks")
	oct := jwkset.JWKMarshal{KTY: jwkset.KtyOct, KID: "oct-1", K: base64.RawURLEncoding.EncodeToString(octSecret)}
	srv := newJWKSServer(t, jwksJSON(t, oct))
	for _, cfg := range []Config{
		{JWKSURL: srv.URL, Issuer: testIssuer},
		{JWKSURL: srv.URL, HS256Secret: testSecret, Issuer: testIssuer},
	} {
		v := newVerifier(t, cfg)
		for _, kid := range []string{"oct-1", ""} {
			_, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, octSecret, kid, claims()))
			if keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
				t.Errorf("HS256 with JWKS oct key (kid %q, secret %t): %v", kid, cfg.HS256Secret != "", err)
			}
		}
	}
}

// Stopping the context given to New is enough to stop the refresh
// goroutine; Verify keeps working on the keys it has.
func TestVerifyAfterContextCancel(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	srv := newJWKSServer(t, defaultJWKS(t))
	ctx, cancel := context.WithCancel(t.Context())
	v, err := New(ctx, Config{JWKSURL: srv.URL, Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, k.ec, kidEC, claims())); err != nil {
		t.Fatalf("Verify after cancel: %v", err)
	}
}

// KeySetGeneration moves when a refresh changes the key set, after the new
// set is in place, and stays put when a refresh finds the same keys.
func TestKeySetGeneration(t *testing.T) {
	t.Parallel()
	k := loadTestKeys()
	t.Run("same keys", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t, defaultJWKS(t))
		clock := newFakeClock()
		v := newVerifier(t, Config{JWKSURL: srv.URL, Issuer: testIssuer, Now: clock.Now})
		clock.Advance(jwksMinFetchInterval)
		before, fetches := v.KeySetGeneration(), srv.fetches.Load()
		// An unknown kid forces a refresh, which finds the same set.
		if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, k.ec, "unknown", claims())); err == nil {
			t.Fatal("unknown kid accepted")
		}
		if srv.fetches.Load() == fetches {
			t.Fatal("no refresh happened")
		}
		if got := v.KeySetGeneration(); got != before {
			t.Fatalf("generation moved from %d to %d on an unchanged key set", before, got)
		}
	})
	t.Run("key removed", func(t *testing.T) {
		t.Parallel()
		srv := newJWKSServer(t, defaultJWKS(t))
		clock := newFakeClock()
		v := newVerifier(t, Config{JWKSURL: srv.URL, Issuer: testIssuer, Now: clock.Now})
		clock.Advance(jwksMinFetchInterval)
		old := sign(t, jwt.SigningMethodES256, k.ec, kidEC, claims())
		if _, err := v.Verify(t.Context(), old); err != nil {
			t.Fatal(err)
		}
		before := v.KeySetGeneration()
		next := mustECKey(t, elliptic.P256())
		srv.publish(jwksJSON(t, jwkOf(t, &next.PublicKey, "ec-2", jwkset.AlgES256, false)))
		if _, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodES256, next, "ec-2", claims())); err != nil {
			t.Fatalf("token of the new key: %v", err)
		}
		if v.KeySetGeneration() == before {
			t.Fatal("generation did not move when a key was removed")
		}
		if _, err := v.Verify(t.Context(), old); keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
			t.Fatalf("token of the removed key: %v", err)
		}
	})
	t.Run("static keys only", func(t *testing.T) {
		t.Parallel()
		v := newVerifier(t, Config{HS256Secret: testSecret, Issuer: testIssuer})
		if g := v.KeySetGeneration(); g != 0 {
			t.Fatalf("generation %d without a JWKS", g)
		}
	})
}
