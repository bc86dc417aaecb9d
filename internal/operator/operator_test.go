package operator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyhub/keyhub/internal/operator"
)

const secret = "super-secret-jwt-token-with-at-least-32-characters-long"

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serviceRole is a legacy service_role key as Supabase issues it.
func serviceRole(mutate func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"iss": "supabase", "ref": "abcdefgh", "role": "service_role",
		"iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(10 * 365 * 24 * time.Hour).Unix()}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestIsOperator(t *testing.T) {
	t.Parallel()
	token := strings.Repeat("v", 40)
	c := operator.New(operator.Config{JWTSecret: secret, Tokens: []string{"first-token-" + strings.Repeat("x", 30), token}})
	if !c.Configured() {
		t.Fatal("not configured")
	}
	key := []byte(secret)
	for name, tc := range map[string]struct {
		bearer string
		ok     bool
	}{
		"a VERIFY_TOKENS secret":         {token, true},
		"the service_role key":           {sign(t, jwt.SigningMethodHS256, key, serviceRole(nil)), true},
		"empty":                          {"", false},
		"a prefix of a token":            {token[:39], false},
		"a token and more":               {token + "v", false},
		"the anon key":                   {sign(t, jwt.SigningMethodHS256, key, serviceRole(func(c jwt.MapClaims) { c["role"] = "anon" })), false},
		"service_role with a sub":        {sign(t, jwt.SigningMethodHS256, key, serviceRole(func(c jwt.MapClaims) { c["sub"] = "6f1c9d2e-3b7a-4c55-9e0f-8a2d4b6c1e73" })), false},
		"service_role with an aud":       {sign(t, jwt.SigningMethodHS256, key, serviceRole(func(c jwt.MapClaims) { c["aud"] = "authenticated" })), false},
		"service_role of another issuer": {sign(t, jwt.SigningMethodHS256, key, serviceRole(func(c jwt.MapClaims) { c["iss"] = "https://x.supabase.co/auth/v1" })), false},
		"service_role without exp":       {sign(t, jwt.SigningMethodHS256, key, serviceRole(func(c jwt.MapClaims) { delete(c, "exp") })), false},
		"expired service_role":           {sign(t, jwt.SigningMethodHS256, key, serviceRole(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), false},
		"service_role, another secret":   {sign(t, jwt.SigningMethodHS256, []byte(secret+"x"), serviceRole(nil)), false},
		"service_role, HS512":            {sign(t, jwt.SigningMethodHS512, key, serviceRole(nil)), false},
		"an mk_ key":                     {"mk_" + strings.Repeat("A", 43), false},
	} {
		if got := c.IsOperator(tc.bearer); got != tc.ok {
			t.Errorf("%s: IsOperator = %v, want %v", name, got, tc.ok)
		}
	}

	// Without the secret, no JWT is an operator.
	noJWT := operator.New(operator.Config{Tokens: []string{token}})
	if noJWT.IsOperator(sign(t, jwt.SigningMethodHS256, key, serviceRole(nil))) {
		t.Fatal("a service_role key accepted without SUPABASE_JWT_SECRET")
	}
	if operator.New(operator.Config{}).Configured() {
		t.Fatal("an empty config is configured")
	}
}

func BenchmarkIsOperatorToken(b *testing.B) {
	token := strings.Repeat("v", 40)
	c := operator.New(operator.Config{JWTSecret: secret, Tokens: []string{token}})
	b.ReportAllocs()
	for b.Loop() {
		c.IsOperator(token)
	}
}
