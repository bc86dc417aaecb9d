package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
)

// keyhub_key_status (the SQL definition every query uses) and
// keyhub.Key.StatusAt (the same rule for decisions in Go) agree, to the
// microsecond at the expiry's boundary.
func TestKeyStatusMatchesSQL(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	before, after := at.Add(-time.Microsecond), at.Add(time.Microsecond)
	for _, tc := range []struct {
		name             string
		revoked, expires *time.Time
	}{
		{"never expires", nil, nil},
		{"expires later", nil, &after},
		{"expires at the instant", nil, &at},
		{"expired", nil, &before},
		{"revoked", &before, nil},
		{"revoked, then expired", &before, &before},
		{"revoked, expiry to come", &before, &after},
	} {
		var sqlStatus string
		var active bool
		if err := pool.QueryRow(context.Background(),
			"SELECT keyhub_key_status($1, $2, $3), keyhub_key_active($1, $2, $3)", tc.revoked, tc.expires, at).Scan(&sqlStatus, &active); err != nil {
			t.Fatal(err)
		}
		k := keyhub.Key{RevokedAt: tc.revoked, ExpiresAt: tc.expires}
		if goStatus := k.StatusAt(at); string(goStatus) != sqlStatus || active != (goStatus == keyhub.KeyActive) {
			t.Errorf("%s: SQL says %s (active %v), Go says %s", tc.name, sqlStatus, active, goStatus)
		}
	}
}
