package jwtverify

import (
	"errors"
	"strings"
	"testing"

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
	}{
		{"issuer", es(claims("iss", "https://elsewhere.supabase.co/auth/v1")),
			[]string{`iss "https://elsewhere.supabase.co/auth/v1"`, `expected issuer "` + testIssuer + `"`}},
		{"audience", es(claims("aud", "anon-ish")), []string{`aud ["anon-ish"]`, `expected audience "authenticated"`}},
		{"no exp", es(claims("exp", nil)), []string{"required claim (exp)"}},
		{"signing key", sign(t, jwt.SigningMethodES256, other, "kid-from-elsewhere", claims()),
			[]string{"signing key is unknown", `kid "kid-from-elsewhere"`, "dev mode signs with .keyhub/dev"}},
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
	}
}
