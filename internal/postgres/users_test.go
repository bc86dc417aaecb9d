package postgres_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// Provisioning takes whatever bytes a token's email claim holds (invalid
// UTF-8, NUL, thousands of characters) and stores a displayable email and
// owner name instead of failing.
func TestProvisionUserStoresAnyEmail(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := postgres.NewStore(pool, nil)
	ctx := context.Background()
	for _, email := range []string{
		"\xff\xfe\x00" + strings.Repeat("x", 5000),
		"\x00\x01\x02",
		"ok@example.com\x00",
	} {
		id := uuid.New()
		p, _, err := store.ProvisionUser(ctx, id, email)
		if err != nil {
			t.Fatalf("provision %q: %v", email[:min(len(email), 20)], err)
		}
		var stored, owner string
		if err := pool.QueryRow(ctx, "SELECT u.email, o.name FROM users u JOIN owners o ON o.id = u.default_owner_id WHERE u.id = $1", id).Scan(&stored, &owner); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{stored, owner, p.Email} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || utf8.RuneCountInString(s) > 320 {
				t.Errorf("stored %q", s)
			}
		}
		if owner == "" || stored != p.Email {
			t.Errorf("owner %q, email %q, principal's %q", owner, stored, p.Email)
		}
	}
}
