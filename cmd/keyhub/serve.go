package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	keyhubspec "github.com/keyhub/keyhub"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/devissuer"
	"github.com/keyhub/keyhub/internal/httpapi"
	"github.com/keyhub/keyhub/internal/jwtverify"
	"github.com/keyhub/keyhub/internal/postgres"
)

// newLogger logs JSON lines at the configured level.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// serve runs the API server until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)

	// Background work stops with bgCtx, after the server has drained.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	defer func() {
		stopBackground()
		background.Wait()
	}()

	pool, err := postgres.Open(bgCtx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := postgres.NewStore(pool)

	var devJWKS http.Handler
	if cfg.Dev {
		issuer, err := devissuer.LoadOrCreate(devKeyDir(cfg))
		if err != nil {
			return fmt.Errorf("dev issuer: %w", err)
		}
		devJWKS = issuer.JWKSHandler()
		log.Warn("DEV MODE: keyhub is its own JWT issuer; tokens come from `keyhub dev token`. Never use this in production.",
			"issuer", cfg.JWTIssuer, "jwks", cfg.JWKSURL)
	}
	tokens, err := jwtverify.New(bgCtx, jwtverify.Config{
		JWKSURL:        cfg.JWKSURL,
		ES256PublicKey: cfg.JWTPublicKey,
		RSAPublicKey:   cfg.JWTRSAPublicKey,
		HS256Secret:    cfg.JWTSecret,
		Issuer:         cfg.JWTIssuer,
		Audience:       cfg.JWTAudience,
		Leeway:         cfg.JWTLeeway,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	if !tokens.Configured() {
		log.Warn("no JWT key source configured (SUPABASE_URL, SUPABASE_JWT_*): dashboard sign-in answers AUTH_NOT_CONFIGURED")
	}

	keyUsage := auth.NewToucher("api_keys.last_used_at", store.TouchKeys, cfg.LastUsedFlushInterval, log)
	userSeen := auth.NewToucher("users.last_seen_at", store.TouchUsers, cfg.LastUsedFlushInterval, log)
	for _, t := range []*auth.Toucher{keyUsage, userSeen} {
		background.Add(1)
		go func() {
			defer background.Done()
			t.Run(bgCtx)
		}()
	}
	keys := auth.NewApiKeyCache(store, auth.KeyCacheConfig{
		TTL:          cfg.KeyCacheTTL,
		Size:         cfg.KeyCacheSize,
		NegativeTTL:  cfg.NegativeCacheTTL,
		NegativeSize: cfg.NegativeCacheSize,
	}, keyUsage)
	store.Observe(keys)
	authn := auth.New(auth.Config{Keys: keys, Tokens: tokens, Users: store, SeenUsers: userSeen})

	handler := httpapi.NewServer(httpapi.Deps{
		Store:          store,
		Auth:           authn,
		Log:            log,
		TrustedProxies: cfg.TrustedProxies,
		DevJWKS:        devJWKS,
		OpenAPI:        keyhubspec.OpenAPI,
	})

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return bgCtx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("keyhub listening", "addr", ln.Addr().String(), "version", version, "env", cfg.Env, "dev", cfg.Dev)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown incomplete", "err", err)
	}
	log.Info("stopped")
	return nil
}
