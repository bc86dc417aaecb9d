package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/postgres"
)

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 1 || (args[0] != "up" && args[0] != "down" && args[0] != "status") {
		return usageError("usage: keyhub migrate up|down|status")
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	// A migration job often starts with its database (compose, a deploy
	// pipeline): it waits like serve does.
	if err := postgres.WaitReady(ctx, pool, cfg.DatabaseWait, newLogger(cfg, stdout)); err != nil {
		return err
	}
	p, err := postgres.Migrator(pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer p.Close()
	switch args[0] {
	case "up":
		results, err := p.Up(ctx)
		for _, r := range results {
			fmt.Fprintf(stdout, "applied %s (%s)\n", r.Source.Path, r.Duration.Round(1e6))
		}
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		if len(results) == 0 {
			fmt.Fprintln(stdout, "no pending migrations")
		}
	case "down":
		r, err := p.Down(ctx)
		if err != nil {
			return fmt.Errorf("migrate down: %w", err)
		}
		fmt.Fprintf(stdout, "rolled back %s\n", r.Source.Path)
	case "status":
		statuses, err := p.Status(ctx)
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		for _, s := range statuses {
			applied := "pending"
			if !s.AppliedAt.IsZero() {
				applied = "applied " + s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			fmt.Fprintf(stdout, "%-45s %s\n", s.Source.Path, applied)
		}
	default:
		return fmt.Errorf("usage: keyhub migrate up|down|status")
	}
	return nil
}
