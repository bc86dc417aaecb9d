// Package postgres is keyhub's database side: it opens the pool, applies
// the goose migrations, and implements the domain's rules (provisioning,
// key lifecycle, audit trail) in transactions over the sqlc-generated
// queries. Generated rows never leave this package: they are converted to
// keyhub types here.
package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/keyhub/keyhub/db"
)

// Open connects a pool to url and checks that the server answers. The
// health check keeps dead connections out of the pool after the database
// restarts, so readiness recovers on its own.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL")
	}
	cfg.HealthCheckPeriod = 10 * time.Second
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return pool, nil
}

// Migrator returns a goose provider over the embedded migrations. A
// session lock makes concurrent starts of several processes safe.
func Migrator(pool *pgxpool.Pool, log *slog.Logger) (*goose.Provider, error) {
	fsys, err := fs.Sub(db.Migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations folder: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker)}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	return goose.NewProvider(goose.DialectPostgres, stdlib.OpenDBFromPool(pool), fsys, opts...)
}

// MigrateUp applies every pending migration.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	p, err := Migrator(pool, log)
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// WaitReady pings the database until it answers or maxWait has passed,
// logging each failed attempt, so that a process started together with
// its database (docker compose, a host reboot) waits instead of failing at
// once, and one whose database stays away fails with a clear message.
func WaitReady(ctx context.Context, pool *pgxpool.Pool, maxWait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(maxWait)
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pingCtx, cancel := context.WithTimeout(ctx, max(min(5*time.Second, time.Until(deadline)), time.Second))
		err := pool.Ping(pingCtx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("database reachable", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return fmt.Errorf("database not reachable after %d attempt(s) within DATABASE_WAIT=%s: %w", attempt, maxWait, err)
		}
		wait := min(delay, remaining)
		log.Warn("waiting for the database", "attempt", attempt, "retry_in", wait, "gives_up_in", remaining, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
