// Package config reads keyhub's settings from environment variables and
// validates them at start: a missing or malformed value is one clear error
// naming the variable. The README's configuration table lists the same
// variables; keep the two in step.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhub/keyhub/internal/gateway"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/secretscan"
)

// Config is every setting of the server.
type Config struct {
	DatabaseURL     string
	ListenAddr      string
	DebugAddr       string // DEBUG_ADDR: pprof's listener, off when empty
	LogLevel        string
	Env             string // "development" or "production"
	Dev             bool   // dev mode: a local JWT issuer instead of Supabase
	DataDir         string
	ShutdownTimeout time.Duration

	SupabaseURL     string
	SupabaseAnonKey string // public: the dashboard sends it to Supabase Auth to sign in
	JWKSURL         string
	JWTPublicKey    string
	JWTRSAPublicKey string
	JWTSecret       string
	JWTIssuer       string
	JWTAudience     string
	JWTLeeway       time.Duration
	JWTCacheSize    int // verified access tokens kept (JWT_CACHE_SIZE)
	// AnonymousUsers is what anonymous sign-ins may do (ANONYMOUS_USERS).
	AnonymousUsers keyhub.AnonymousPolicy

	KeyCacheTTL           time.Duration
	KeyCacheSize          int
	NegativeCacheTTL      time.Duration
	NegativeCacheSize     int
	LastUsedFlushInterval time.Duration
	// ExpirySweepInterval is how often expired keys get their `expired`
	// audit event (and keys due for auto-rotation are rotated).
	ExpirySweepInterval time.Duration
	// KeyMinLifetime is the shortest lifetime a new key may be given.
	KeyMinLifetime time.Duration

	TrustedProxies []netip.Prefix

	// ListenDatabaseURL is where the change feed LISTENs: DATABASE_URL
	// unless a pooler in front of the database needs a direct address.
	ListenDatabaseURL string
	// StaleBound is the oldest a cached credential may be while the change
	// feed is down.
	StaleBound time.Duration

	WSTicketSecret string
	WSAuthTimeout  time.Duration
	// WSLeaseTTL is how long a WebSocket's cluster-wide lease outlives the
	// last heartbeat of its process (a process killed without cleanup).
	WSLeaseTTL     time.Duration
	AllowedOrigins []string
	// CORSMaxAge is how long browsers may cache a CORS preflight answer.
	CORSMaxAge time.Duration

	// RedisURL, when set, makes every rate limit global across processes.
	RedisURL string
	// RateLimitTierRPM overrides the tier table's requests per minute.
	RateLimitTierRPM map[keyhub.Tier]int
	// AuthFailureRate and AuthFailureBurst limit failed authentications
	// per client IP (per minute, and at once).
	AuthFailureRate  int
	AuthFailureBurst int
	// KeyRefreshRate and KeyRefreshBurst limit key refreshes per acting
	// API key lineage (per hour, and at once).
	KeyRefreshRate  int
	KeyRefreshBurst int
	// KeyCreateRate and KeyCreateBurst limit key creations per owner
	// (per hour, and at once): each new key starts with a full request
	// bucket, so creating and revoking keys must not be free.
	KeyCreateRate  int
	KeyCreateBurst int
	// RateLimitMemoryKeys bounds the rate-limit keys kept in process.
	RateLimitMemoryKeys int
	// WSPendingMax, WSPendingPerIP and WSPendingPerNetwork cap
	// unauthenticated WebSocket connections, in all, per client IP and per
	// client network (/24, /56).
	WSPendingMax        int
	WSPendingPerIP      int
	WSPendingPerNetwork int
	// DatabaseWait is how long serve retries reaching the database at
	// start before giving up (0: one attempt).
	DatabaseWait time.Duration
	// ShutdownDrainDelay is how long, after SIGTERM, /readyz answers 503
	// while the listener keeps serving, so load balancers stop routing here
	// before connections are refused.
	ShutdownDrainDelay time.Duration
	// RequestTimeout bounds reading and answering one HTTP request (until
	// a WebSocket upgrade).
	RequestTimeout time.Duration
	// MetricsAddr is where GET /metrics is served; empty: nowhere.
	MetricsAddr string
	// Scopes are keyhub's own scopes and the operator's PRODUCT_SCOPES.
	Scopes *keyhub.ScopeCatalog
	// PublicURL is keyhub's address as clients and upstreams know it: the
	// iss of Keyhub-Identity tokens.
	PublicURL string
	// VerifyTokens are the operator secrets accepted by POST
	// /v1/keys/verify (besides the service_role key).
	VerifyTokens []string
	// GatewaySigningKey is the path of the PEM or JWK private key that
	// signs Keyhub-Identity tokens; empty: generated (see README).
	GatewaySigningKey string

	// GatewayRoutes are the products keyhub proxies to (GATEWAY_ROUTES).
	GatewayRoutes []gateway.Route
	// GatewayTimeout bounds the wait for an upstream's response headers
	// (then 504); it must leave time under RequestTimeout to answer.
	GatewayTimeout time.Duration

	// SecretScanningKeysURL serves the keys GitHub signs leak reports
	// with (GITHUB_SECRET_SCANNING_KEYS_URL).
	SecretScanningKeysURL string
	// Webhooks is how owners' webhooks are called (WEBHOOKS_*).
	Webhooks WebhookConfig
}

// WebhookConfig is how webhook deliveries are made.
type WebhookConfig struct {
	// AllowInsecure allows http:// to loopback receivers (tests only;
	// refused in production).
	AllowInsecure bool
	// AllowedNetworks are networks called although they are not public.
	AllowedNetworks []netip.Prefix
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// RetryMin, doubled per failure up to RetryMax, is the wait between
	// attempts; RetryWindow is how long a delivery is retried.
	RetryMin, RetryMax, RetryWindow time.Duration
	// PollInterval is how often each process looks for due retries.
	PollInterval time.Duration
	// Concurrency is how many attempts one process runs at once.
	Concurrency int
}

// Load reads the configuration through getenv.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		DatabaseURL:     p.str("DATABASE_URL", ""),
		ListenAddr:      p.str("LISTEN_ADDR", ":8080"),
		DebugAddr:       p.str("DEBUG_ADDR", ""),
		LogLevel:        p.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		Env:             p.oneOf("KEYHUB_ENV", "development", "development", "production"),
		Dev:             p.boolean("KEYHUB_DEV", false),
		DataDir:         p.str("KEYHUB_DATA_DIR", ".keyhub"),
		ShutdownTimeout: p.duration("SHUTDOWN_TIMEOUT", 15*time.Second),

		SupabaseURL:     strings.TrimRight(p.str("SUPABASE_URL", ""), "/"),
		SupabaseAnonKey: p.str("SUPABASE_ANON_KEY", ""),
		JWKSURL:         p.str("SUPABASE_JWKS_URL", ""),
		JWTPublicKey:    p.str("SUPABASE_JWT_PUBLIC_KEY", ""),
		JWTRSAPublicKey: p.str("SUPABASE_JWT_RSA_PUBLIC_KEY", ""),
		JWTSecret:       p.str("SUPABASE_JWT_SECRET", ""),
		JWTIssuer:       p.str("JWT_ISSUER", ""),
		JWTAudience:     p.str("JWT_AUDIENCE", "authenticated"),
		JWTLeeway:       p.duration("JWT_LEEWAY", 30*time.Second),
		JWTCacheSize:    p.positiveInt("JWT_CACHE_SIZE", 10_000),
		AnonymousUsers: keyhub.AnonymousPolicy(p.oneOf("ANONYMOUS_USERS", string(keyhub.AnonymousReadOnly),
			string(keyhub.AnonymousRefuse), string(keyhub.AnonymousReadOnly), string(keyhub.AnonymousAllow))),

		KeyCacheTTL:           p.duration("API_KEY_CACHE_TTL", 5*time.Minute),
		KeyCacheSize:          p.positiveInt("API_KEY_CACHE_SIZE", 100_000),
		NegativeCacheTTL:      p.duration("API_KEY_NEGATIVE_CACHE_TTL", 30*time.Second),
		NegativeCacheSize:     p.positiveInt("API_KEY_NEGATIVE_CACHE_SIZE", 10_000),
		LastUsedFlushInterval: p.duration("LAST_USED_FLUSH_INTERVAL", 5*time.Second),
		ExpirySweepInterval:   p.duration("EXPIRY_SWEEP_INTERVAL", 30*time.Second),
		KeyMinLifetime:        p.duration("KEY_MIN_LIFETIME", time.Minute),

		TrustedProxies: p.prefixes("TRUSTED_PROXIES"),

		ListenDatabaseURL: p.str("DATABASE_LISTEN_URL", ""),
		StaleBound:        p.duration("CHANGE_FEED_STALE_BOUND", 5*time.Second),

		WSTicketSecret: p.str("WS_TICKET_SECRET", ""),
		WSAuthTimeout:  p.duration("WS_AUTH_TIMEOUT", 10*time.Second),
		WSLeaseTTL:     p.duration("WS_LEASE_TTL", 30*time.Second),
		AllowedOrigins: p.list("ALLOWED_ORIGINS"),
		CORSMaxAge:     p.duration("CORS_MAX_AGE", 10*time.Minute),

		RedisURL:            p.str("REDIS_URL", ""),
		RateLimitTierRPM:    p.tierInts("RATE_LIMIT_TIER_RPM"),
		AuthFailureRate:     p.positiveInt("AUTH_FAILURE_RATE_LIMIT", 20),
		AuthFailureBurst:    p.positiveInt("AUTH_FAILURE_BURST", 10),
		KeyRefreshRate:      p.positiveInt("KEY_REFRESH_RATE_LIMIT", 60),
		KeyRefreshBurst:     p.positiveInt("KEY_REFRESH_BURST", 10),
		KeyCreateRate:       p.positiveInt("KEY_CREATE_RATE_LIMIT", 60),
		KeyCreateBurst:      p.positiveInt("KEY_CREATE_BURST", 10),
		RateLimitMemoryKeys: p.positiveInt("RATE_LIMIT_MEMORY_KEYS", 100_000),
		WSPendingMax:        p.positiveInt("WS_PENDING_MAX", 1024),
		WSPendingPerIP:      p.positiveInt("WS_PENDING_PER_IP", 16),
		WSPendingPerNetwork: p.positiveInt("WS_PENDING_PER_NETWORK", 64),
		DatabaseWait:        p.durationOrZero("DATABASE_WAIT", 30*time.Second),
		ShutdownDrainDelay:  p.durationOrZero("SHUTDOWN_DRAIN_DELAY", 5*time.Second),
		RequestTimeout:      p.duration("REQUEST_TIMEOUT", 30*time.Second),
		MetricsAddr:         p.str("METRICS_ADDR", ""),
		Scopes:              p.scopes("PRODUCT_SCOPES"),
		PublicURL:           strings.TrimRight(p.str("PUBLIC_URL", ""), "/"),
		GatewaySigningKey:   p.str("GATEWAY_SIGNING_KEY", ""),
		VerifyTokens:        p.list("VERIFY_TOKENS"),

		GatewayRoutes:  p.routes("GATEWAY_ROUTES"),
		GatewayTimeout: p.duration("GATEWAY_TIMEOUT", 0), // default: from REQUEST_TIMEOUT, below

		SecretScanningKeysURL: p.str("GITHUB_SECRET_SCANNING_KEYS_URL", secretscan.DefaultKeysURL),
		Webhooks: WebhookConfig{
			AllowInsecure:   p.boolean("WEBHOOKS_ALLOW_INSECURE", false),
			AllowedNetworks: p.prefixes("WEBHOOKS_ALLOWED_NETWORKS"),
			Timeout:         p.duration("WEBHOOKS_TIMEOUT", 10*time.Second),
			RetryMin:        p.duration("WEBHOOKS_RETRY_MIN", 10*time.Second),
			RetryMax:        p.duration("WEBHOOKS_RETRY_MAX", time.Hour),
			RetryWindow:     p.duration("WEBHOOKS_RETRY_WINDOW", 24*time.Hour),
			PollInterval:    p.duration("WEBHOOKS_POLL_INTERVAL", 5*time.Second),
			Concurrency:     p.positiveInt("WEBHOOKS_CONCURRENCY", 8),
		},
	}
	if p.err != nil {
		return Config{}, p.err
	}
	if c.DatabaseURL == "" {
		return Config{}, fmt.Errorf("DATABASE_URL is required (e.g. postgres://user@localhost:5432/keyhub)")
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return Config{}, fmt.Errorf("DATABASE_URL must be a postgres:// URL")
	}
	if !secureOrLoopback(c.SecretScanningKeysURL) {
		return Config{}, fmt.Errorf("GITHUB_SECRET_SCANNING_KEYS_URL must be an https:// URL (http:// only for a loopback address)")
	}
	if c.ListenDatabaseURL == "" {
		c.ListenDatabaseURL = c.DatabaseURL
	} else if u, err := url.Parse(c.ListenDatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return Config{}, fmt.Errorf("DATABASE_LISTEN_URL must be a postgres:// URL")
	}
	if c.StaleBound < 100*time.Millisecond || c.StaleBound > time.Minute {
		return Config{}, fmt.Errorf("CHANGE_FEED_STALE_BOUND must be between 100ms and 1m, got %s", c.StaleBound)
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return Config{}, fmt.Errorf("LISTEN_ADDR must be host:port or :port, got %q", c.ListenAddr)
	}
	if c.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			return Config{}, fmt.Errorf("DEBUG_ADDR must be host:port, got %q", c.DebugAddr)
		}
	}
	if c.SupabaseURL != "" {
		if u, err := url.Parse(c.SupabaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return Config{}, fmt.Errorf("SUPABASE_URL must be an http(s) URL such as https://abcd.supabase.co, got %q", c.SupabaseURL)
		}
		if c.JWKSURL == "" {
			c.JWKSURL = c.SupabaseURL + "/auth/v1/.well-known/jwks.json"
		}
		if c.JWTIssuer == "" {
			c.JWTIssuer = c.SupabaseURL + "/auth/v1"
		}
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return Config{}, fmt.Errorf("SUPABASE_JWKS_URL must be an http(s) URL, got %q", c.JWKSURL)
		}
	}
	if c.Dev {
		if c.Env == "production" {
			return Config{}, fmt.Errorf("KEYHUB_DEV=1 is refused when KEYHUB_ENV=production: dev mode mints its own user tokens")
		}
		if c.SupabaseURL != "" || c.JWKSURL != "" {
			return Config{}, fmt.Errorf("KEYHUB_DEV=1 cannot be combined with SUPABASE_URL or SUPABASE_JWKS_URL: dev mode is its own issuer")
		}
		c.JWKSURL = "http://" + c.LocalAddr() + "/auth/v1/.well-known/jwks.json"
		if c.JWTIssuer == "" {
			c.JWTIssuer = DevIssuer
		}
	}
	if c.Env == "production" && c.WSTicketSecret == "" {
		return Config{}, fmt.Errorf("WS_TICKET_SECRET is required when KEYHUB_ENV=production (32+ characters, e.g. openssl rand -base64 32; processes sharing a database must share it)")
	}
	if c.WSTicketSecret != "" && len(c.WSTicketSecret) < 32 {
		return Config{}, fmt.Errorf("WS_TICKET_SECRET must be at least 32 characters")
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			return Config{}, fmt.Errorf("REDIS_URL must be a redis://, rediss:// or unix:// URL")
		}
	}
	if c.AuthFailureRate > maxRPM || c.AuthFailureBurst > maxRPM {
		return Config{}, fmt.Errorf("AUTH_FAILURE_RATE_LIMIT and AUTH_FAILURE_BURST must be at most %d", maxRPM)
	}
	if c.KeyRefreshRate > maxRPM || c.KeyRefreshBurst > maxRPM {
		return Config{}, fmt.Errorf("KEY_REFRESH_RATE_LIMIT and KEY_REFRESH_BURST must be at most %d", maxRPM)
	}
	if c.KeyCreateRate > maxRPM || c.KeyCreateBurst > maxRPM {
		return Config{}, fmt.Errorf("KEY_CREATE_RATE_LIMIT and KEY_CREATE_BURST must be at most %d", maxRPM)
	}
	if c.WSLeaseTTL < time.Second || c.WSLeaseTTL > 10*time.Minute {
		return Config{}, fmt.Errorf("WS_LEASE_TTL must be between 1s and 10m, got %s", c.WSLeaseTTL)
	}
	if c.ExpirySweepInterval < 100*time.Millisecond {
		return Config{}, fmt.Errorf("EXPIRY_SWEEP_INTERVAL must be at least 100ms, got %s", c.ExpirySweepInterval)
	}
	if c.KeyMinLifetime < time.Second {
		return Config{}, fmt.Errorf("KEY_MIN_LIFETIME must be at least 1s, got %s", c.KeyMinLifetime)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return Config{}, fmt.Errorf("METRICS_ADDR must be host:port or :port, got %q", c.MetricsAddr)
		}
	}
	for _, token := range c.VerifyTokens {
		if len(token) < 32 {
			return Config{}, fmt.Errorf("VERIFY_TOKENS must list secrets of at least 32 characters each")
		}
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.LocalAddr()
	} else if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return Config{}, fmt.Errorf("PUBLIC_URL must be an http(s) URL such as https://keyhub.example.com, got %q", c.PublicURL)
	}
	switch {
	case c.GatewayTimeout == 0:
		c.GatewayTimeout = min(20*time.Second, c.RequestTimeout*2/3)
	case c.GatewayTimeout >= c.RequestTimeout:
		return Config{}, fmt.Errorf("GATEWAY_TIMEOUT (%s) must be shorter than REQUEST_TIMEOUT (%s): a 504 needs time to be sent", c.GatewayTimeout, c.RequestTimeout)
	}
	for _, rt := range c.GatewayRoutes {
		for _, name := range []string{rt.Scope, rt.ReadScope} {
			if _, known := c.Scopes.Lookup(name); name != "" && !known {
				return Config{}, fmt.Errorf("GATEWAY_ROUTES: route %s names the unknown scope %q (known: %s; add product scopes to PRODUCT_SCOPES)", rt.Prefix, name, strings.Join(c.Scopes.Known(), ", "))
			}
		}
	}
	if c.Webhooks.AllowInsecure && c.Env == "production" {
		return Config{}, fmt.Errorf("WEBHOOKS_ALLOW_INSECURE=1 is refused when KEYHUB_ENV=production: it lets webhooks call this machine over plain http")
	}
	if w := c.Webhooks; w.RetryMin > w.RetryMax || w.RetryMax > w.RetryWindow {
		return Config{}, fmt.Errorf("webhook retries need WEBHOOKS_RETRY_MIN (%s) ≤ WEBHOOKS_RETRY_MAX (%s) ≤ WEBHOOKS_RETRY_WINDOW (%s)", w.RetryMin, w.RetryMax, w.RetryWindow)
	}
	if c.Webhooks.Timeout > time.Minute {
		return Config{}, fmt.Errorf("WEBHOOKS_TIMEOUT must be at most 1m, got %s", c.Webhooks.Timeout)
	}
	if c.LastUsedFlushInterval < time.Second {
		return Config{}, fmt.Errorf("LAST_USED_FLUSH_INTERVAL must be at least 1s")
	}
	return c, nil
}

// LocalAddr is LISTEN_ADDR as a client on this machine dials it.
func (c Config) LocalAddr() string {
	host, port, _ := net.SplitHostPort(c.ListenAddr)
	switch host {
	case "", "0.0.0.0", "::":
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// DevIssuer is the iss of dev-mode tokens unless JWT_ISSUER says otherwise.
// It names the dev mode, not an address: a token is bound to the server by
// the signing key in KEYHUB_DATA_DIR, so `keyhub dev token` mints tokens
// every dev server sharing that key accepts, whatever its LISTEN_ADDR (one
// derived from LISTEN_ADDR made the token command repeat the server's
// address, and a second server on another port refuse the first's tokens).
const DevIssuer = "keyhub-dev"

// parser keeps the first error, so Load reads like a list of settings.
type parser struct {
	getenv func(string) string
	err    error
}

func (p *parser) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%s %s", name, fmt.Sprintf(format, args...))
	}
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(p.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	return def
}

func (p *parser) boolean(name string, def bool) bool {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, "must be true/false or 1/0, got %q", v)
	}
	return b
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, "must be a positive duration such as 30s or 5m, got %q", v)
		return def
	}
	return d
}

// durationOrZero is duration where 0 is meaningful (no wait, no delay).
func (p *parser) durationOrZero(name string, def time.Duration) time.Duration {
	v := p.str(name, "")
	if d, err := time.ParseDuration(v); err == nil && d == 0 {
		return 0
	}
	return p.duration(name, def)
}

func (p *parser) positiveInt(name string, def int) int {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		p.fail(name, "must be a positive integer, got %q", v)
		return def
	}
	return n
}

func (p *parser) list(name string) []string {
	var out []string
	for _, part := range strings.Split(p.str(name, ""), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// maxRPM bounds a configured requests-per-minute figure: far above any
// real need, far below where the limiter's arithmetic would degrade.
const maxRPM = 100_000_000

// tierInts reads "free=60,pro=600": a positive integer (≤ maxRPM) per
// named tier.
func (p *parser) tierInts(name string) map[keyhub.Tier]int {
	out := map[keyhub.Tier]int{}
	for _, part := range p.list(name) {
		tier, value, _ := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if t := keyhub.Tier(strings.TrimSpace(tier)); t.Valid() && err == nil && n > 0 && n <= maxRPM {
			out[t] = n
			continue
		}
		p.fail(name, "must be a comma-separated list of tier=number (tiers: free, pro, team, enterprise; 1 to %d), got %q", maxRPM, part)
		return nil
	}
	return out
}

// scopes reads the operator's product scopes ("app:read,app:write") into a
// catalog after keyhub's own.
func (p *parser) scopes(name string) *keyhub.ScopeCatalog {
	c, err := keyhub.NewScopeCatalog(p.list(name))
	if err != nil {
		p.fail(name, "is invalid: %v", err)
		return nil
	}
	return c
}

func (p *parser) routes(name string) []gateway.Route {
	routes, err := gateway.ParseRoutes(p.getenv(name))
	if err != nil {
		p.fail(name, "%v", err)
		return nil
	}
	return routes
}

func (p *parser) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, part := range p.list(name) {
		if !strings.Contains(part, "/") {
			addr, err := netip.ParseAddr(part)
			if err != nil {
				p.fail(name, "must be a comma-separated list of IPs or CIDRs, got %q", part)
				return nil
			}
			out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			continue
		}
		pfx, err := netip.ParsePrefix(part)
		if err != nil {
			p.fail(name, "must be a comma-separated list of IPs or CIDRs, got %q", part)
			return nil
		}
		out = append(out, pfx.Masked())
	}
	return out
}

// secureOrLoopback reports whether raw is an https:// URL, or an http://
// one on a loopback address (a test's stand-in server): what keyhub
// trusts keys from.
func secureOrLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	ip, err := netip.ParseAddr(u.Hostname())
	return u.Scheme == "http" && (u.Hostname() == "localhost" || err == nil && ip.IsLoopback())
}
