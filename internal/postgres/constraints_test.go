package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
)

// The schema itself must refuse bad rows, whatever code writes them.
func TestConstraintsRejectBadRows(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()

	owner, user, key := uuid.New(), uuid.New(), uuid.New()
	hash := strings.Repeat("ab", 32)
	mustExec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec(`INSERT INTO owners (id, name) VALUES ($1, 'acme')`, owner)
	mustExec(`INSERT INTO users (id, email, default_owner_id) VALUES ($1, 'a@example.com', $2)`, user, owner)
	mustExec(`INSERT INTO api_keys (id, owner_id, user_id, name, key_prefix, key_hash, scopes)
		VALUES ($1, $2, $3, 'ci', 'mk_AbCdEfGh', $4, '{keys:read}')`, key, owner, user, hash)
	mustExec(`INSERT INTO api_key_events (api_key_id, owner_id, actor_user_id, event_type, ip_address)
		VALUES ($1, $2, $3, 'created', '192.0.2.1')`, key, owner, user)

	otherOwner := uuid.New()
	mustExec(`INSERT INTO owners (id, name) VALUES ($1, 'other')`, otherOwner)

	cases := []struct {
		name     string
		sql      string
		args     []any
		sqlstate string
	}{
		{"unknown tier", `INSERT INTO owners (name, tier) VALUES ('x', 'platinum')`, nil, "23514"},
		{"empty owner name", `INSERT INTO owners (name) VALUES ('')`, nil, "23514"},
		{"user without owner", `INSERT INTO users (id, default_owner_id) VALUES ($1, $2)`, []any{uuid.New(), uuid.New()}, "23503"},
		{"duplicate key hash", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash) VALUES ($1, $2, 'dup', 'mk_AbCdEfGh', $3)`, []any{owner, user, hash}, "23505"},
		{"key hash not hex sha-256", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash) VALUES ($1, $2, 'k', 'mk_AbCdEfGh', 'mk_plaintext')`, []any{owner, user}, "23514"},
		{"bad key prefix", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash) VALUES ($1, $2, 'k', 'sk_live', $3)`, []any{owner, user, strings.Repeat("cd", 32)}, "23514"},
		{"unknown scope", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash, scopes) VALUES ($1, $2, 'k', 'mk_AbCdEfGh', $3, '{admin}')`, []any{owner, user, strings.Repeat("cd", 32)}, "23514"},
		{"scope in keyhub's namespace", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash, scopes) VALUES ($1, $2, 'k', 'mk_AbCdEfGh', $3, '{keys:admin}')`, []any{owner, user, strings.Repeat("cd", 32)}, "23514"},
		{"null scope", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash, scopes) VALUES ($1, $2, 'k', 'mk_AbCdEfGh', $3, '{app:read,NULL}')`, []any{owner, user, strings.Repeat("cd", 32)}, "23514"},
		{"untrimmed name", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash) VALUES ($1, $2, ' k ', 'mk_AbCdEfGh', $3)`, []any{owner, user, strings.Repeat("cd", 32)}, "23514"},
		{"name too long", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash) VALUES ($1, $2, $4, 'mk_AbCdEfGh', $3)`, []any{owner, user, strings.Repeat("cd", 32), strings.Repeat("n", 101)}, "23514"},
		{"expiry before creation", `INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash, expires_at) VALUES ($1, $2, 'k', 'mk_AbCdEfGh', $3, now() - interval '1 day')`, []any{owner, user, strings.Repeat("cd", 32)}, "23514"},
		{"replaced by itself", `UPDATE api_keys SET replaced_by = id WHERE id = $1`, []any{key}, "23514"},
		{"replaced by another tenant's key", `UPDATE api_keys SET replaced_by = $2 WHERE id = $1`, []any{key, uuid.New()}, "23503"},
		{"unknown event type", `INSERT INTO api_key_events (api_key_id, owner_id, event_type) VALUES ($1, $2, 'deleted')`, []any{key, owner}, "23514"},
		{"event of another tenant's key", `INSERT INTO api_key_events (api_key_id, owner_id, event_type) VALUES ($1, $2, 'used')`, []any{key, otherOwner}, "23503"},
		{"event details not an object", `INSERT INTO api_key_events (api_key_id, owner_id, event_type, details) VALUES ($1, $2, 'used', '[1]')`, []any{key, owner}, "23514"},
		{"editing the audit trail", `UPDATE api_key_events SET event_type = 'used'`, nil, "23001"},
		{"deleting the audit trail", `DELETE FROM api_key_events`, nil, "23001"},
		{"deleting a key", `DELETE FROM api_keys WHERE id = $1`, []any{key}, "23001"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, tc.sql, tc.args...)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.Fatalf("want SQLSTATE %s, got %v", tc.sqlstate, err)
			}
			if pgErr.Code != tc.sqlstate {
				t.Fatalf("want SQLSTATE %s, got %s (%s)", tc.sqlstate, pgErr.Code, pgErr.Message)
			}
		})
	}
}

// The database's check on scope names (scope_names_valid) and the server's
// (keyhub.ValidProductScope) agree: a name the server accepts in
// PRODUCT_SCOPES can be stored, and one it refuses cannot.
func TestStoredScopeNamesMatchProductScopeRules(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := context.Background()
	for _, name := range []string{
		"app:read", "tasks.v2:write", "mcp:tools.*", "my-app_1:do-it", "a:" + strings.Repeat("b", 62),
		"a:" + strings.Repeat("b", 63), "App:read", "app", "app:", ":read", "1app:read", "app:read:more",
		"app:re ad", "keys:admin", "events:write", "ws:", "app:read\n",
	} {
		var stored bool
		if err := pool.QueryRow(ctx, `SELECT scope_names_valid(ARRAY[$1::text])`, name).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if server := keyhub.ValidProductScope(name) == nil; stored != server {
			t.Errorf("%q: database accepts %v, server accepts %v", name, stored, server)
		}
	}
	// keyhub's own four pass the database's check (and no other name in
	// their namespaces does, above).
	var ok bool
	if err := pool.QueryRow(ctx, `SELECT scope_names_valid(ARRAY['keys:read','keys:write','events:read','ws:connect'])`).Scan(&ok); err != nil || !ok {
		t.Fatalf("builtin scopes refused: %v %v", ok, err)
	}
}
