package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/keyhub/keyhub/internal/app"
	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/postgres"
)

// newLogger logs JSON lines at the configured level.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: durationsInMs}))
}

// durationsInMs writes a time.Duration attribute "x" as "x_ms" in
// milliseconds: slog's JSON would write nanoseconds, which nobody reads
// right.
func durationsInMs(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key+"_ms", float64(a.Value.Duration().Microseconds())/1000)
	}
	return a
}

// serveMetrics serves GET /metrics on its own listener, apart from the
// API: the figures describe tenants' activity and the process's insides,
// which the public listener must not show.
func serveMetrics(addr string, a *app.App, log *slog.Logger, serveErr chan<- error) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.Metrics.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("metrics: %w", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	return srv, nil
}

// serve runs the API server until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)

	// Background work outlives ctx: it stops after the server has drained.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()

	pool, err := postgres.Open(bgCtx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.WaitReady(ctx, pool, cfg.DatabaseWait, log); err != nil {
		return err
	}
	a, err := app.New(bgCtx, cfg, pool, log)
	if err != nil {
		return err
	}
	a.Start(bgCtx)
	defer a.Wait()
	defer stopBackground() // runs before Wait: stop, then wait for the final flush

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	}
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return bgCtx },
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	if cfg.DebugAddr != "" {
		debugSrv, err := startDebug(cfg.DebugAddr, log)
		if err != nil {
			srv.Close()
			return err
		}
		defer debugSrv.Close()
	}
	if cfg.MetricsAddr != "" {
		metricsSrv, err := serveMetrics(cfg.MetricsAddr, a, log, serveErr)
		if err != nil {
			srv.Close()
			return err
		}
		defer metricsSrv.Close() // after the drain: scrapes see the shutdown
	}
	log.Info("keyhub listening", "addr", ln.Addr().String(), "version", version, "env", cfg.Env, "dev", cfg.Dev)
	dashboardURL := "http://" + cfg.LocalAddr() + "/dashboard/"
	log.Info("dashboard: open "+dashboardURL+" in a browser", "url", dashboardURL)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Readiness fails at once while the listener keeps serving for the
	// drain delay: load balancers see the 503 and stop routing here before
	// any connection is refused. Keep-alives end, so clients reconnect to
	// another instance.
	log.Info("shutting down: draining", "drain_delay", cfg.ShutdownDrainDelay, "timeout", cfg.ShutdownTimeout)
	a.Drain()
	srv.SetKeepAlivesEnabled(false)
	time.Sleep(cfg.ShutdownDrainDelay)
	log.Info("shutting down: closing the listener and waiting for requests and sockets")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Sockets (close handshakes) and requests in flight finish side by
	// side: slow sockets must not use up the time the requests need.
	socketsDone := make(chan struct{})
	go func() {
		defer close(socketsDone)
		if err := a.Shutdown(shutdownCtx); err != nil {
			log.Warn("websocket shutdown incomplete", "err", err)
		}
	}()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown incomplete", "err", err)
	}
	<-socketsDone
	log.Info("stopped")
	return nil
}
