// Package app assembles keyhub's parts into one HTTP handler and the
// background work behind it. The same assembly serves production
// (cmd/keyhub) and the end-to-end tests, so tests exercise the real wiring.
package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/keyhub/keyhub"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/dashboard"
	"github.com/keyhub/keyhub/internal/devissuer"
	"github.com/keyhub/keyhub/internal/eckey"
	"github.com/keyhub/keyhub/internal/gateway"
	"github.com/keyhub/keyhub/internal/httpapi"
	"github.com/keyhub/keyhub/internal/identity"
	"github.com/keyhub/keyhub/internal/jwtverify"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
	"github.com/keyhub/keyhub/internal/operator"
	"github.com/keyhub/keyhub/internal/postgres"
	"github.com/keyhub/keyhub/internal/ratelimit"
	"github.com/keyhub/keyhub/internal/secretscan"
	"github.com/keyhub/keyhub/internal/usage"
	"github.com/keyhub/keyhub/internal/webhooks"
	"github.com/keyhub/keyhub/internal/ws"
)

// App is a wired keyhub.
type App struct {
	Handler http.Handler
	Store   *postgres.Store
	Keys    *auth.ApiKeyCache
	// WebSocket is the registry of open WebSocket connections.
	WebSocket *ws.Hub
	// Metrics holds the Prometheus collectors; Metrics.Handler serves them
	// (on METRICS_ADDR, see cmd/keyhub).
	Metrics *metrics.Metrics
	// Feed hears the changes every process commits (LISTEN/NOTIFY).
	Feed *postgres.ChangeFeed
	// Identity signs the Keyhub-Identity tokens the gateway sends
	// upstream; its JWKS is served at /.well-known/jwks.json.
	Identity *identity.Signer
	// Webhooks drains the webhook outbox (any process may claim a row).
	Webhooks *webhooks.Dispatcher

	touchers []*auth.Toucher
	// usage counts the requests of each key; flushed like the touchers.
	usage *usage.Counter
	cfg   config.Config
	log   *slog.Logger
	wg    sync.WaitGroup
	redis *redis.Client // nil without REDIS_URL
	// draining is set when shutdown begins: readiness fails from then on.
	draining *atomic.Bool
}

// DevKeyDir is where dev mode keeps its signing key.
func DevKeyDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "dev") }

// GatewayKeyDir is where dev mode keeps the key that signs upstream
// identities (GATEWAY_SIGNING_KEY unset).
func GatewayKeyDir(cfg config.Config) string { return filepath.Join(cfg.DataDir, "gateway") }

// gatewayKeyFile is the generated key's name inside GatewayKeyDir.
const gatewayKeyFile = "identity-es256.pem"

// newIdentitySigner loads the key of GATEWAY_SIGNING_KEY; without one,
// dev mode keeps a generated key on disk (a restart keeps its kid) and
// any other mode makes one for this process alone.
func newIdentitySigner(cfg config.Config, log *slog.Logger) (*identity.Signer, error) {
	var key *ecdsa.PrivateKey
	var err error
	switch {
	case cfg.GatewaySigningKey != "":
		if key, err = eckey.Load(cfg.GatewaySigningKey); err != nil {
			return nil, fmt.Errorf("GATEWAY_SIGNING_KEY: %w", err)
		}
	case cfg.Dev:
		if key, err = eckey.LoadOrCreate(GatewayKeyDir(cfg), gatewayKeyFile); err != nil {
			return nil, fmt.Errorf("gateway signing key: %w", err)
		}
	default:
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, fmt.Errorf("gateway signing key: %w", err)
		}
		log.Warn("GATEWAY_SIGNING_KEY is not set: identities sent to upstream services are signed with a random per-process key " +
			"(a new kid after every restart, a different one on every process); set it to a shared EC P-256 private key")
	}
	return identity.New(identity.Config{Key: key, Issuer: cfg.PublicURL, Scopes: cfg.Scopes})
}

// New wires keyhub on pool. ctx bounds background work started here (the
// JWKS refresh); Start runs the rest.
func New(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, log *slog.Logger) (*App, error) {
	// The change bus: the store publishes its own commits and the feed
	// everyone's; the authenticator's caches and the hub subscribe.
	bus := changes.New()
	store := postgres.NewStore(pool, bus).WithScopes(cfg.Scopes)
	m := metrics.New()
	m.Register(metrics.NewPoolCollector(pool))

	var devJWKS http.Handler
	var devTokens func(email string, ttl time.Duration) (string, error)
	tokenKeys := jwtverify.Config{
		JWKSURL:        cfg.JWKSURL,
		ES256PublicKey: cfg.JWTPublicKey,
		RSAPublicKey:   cfg.JWTRSAPublicKey,
		HS256Secret:    cfg.JWTSecret,
	}
	if cfg.Dev {
		issuer, err := devissuer.LoadOrCreate(DevKeyDir(cfg))
		if err != nil {
			return nil, fmt.Errorf("dev issuer: %w", err)
		}
		devJWKS = issuer.JWKSHandler()
		devTokens = func(email string, ttl time.Duration) (string, error) { return issuer.Token(cfg.JWTIssuer, email, ttl) }
		// The issuer's key is handed to the verifier directly: fetching
		// our own JWKS over HTTP before we listen could only fail (and warn).
		// The JWKS stays served for other verifiers of dev tokens.
		tokenKeys = jwtverify.Config{ES256PublicKey: string(issuer.JWKS())}
		tokenKeys.UnknownKeyHint = "dev mode verifies tokens signed by the key in " + DevKeyDir(cfg) +
			": mint a new one with `make token` or POST /dev/token"
		log.Warn("DEV MODE: keyhub is its own JWT issuer; tokens come from `keyhub dev token`. Never use this in production.",
			"issuer", cfg.JWTIssuer, "jwks", cfg.JWKSURL)
	}
	tokenKeys.Issuer = cfg.JWTIssuer
	tokenKeys.Audience = cfg.JWTAudience
	tokenKeys.Leeway = cfg.JWTLeeway
	tokenKeys.Logger = log
	tokenKeys.HTTPClient = &http.Client{Transport: m.InstrumentJWKS(http.DefaultTransport)}
	tokens, err := jwtverify.New(ctx, tokenKeys)
	if err != nil {
		return nil, err
	}
	if !tokens.Configured() {
		log.Warn("no JWT key source configured (SUPABASE_URL, SUPABASE_JWT_*): dashboard sign-in answers AUTH_NOT_CONFIGURED")
	}

	keyUsage := auth.NewToucher("api_keys.last_used_at", countFailures(m, "api_keys", store.TouchKeys), cfg.LastUsedFlushInterval, log)
	// A user's last_seen_at keeps no address or agent: only keys' uses do.
	touchUsers := func(ctx context.Context, ids []uuid.UUID, at []time.Time, _ []keyhub.RequestMeta) ([]uuid.UUID, error) {
		return store.TouchUsers(ctx, ids, at)
	}
	userSeen := auth.NewToucher("users.last_seen_at", countFailures(m, "users", touchUsers), cfg.LastUsedFlushInterval, log)
	keys := auth.NewApiKeyCache(store, auth.KeyCacheConfig{
		TTL:          cfg.KeyCacheTTL,
		Size:         cfg.KeyCacheSize,
		NegativeTTL:  cfg.NegativeCacheTTL,
		NegativeSize: cfg.NegativeCacheSize,
		Metrics:      m,
		StaleBound:   cfg.StaleBound,
	}, keyUsage)
	authn := auth.New(auth.Config{Keys: keys, Tokens: tokens, Users: store, SeenUsers: userSeen, StaleBound: cfg.StaleBound, Metrics: m,
		Logger: log, TokenCacheSize: cfg.JWTCacheSize, AnonymousUsers: cfg.AnonymousUsers})
	bus.Subscribe(authn)

	limits, redisClient, err := newRateLimits(cfg, log, m)
	if err != nil {
		return nil, err
	}

	// The one admission step of every front door: REST, WebSocket, gateway.
	gate := auth.NewGate(authn, limits, cfg.TrustedProxies, cfg.Scopes)
	keyRequests := usage.New(func(ctx context.Context, counts []keyhub.UsageCount) error {
		err := store.AddKeyUsage(ctx, counts)
		if err != nil {
			m.LastUsedFlushFailed("api_key_usage")
		}
		return err
	}, cfg.LastUsedFlushInterval, log)
	gate.CountUsage(keyRequests)

	hub := ws.New(ws.Config{
		Gate:              gate,
		Store:             store,
		Log:               log,
		TicketSecret:      []byte(cfg.WSTicketSecret),
		AuthTimeout:       cfg.WSAuthTimeout,
		AllowedOrigins:    cfg.AllowedOrigins,
		MaxPending:        cfg.WSPendingMax,
		PendingPerIP:      cfg.WSPendingPerIP,
		PendingPerNetwork: cfg.WSPendingPerNetwork,
		RateLimits:        limits,
		Metrics:           m,
		StaleBound:        cfg.StaleBound,
		LeaseTTL:          cfg.WSLeaseTTL,
		Scopes:            cfg.Scopes,
	})
	bus.Subscribe(hub)
	feed := store.NewChangeFeed(cfg.ListenDatabaseURL, log)
	// A silently dead listening connection is found within the stale bound.
	feed.Heartbeat = cfg.StaleBound / 2
	feed.OnNotice, feed.OnReconnect, feed.OnEventsRead = m.ChangeFeedNotice, m.ChangeFeedReconnected, m.ChangeFeedEventsRead

	signer, err := newIdentitySigner(cfg, log)
	if err != nil {
		return nil, err
	}

	gw, err := gateway.New(gateway.Config{
		Routes:      cfg.GatewayRoutes,
		LookupScope: cfg.Scopes.Lookup,
		Admit:       gateAdmitter{gate},
		Identities:  signerIdentities{signer},
		Sockets: func(scope keyhub.Scopes, dial func(context.Context, *http.Request, *keyhub.Principal, []string) (*websocket.Conn, error), failed func(http.ResponseWriter, *http.Request, error)) http.Handler {
			return hub.Relay(auth.Need{Scope: scope}, dial, failed)
		},
		TrustedProxies:  cfg.TrustedProxies,
		UpstreamTimeout: cfg.GatewayTimeout,
		Metrics:         m,
		Log:             log,
	})
	if err != nil {
		return nil, fmt.Errorf("GATEWAY_ROUTES: %w", err)
	}

	// Webhooks: the outbox fills in the events' transactions (a trigger);
	// every process drains it, woken by the events it hears.
	webhookPolicy := webhooks.Policy{AllowInsecure: cfg.Webhooks.AllowInsecure, Allowed: cfg.Webhooks.AllowedNetworks}
	dispatcher := webhooks.NewDispatcher(webhooks.DispatcherConfig{
		Store:        store,
		Client:       webhooks.NewClient(webhookPolicy, cfg.Webhooks.Timeout, nil),
		Log:          log,
		Timeout:      cfg.Webhooks.Timeout,
		PollInterval: cfg.Webhooks.PollInterval,
		RetryMin:     cfg.Webhooks.RetryMin,
		RetryMax:     cfg.Webhooks.RetryMax,
		RetryWindow:  cfg.Webhooks.RetryWindow,
		Concurrency:  cfg.Webhooks.Concurrency,
	})
	bus.Subscribe(dispatcher)

	draining := new(atomic.Bool)
	ready := func(ctx context.Context) error {
		if draining.Load() {
			return errDraining
		}
		return store.Ping(ctx)
	}
	handler := httpapi.NewServer(httpapi.Deps{
		Keys:     store,
		Policies: store,
		Usage:    store,
		// GitHub's leak reports: verified against its published keys,
		// fetched when the first report comes.
		LeakSignatures: secretscan.NewVerifier(secretscan.Config{KeysURL: cfg.SecretScanningKeysURL, Log: log}),
		Leaks:          store,
		Ready:          ready,
		Gate:           gate,
		Log:            log,
		TrustedProxies: cfg.TrustedProxies,
		DevJWKS:        devJWKS,
		DevTokens:      devTokens,
		AllowedOrigins: cfg.AllowedOrigins,
		CORSMaxAge:     cfg.CORSMaxAge,
		RequestTimeout: cfg.RequestTimeout,
		KeyMinLifetime: cfg.KeyMinLifetime,
		Metrics:        m,
		Dashboard: dashboard.Handler(dashboard.Config{
			DevSignIn:       cfg.Dev,
			SupabaseURL:     cfg.SupabaseURL,
			SupabaseAnonKey: cfg.SupabaseAnonKey,
		}),
		WebSocket: hub,
		OpenAPI:   docs.OpenAPI,

		RateLimits: limits,
		Scopes:     cfg.Scopes,
		// Upstreams verify Keyhub-Identity against it.
		IdentityJWKS: signer.JWKSHandler(),
		Gateway:      gw,
		Webhooks:     webhooks.NewService(store, webhookPolicy, nil),
		Operators:    operator.New(operator.Config{JWTSecret: cfg.JWTSecret, Tokens: cfg.VerifyTokens}),
	})
	return &App{Handler: handler, Store: store, Keys: keys, WebSocket: hub, Feed: feed, Identity: signer, Webhooks: dispatcher, touchers: []*auth.Toucher{keyUsage, userSeen}, usage: keyRequests, cfg: cfg, log: log, draining: draining, Metrics: m, redis: redisClient}, nil
}

// gateAdmitter admits the gateway's requests through the one admission
// step, with the RateLimit headers on the answer.
type gateAdmitter struct{ gate *auth.Gate }

func (a gateAdmitter) Admit(w http.ResponseWriter, r *http.Request, scope keyhub.Scopes) (*keyhub.Principal, error) {
	adm, err := a.gate.Admit(r, auth.Need{Scope: scope})
	if err != nil {
		a.gate.SetHeaders(w.Header(), adm) // a scope refusal has spent the bucket
		return nil, err
	}
	a.gate.SetHeaders(w.Header(), adm)
	return adm.Principal, nil
}

func (gateAdmitter) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	auth.WriteError(w, r, err)
}

// signerIdentities gives the gateway the signed identity and its
// convenience headers for what it sends upstream or answers.
type signerIdentities struct{ signer *identity.Signer }

func (s signerIdentities) Headers(p *keyhub.Principal, audience string) (gateway.IdentityHeaders, error) {
	v, err := s.signer.Headers(p, audience)
	if err != nil {
		return nil, err // not a nil *identity.Headers in an interface
	}
	return v, nil
}

// newRateLimits builds the rate-limit policy: in Redis when REDIS_URL is
// set (global across processes), else in this process. The Redis client
// connects lazily: a Redis that is down at start is an outage like any
// other (failed open or closed per limit), not a reason to refuse to start.
func newRateLimits(cfg config.Config, log *slog.Logger, m *metrics.Metrics) (*ratelimit.Limits, *redis.Client, error) {
	rlCfg := ratelimit.Config{
		TierRPM:      cfg.RateLimitTierRPM,
		AuthFailures: ratelimit.Limit{Rate: cfg.AuthFailureRate, Burst: cfg.AuthFailureBurst, Period: time.Minute},
		Refreshes:    ratelimit.Limit{Rate: cfg.KeyRefreshRate, Burst: cfg.KeyRefreshBurst, Period: time.Hour},
		Creations:    ratelimit.Limit{Rate: cfg.KeyCreateRate, Burst: cfg.KeyCreateBurst, Period: time.Hour},
		Size:         cfg.RateLimitMemoryKeys,
		Log:          log,
		OnReject:     m.RateLimitRejected,
		OnRedisError: func() { m.RedisError("ratelimit") },
	}
	if cfg.RedisURL == "" {
		return ratelimit.New(rlCfg), nil, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	// A limit check must never hold a request long: fail fast, then fail
	// open or closed.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, 500*time.Millisecond, 500*time.Millisecond
	opts.MaxRetries, opts.DialerRetries = -1, 1
	rlCfg.Redis = redis.NewClient(opts)
	return ratelimit.New(rlCfg), rlCfg.Redis, nil
}

// countFailures counts the failed batches of a last-used writer.
func countFailures(m *metrics.Metrics, table string, write auth.TouchWriter) auth.TouchWriter {
	return func(ctx context.Context, ids []uuid.UUID, at []time.Time, from []keyhub.RequestMeta) ([]uuid.UUID, error) {
		skipped, err := write(ctx, ids, at, from)
		if err != nil {
			m.LastUsedFlushFailed(table)
		}
		return skipped, err
	}
}

var errDraining = keyhub.Errorf(keyhub.CodeNotReady, "the server is shutting down")

// Drain makes /readyz answer 503 from now on, while everything else is
// still served: the first step of a graceful shutdown, so that load
// balancers stop sending requests before the listener closes.
func (a *App) Drain() { a.draining.Store(true) }

// Start runs the background work (the change feed, batched last-used
// writes, WebSocket housekeeping) until ctx ends.
func (a *App) Start(ctx context.Context) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.Feed.Run(ctx)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.Store.RunExpirySweeper(ctx, a.cfg.ExpirySweepInterval, a.log)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.usage.Run(ctx)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.Webhooks.Run(ctx)
	}()
	for _, t := range a.touchers {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			t.Run(ctx)
		}()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.WebSocket.Run(ctx)
	}()
	if a.redis != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			<-ctx.Done()
			_ = a.redis.Close() // nothing to flush: limits live in Redis
		}()
	}
}

// Shutdown closes every WebSocket connection with 1001 (going away) and
// waits for them to end, or for ctx. Call it before http.Server.Shutdown,
// which does not know about hijacked connections.
func (a *App) Shutdown(ctx context.Context) error { return a.WebSocket.Shutdown(ctx) }

// Wait returns when the background work has stopped and flushed.
func (a *App) Wait() { a.wg.Wait() }

// FlushUsage writes pending last-used timestamps and request counts now
// (tests, shutdown).
func (a *App) FlushUsage(ctx context.Context) error {
	for _, t := range a.touchers {
		if err := t.Flush(ctx); err != nil {
			return err
		}
	}
	return a.usage.Flush(ctx)
}
