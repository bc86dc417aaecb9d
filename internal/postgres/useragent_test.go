package postgres_test

import (
	"context"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// Whatever bytes a User-Agent header holds (invalid UTF-8, NUL, control
// characters, thousands of characters), create, refresh and revoke succeed
// and their events keep a displayable user agent: PostgreSQL refuses NUL
// and invalid UTF-8 in text, and the write used to fail with a 500.
func TestEventsStoreAnyUserAgent(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := postgres.NewStore(pool, nil)
	ctx := context.Background()
	for _, ua := range []string{
		"curl/8\xff",
		"agent\x00with NUL",
		"\x1b[31mred\x1b[0m\r\n",
		"\xfe" + strings.Repeat("é", 5000),
	} {
		p, _, err := store.ProvisionUser(ctx, uuid.New(), "ua@example.com")
		if err != nil {
			t.Fatal(err)
		}
		meta := keyhub.RequestMeta{UserAgent: ua}
		created, err := store.CreateKey(ctx, &p, keyhub.CreateKeyInput{Name: "ua", Scopes: p.Scopes}, meta)
		if err != nil {
			t.Fatalf("create with user agent %q: %v", ua[:min(len(ua), 20)], err)
		}
		refreshed, err := store.RefreshKey(ctx, &p, created.Key.ID, keyhub.RefreshInput{}, meta)
		if err != nil {
			t.Fatalf("refresh with user agent %q: %v", ua[:min(len(ua), 20)], err)
		}
		if _, _, err := store.RevokeKey(ctx, &p, refreshed.New.Key.ID, meta); err != nil {
			t.Fatalf("revoke with user agent %q: %v", ua[:min(len(ua), 20)], err)
		}
		events, _, err := store.ListEvents(ctx, p.OwnerID, keyhub.EventFilter{}, keyhub.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) < 4 { // created, refreshed, created (the replacement), revoked
			t.Fatalf("%d events", len(events))
		}
		for _, e := range events {
			if e.UserAgent == "" || !utf8.ValidString(e.UserAgent) || strings.ContainsFunc(e.UserAgent, unicode.IsControl) || utf8.RuneCountInString(e.UserAgent) > 512 {
				t.Errorf("%s event stored user agent %q", e.Type, e.UserAgent)
			}
		}
	}
}
