package postgres_test

import (
	"context"
	"testing"

	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p, err := postgres.Migrator(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	tables := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
			WHERE table_schema = 'public' AND table_name IN ('owners', 'users', 'api_keys', 'api_key_events')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	up, err := p.Up(ctx)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if len(up) == 0 || tables() != 4 {
		t.Fatalf("after up: %d migrations applied, %d tables", len(up), tables())
	}
	down, err := p.DownTo(ctx, 0)
	if err != nil {
		t.Fatalf("down: %v", err)
	}
	if len(down) != len(up) || tables() != 0 {
		t.Fatalf("after down: %d of %d migrations undone, %d tables left", len(down), len(up), tables())
	}
	again, err := p.Up(ctx)
	if err != nil {
		t.Fatalf("up again: %v", err)
	}
	if len(again) != len(up) || tables() != 4 {
		t.Fatalf("after up again: %d migrations, %d tables", len(again), tables())
	}
	if pending, err := p.HasPending(ctx); err != nil || pending {
		t.Fatalf("pending after up: %v %v", pending, err)
	}
}
