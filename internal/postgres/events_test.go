package postgres_test

import (
	"net/netip"
	"testing"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// The client address of a change is stored in inet as the domain's
// netip.Addr and read back as one: IPv4 seen over IPv6 as IPv4, no zone,
// and an unknown address as NULL.
func TestEventAddressRoundTrip(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := postgres.NewStore(pool, nil)
	ctx := t.Context()
	for _, tc := range []struct{ sent, stored string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8::1", "2001:db8::1"},
		{"fe80::1%eth0", "fe80::1"},
		{"", ""},
	} {
		var sent netip.Addr
		if tc.sent != "" {
			sent = netip.MustParseAddr(tc.sent)
		}
		p, _, err := store.ProvisionUser(ctx, uuid.New(), "ip@example.com")
		if err != nil {
			t.Fatal(err)
		}
		k, err := store.CreateKey(ctx, &p, keyhub.CreateKeyInput{Name: "k", Scopes: keyhub.BuiltinScopes}, keyhub.RequestMeta{IP: sent})
		if err != nil {
			t.Fatal(err)
		}
		events, _, err := store.ListEvents(ctx, p.OwnerID, keyhub.EventFilter{KeyID: &k.Key.ID}, keyhub.Page{})
		if err != nil || len(events) != 1 {
			t.Fatalf("%q: events %v %v", tc.sent, events, err)
		}
		var inSQL *string
		if err := pool.QueryRow(ctx, "SELECT host(ip_address) FROM api_key_events WHERE id = $1", events[0].ID).Scan(&inSQL); err != nil {
			t.Fatal(err)
		}
		got := ""
		if events[0].IP.IsValid() {
			got = events[0].IP.String()
		}
		if got != tc.stored || (inSQL == nil) != (tc.stored == "") || (inSQL != nil && *inSQL != tc.stored) {
			t.Fatalf("sent %q: read back %q, stored %v; want %q", tc.sent, got, inSQL, tc.stored)
		}
	}
}
