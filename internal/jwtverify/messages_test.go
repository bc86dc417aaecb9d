package jwtverify

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// A refused token's error says which check failed ("token claims are
// invalid" used to cover a wrong iss, a wrong aud and a missing exp alike).
func TestErrorsSayWhichCheckFailed(t *testing.T) {
	k := loadTestKeys()
	// A key with a kid, as dev mode's and Supabase's are.
	ecJWKS := string(jwksJSON(t, jwkOf(t, &k.ec.PublicKey, "static-ec", "ES256", false)))
	v := newVerifier(t, Config{ES256PublicKey: ecJWKS, Issuer: testIssuer, UnknownKeyHint: "dev mode signs with .keyhub/dev"})
	es := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodES256, k.ec, "static-ec", c) }
	other := mustECKey(t, k.ec.Curve)
	for _, tc := range []struct {
		name, token string
		want        []string
		reason      string
	}{
		{"issuer", es(claims("iss", "https://elsewhere.supabase.co/auth/v1")),
			[]string{`iss "https://elsewhere.supabase.co/auth/v1"`, `expected issuer "` + testIssuer + `"`}, "wrong_issuer"},
		{"audience", es(claims("aud", "anon-ish")), []string{`aud ["anon-ish"]`, `expected audience "authenticated"`}, "wrong_audience"},
		{"no exp", es(claims("exp", nil)), []string{"required claim (exp)"}, "missing_claim"},
		// Each missing claim is named (a missing iss or aud used to be
		// reported as a missing exp).
		{"no iss", es(claims("iss", nil)), []string{"required claim (iss)"}, "missing_claim"},
		{"no aud", es(claims("aud", nil)), []string{"required claim (aud)"}, "missing_claim"},
		{"empty aud", es(claims("aud", []string{})), []string{"required claim (aud)"}, "missing_claim"},
		{"no iss, aud, exp", es(claims("iss", nil, "aud", nil, "exp", nil)), []string{"required claims (iss, aud, exp)"}, "missing_claim"},
		{"no sub", es(claims("sub", nil)), []string{"required claim (sub)"}, "missing_claim"},
		{"no role", es(claims("role", nil)), []string{"required claim (role)"}, "missing_claim"},
		{"custom role", es(claims("role", "admin")), []string{`role "admin" is not accepted`}, "wrong_role"},
		{"signing key", sign(t, jwt.SigningMethodES256, other, "kid-from-elsewhere", claims()),
			[]string{"signing key is unknown", `kid "kid-from-elsewhere"`, "dev mode signs with .keyhub/dev"}, "unknown_kid"},
		{"forged signature", sign(t, jwt.SigningMethodES256, other, "static-ec", claims()), []string{"signature is invalid"}, "bad_signature"},
		{"HS256 without a secret", sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", claims()), []string{`alg "HS256" is not accepted`}, "alg_not_accepted"},
		{"not a JWT", "not-a-jwt", []string{"malformed"}, "malformed"},
		{"nbf", es(claims("nbf", time.Now().Add(time.Hour).Unix())), []string{"nbf"}, "not_yet_valid"},
		{"iat", es(claims("iat", time.Now().Add(time.Hour).Unix())), []string{"iat"}, "issued_in_future"},
	} {
		_, err := v.Verify(t.Context(), tc.token)
		if keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
			t.Errorf("%s: %v, want INVALID_TOKEN", tc.name, err)
			continue
		}
		var kerr *keyhub.Error
		if !errors.As(err, &kerr) {
			t.Fatalf("%s: not a keyhub error: %v", tc.name, err)
		}
		for _, want := range tc.want {
			if !strings.Contains(kerr.Message, want) {
				t.Errorf("%s: message %q lacks %q", tc.name, kerr.Message, want)
			}
		}
		if kerr.Reason != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.name, kerr.Reason, tc.reason)
		}
	}
}
