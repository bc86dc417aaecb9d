package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"

	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// newMigrator returns a pool on a new empty database and a migrator on it,
// both closed when the test ends.
func newMigrator(t *testing.T) (*pgxpool.Pool, *goose.Provider) {
	t.Helper()
	pool, err := postgres.Open(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p, err := postgres.Migrator(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return pool, p
}

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, p := newMigrator(t)

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

// The lineage migration gives keys refreshed before it the lineage of the
// first key of their chain, so their successors keep sharing one bucket.
func TestLineageMigrationFollowsRefreshChains(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, p := newMigrator(t)
	// Up to the migration before the lineage one.
	if _, err := p.UpTo(ctx, 20261206072800); err != nil {
		t.Fatal(err)
	}
	// Two chains: first → second → third, and a key never refreshed.
	if _, err := pool.Exec(ctx, `
		INSERT INTO owners (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'o');
		INSERT INTO users (id, default_owner_id) VALUES ('00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-00000000000a');
		INSERT INTO api_keys (id, owner_id, user_id, name, key_prefix, key_hash) VALUES
			('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'third', 'mk_AAAAAAAA', repeat('3', 64)),
			('00000000-0000-0000-0000-000000000004', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'alone', 'mk_AAAAAAAA', repeat('4', 64));
		INSERT INTO api_keys (id, owner_id, user_id, name, key_prefix, key_hash, replaced_by) VALUES
			('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'second', 'mk_AAAAAAAA', repeat('2', 64), '00000000-0000-0000-0000-000000000003');
		INSERT INTO api_keys (id, owner_id, user_id, name, key_prefix, key_hash, replaced_by) VALUES
			('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'first', 'mk_AAAAAAAA', repeat('1', 64), '00000000-0000-0000-0000-000000000002');
	`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, "SELECT name, lineage_id::text FROM api_keys ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var name, lineage string
		if err := rows.Scan(&name, &lineage); err != nil {
			t.Fatal(err)
		}
		got[name] = lineage
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	first, alone := "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000004"
	want := map[string]string{"first": first, "second": first, "third": first, "alone": alone}
	for name, lineage := range want {
		if got[name] != lineage {
			t.Errorf("%s: lineage %s, want %s (all: %v)", name, got[name], lineage, got)
		}
	}
}

// The key-parents migration rebuilds, from the audit trail, whom each
// existing key was obtained through, as the store would have recorded it:
// the creating key (not a key refreshing itself), inherited along a
// refresh chain, and passed from a replaced key to the newest of its chain.
func TestKeyParentsMigrationFollowsTheAuditTrail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, p := newMigrator(t)
	if _, err := p.UpTo(ctx, 20261206084500); err != nil { // the lineage migration
		t.Fatal(err)
	}
	// p was created by the user and refreshed by it into p2; c was created
	// by p and refreshed itself into c2; g was created by c2; u is alone.
	if _, err := pool.Exec(ctx, `
		INSERT INTO owners (id, name) VALUES ('00000000-0000-0000-0000-00000000000a', 'o');
		INSERT INTO users (id, default_owner_id) VALUES ('00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-00000000000a');
		INSERT INTO api_keys (id, owner_id, user_id, name, key_prefix, key_hash, created_at, lineage_id) VALUES
			('00000000-0000-0000-0000-0000000000f2', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'p2', 'mk_AAAAAAAA', repeat('1', 64), now() - interval '1 minute', '00000000-0000-0000-0000-0000000000f1'),
			('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'c2', 'mk_AAAAAAAA', repeat('2', 64), now() - interval '3 minutes', '00000000-0000-0000-0000-0000000000c1'),
			('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'u', 'mk_AAAAAAAA', repeat('5', 64), now() - interval '9 minutes', '00000000-0000-0000-0000-0000000000a1');
		INSERT INTO api_keys (id, owner_id, user_id, name, key_prefix, key_hash, created_at, lineage_id, replaced_by) VALUES
			('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'p', 'mk_AAAAAAAA', repeat('3', 64), now() - interval '9 minutes', '00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-0000000000f2'),
			('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'c', 'mk_AAAAAAAA', repeat('4', 64), now() - interval '5 minutes', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000c2');
		INSERT INTO api_keys (id, owner_id, user_id, name, key_prefix, key_hash, created_at, lineage_id) VALUES
			('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', 'g', 'mk_AAAAAAAA', repeat('6', 64), now() - interval '2 minutes', '00000000-0000-0000-0000-0000000000e1');
		INSERT INTO api_key_events (api_key_id, owner_id, actor_user_id, actor_key_id, event_type, details) VALUES
			('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', NULL, 'created', NULL),
			('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', NULL, 'created', NULL),
			('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-0000000000f1', 'created', NULL),
			('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-0000000000c1', 'created', '{"replaces":"00000000-0000-0000-0000-0000000000c1"}'),
			('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-0000000000c2', 'created', NULL),
			('00000000-0000-0000-0000-0000000000f2', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b', NULL, 'created', '{"replaces":"00000000-0000-0000-0000-0000000000f1"}');
	`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT k.name || '->' || parent.name FROM api_key_parents e
		JOIN api_keys k ON k.id = e.key_id JOIN api_keys parent ON parent.id = e.parent_id ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var edges []string
	for rows.Next() {
		var edge string
		if err := rows.Scan(&edge); err != nil {
			t.Fatal(err)
		}
		edges = append(edges, edge)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(edges, " "), "c->p2 c2->p2 g->c2"; got != want {
		t.Fatalf("edges %q, want %q", got, want)
	}
}
