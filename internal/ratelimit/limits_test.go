package ratelimit_test

import (
	"testing"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// TestRequestsPerMinute: /v1/me and the socket's whoami state the rate
// the server enforces, so a configured override must show there, an
// unconfigured tier keeps the table's figure, and a server without rate
// limiting states the table's.
func TestRequestsPerMinute(t *testing.T) {
	t.Parallel()
	limits := ratelimit.New(ratelimit.Config{TierRPM: map[keyhub.Tier]int{keyhub.TierFree: 5}})
	var none *ratelimit.Limits
	for _, tc := range []struct {
		name   string
		limits *ratelimit.Limits
		tier   keyhub.Tier
		want   int
	}{
		{"overridden", limits, keyhub.TierFree, 5},
		{"table", limits, keyhub.TierPro, keyhub.TierPro.Limits().RequestsPerMinute},
		{"nil", none, keyhub.TierTeam, keyhub.TierTeam.Limits().RequestsPerMinute},
	} {
		if got := tc.limits.RequestsPerMinute(tc.tier); got != tc.want {
			t.Errorf("%s: RequestsPerMinute(%s) = %d, want %d", tc.name, tc.tier, got, tc.want)
		}
	}
}
