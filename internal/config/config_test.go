package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/keyhub"
)

func load(vars map[string]string) (config.Config, error) {
	return config.Load(func(name string) string { return vars[name] })
}

const db = "postgres://u@localhost:5432/keyhub"

func TestDefaults(t *testing.T) {
	c, err := load(map[string]string{"DATABASE_URL": db})
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != ":8080" || c.KeyCacheTTL != 5*time.Minute || c.JWTAudience != "authenticated" || c.WSAuthTimeout != 10*time.Second || c.Dev {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestSupabaseDerivesJWKSAndIssuer(t *testing.T) {
	c, err := load(map[string]string{"DATABASE_URL": db, "SUPABASE_URL": "https://abcd.supabase.co/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.JWKSURL != "https://abcd.supabase.co/auth/v1/.well-known/jwks.json" || c.JWTIssuer != "https://abcd.supabase.co/auth/v1" {
		t.Fatalf("%s %s", c.JWKSURL, c.JWTIssuer)
	}
}

func TestDevMode(t *testing.T) {
	c, err := load(map[string]string{"DATABASE_URL": db, "KEYHUB_DEV": "1", "LISTEN_ADDR": ":9000"})
	if err != nil {
		t.Fatal(err)
	}
	if c.JWTIssuer != config.DevIssuer || c.JWKSURL != "http://localhost:9000/auth/v1/.well-known/jwks.json" {
		t.Fatalf("%s %s", c.JWTIssuer, c.JWKSURL)
	}
}

// Rate limits: tier overrides are read per tier; the rest keep the tier table.
func TestRateLimitSettings(t *testing.T) {
	c, err := load(map[string]string{"DATABASE_URL": db, "RATE_LIMIT_TIER_RPM": " pro=1000 , free=30", "REDIS_URL": "redis://cache:6379/0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.RateLimitTierRPM) != 2 || c.RateLimitTierRPM["pro"] != 1000 || c.RateLimitTierRPM["free"] != 30 || c.RedisURL != "redis://cache:6379/0" {
		t.Fatalf("%v %q", c.RateLimitTierRPM, c.RedisURL)
	}
	if c.AuthFailureRate != 20 || c.AuthFailureBurst != 10 || c.WSPendingPerIP != 16 || c.WSPendingMax != 1024 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.AnonymousUsers != keyhub.AnonymousReadOnly {
		t.Fatalf("ANONYMOUS_USERS defaults to %q, want read-only", c.AnonymousUsers)
	}
}

// Each bad value stops the process with one line naming its variable.
func TestErrorsNameTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"DATABASE_URL":               {},
		"LISTEN_ADDR":                {"DATABASE_URL": db, "LISTEN_ADDR": "8080"},
		"SUPABASE_URL":               {"DATABASE_URL": db, "SUPABASE_URL": "abcd.supabase.co"},
		"LOG_LEVEL":                  {"DATABASE_URL": db, "LOG_LEVEL": "loud"},
		"API_KEY_CACHE_TTL":          {"DATABASE_URL": db, "API_KEY_CACHE_TTL": "5 minutes"},
		"API_KEY_CACHE_SIZE":         {"DATABASE_URL": db, "API_KEY_CACHE_SIZE": "-1"},
		"TRUSTED_PROXIES":            {"DATABASE_URL": db, "TRUSTED_PROXIES": "10.0.0.0/8,nonsense"},
		"KEYHUB_DEV":                 {"DATABASE_URL": db, "KEYHUB_DEV": "1", "KEYHUB_ENV": "production", "WS_TICKET_SECRET": strings.Repeat("s", 32)},
		"WS_TICKET_SECRET":           {"DATABASE_URL": db, "KEYHUB_ENV": "production"},
		"LAST_USED_FLUSH_INTERVAL":   {"DATABASE_URL": db, "LAST_USED_FLUSH_INTERVAL": "10ms"},
		"SUPABASE_JWKS_URL":          {"DATABASE_URL": db, "SUPABASE_JWKS_URL": "ftp://x"},
		"API_KEY_NEGATIVE_CACHE_TTL": {"DATABASE_URL": db, "API_KEY_NEGATIVE_CACHE_TTL": "0s"},
		"REDIS_URL":                  {"DATABASE_URL": db, "REDIS_URL": "localhost:6379"},
		"RATE_LIMIT_TIER_RPM":        {"DATABASE_URL": db, "RATE_LIMIT_TIER_RPM": "free=60,gold=5"},
		"AUTH_FAILURE_BURST":         {"DATABASE_URL": db, "AUTH_FAILURE_BURST": "0"},
		"AUTH_FAILURE_RATE_LIMIT":    {"DATABASE_URL": db, "AUTH_FAILURE_RATE_LIMIT": "1000000000"},
		"WS_PENDING_PER_IP":          {"DATABASE_URL": db, "WS_PENDING_PER_IP": "many"},
		"DATABASE_WAIT":              {"DATABASE_URL": db, "DATABASE_WAIT": "-1s"},
		"SHUTDOWN_DRAIN_DELAY":       {"DATABASE_URL": db, "SHUTDOWN_DRAIN_DELAY": "soon"},
		"REQUEST_TIMEOUT":            {"DATABASE_URL": db, "REQUEST_TIMEOUT": "0"},
		"METRICS_ADDR":               {"DATABASE_URL": db, "METRICS_ADDR": "9090"},
		"PRODUCT_SCOPES":             {"DATABASE_URL": db, "PRODUCT_SCOPES": "app:read,keys:admin"},
		"PUBLIC_URL":                 {"DATABASE_URL": db, "PUBLIC_URL": "keyhub.example.com"},
		"GATEWAY_ROUTES":             {"DATABASE_URL": db, "GATEWAY_ROUTES": "/v1/ http://127.0.0.1:9000"},
		"GATEWAY_TIMEOUT":            {"DATABASE_URL": db, "GATEWAY_TIMEOUT": "30s"},
		"GATEWAY_ROUTES: route /app/ names the unknown scope": {"DATABASE_URL": db, "PRODUCT_SCOPES": "app:read", "GATEWAY_ROUTES": "/app/ http://x read_scope=app:read scope=app:write"},
		"ANONYMOUS_USERS":                 {"DATABASE_URL": db, "ANONYMOUS_USERS": "readonly"},
		"VERIFY_TOKENS":                   {"DATABASE_URL": db, "VERIFY_TOKENS": "short"},
		"GITHUB_SECRET_SCANNING_KEYS_URL": {"DATABASE_URL": db, "GITHUB_SECRET_SCANNING_KEYS_URL": "http://keys.example.com/"},
	}
	for name, vars := range cases {
		_, err := load(vars)
		if err == nil || !strings.HasPrefix(err.Error(), name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// GATEWAY_ROUTES is read into routes; GATEWAY_TIMEOUT defaults under
// REQUEST_TIMEOUT.
func TestGatewaySettings(t *testing.T) {
	c, err := load(map[string]string{"DATABASE_URL": db, "PRODUCT_SCOPES": "app:write", "GATEWAY_ROUTES": "/app/ http://127.0.0.1:9000 scope=app:write; /b/ http://b read_scope=keys:read"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.GatewayRoutes) != 2 || c.GatewayRoutes[0].Prefix != "/app/" || c.GatewayRoutes[0].Scope != "app:write" || c.GatewayTimeout != 20*time.Second {
		t.Fatalf("%+v %s", c.GatewayRoutes, c.GatewayTimeout)
	}
	if c, err := load(map[string]string{"DATABASE_URL": db, "REQUEST_TIMEOUT": "300ms"}); err != nil || len(c.GatewayRoutes) != 0 || c.GatewayTimeout != 200*time.Millisecond {
		t.Fatalf("no routes by default, and a timeout under a short REQUEST_TIMEOUT: %v %s %v", c.GatewayRoutes, c.GatewayTimeout, err)
	}
}

// FuzzRateLimitTierRPM: whatever RATE_LIMIT_TIER_RPM holds, Load either
// refuses it naming the variable or returns known tiers with positive
// figures.
func FuzzRateLimitTierRPM(f *testing.F) {
	for _, seed := range []string{"free=60", "pro=600, team=3000", "free=", "=5", "gold=1", "free=-1", "free=1,free=2", ",,", "free=9999999999999999999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		c, err := load(map[string]string{"DATABASE_URL": db, "RATE_LIMIT_TIER_RPM": value})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "RATE_LIMIT_TIER_RPM") {
				t.Fatalf("%q: error does not name the variable: %v", value, err)
			}
			return
		}
		for tier, n := range c.RateLimitTierRPM {
			if !tier.Valid() || n <= 0 || n > 100_000_000 {
				t.Fatalf("%q: accepted %s=%d", value, tier, n)
			}
		}
	})
}

// Waits and delays may be switched off with 0; their defaults hold otherwise.
func TestOperationalDurations(t *testing.T) {
	c, err := load(map[string]string{"DATABASE_URL": db})
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseWait != 30*time.Second || c.ShutdownDrainDelay != 5*time.Second || c.RequestTimeout != 30*time.Second || c.MetricsAddr != "" {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = load(map[string]string{"DATABASE_URL": db, "DATABASE_WAIT": "0", "SHUTDOWN_DRAIN_DELAY": "0s", "METRICS_ADDR": "localhost:9090"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseWait != 0 || c.ShutdownDrainDelay != 0 || c.MetricsAddr != "localhost:9090" {
		t.Fatalf("zeroes: %+v", c)
	}
}

func TestProductScopes(t *testing.T) {
	c, err := load(map[string]string{"DATABASE_URL": db, "PRODUCT_SCOPES": " app:read , app:write,"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Scopes.Product(); len(got) != 2 || got[0] != "app:read" || got[1] != "app:write" {
		t.Fatalf("product scopes: %v", got)
	}
	for _, bad := range []string{"app:read,app:read", "App:Read", "ws:connect"} {
		if _, err := load(map[string]string{"DATABASE_URL": db, "PRODUCT_SCOPES": bad}); err == nil {
			t.Errorf("PRODUCT_SCOPES=%q accepted", bad)
		}
	}
}

func TestPublicURL(t *testing.T) {
	c, err := load(map[string]string{"DATABASE_URL": db, "LISTEN_ADDR": ":9090"})
	if err != nil || c.PublicURL != "http://localhost:9090" {
		t.Fatalf("default PUBLIC_URL %q, %v", c.PublicURL, err)
	}
	c, err = load(map[string]string{"DATABASE_URL": db, "PUBLIC_URL": "https://keyhub.example.com/"})
	if err != nil || c.PublicURL != "https://keyhub.example.com" {
		t.Fatalf("PUBLIC_URL %q, %v", c.PublicURL, err)
	}
}
