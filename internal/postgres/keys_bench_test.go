package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// BenchmarkCreateAndRevoke measures one create and one revoke of a key,
// each a transaction that locks the user's row and re-reads the acting
// credential, by a dashboard user and by an API key.
//
//	KEYHUB_TEST_DATABASE_URL=... go test -run '^$' -bench CreateAndRevoke -benchtime 2s ./internal/postgres/
func BenchmarkCreateAndRevoke(b *testing.B) {
	pool, _ := pgtest.NewDB(b)
	store := postgres.NewStore(pool, nil)
	ctx := context.Background()
	user, _, err := store.ProvisionUser(ctx, uuid.New(), "bench@example.com")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE owners SET tier = 'team' WHERE id = $1", user.OwnerID); err != nil {
		b.Fatal(err)
	}
	acting, err := store.CreateKey(ctx, &user, keyhub.CreateKeyInput{Name: "acting", Scopes: keyhub.BuiltinScopes}, keyhub.RequestMeta{})
	if err != nil {
		b.Fatal(err)
	}
	byKey, err := store.KeyForAuth(ctx, apikey.HashHex(acting.Secret))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		p    keyhub.Principal
	}{{"user", user}, {"key", byKey.Principal}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				k, err := store.CreateKey(ctx, &bc.p, keyhub.CreateKeyInput{Name: "b", Scopes: keyhub.ScopeKeysRead}, keyhub.RequestMeta{})
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := store.RevokeKey(ctx, &bc.p, k.Key.ID, keyhub.RequestMeta{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
