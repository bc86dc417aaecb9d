package ws

import (
	"testing"
	"time"
)

// TestRetryAfterMsRoundsUp: waiting retry_after_ms is always enough.
func TestRetryAfterMsRoundsUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		delay time.Duration
		want  int64
	}{
		{0, 1},
		{200 * time.Microsecond, 1},
		{time.Millisecond, 1},
		{995*time.Millisecond + 400*time.Microsecond, 996},
		{time.Second, 1000},
	} {
		if got := retryAfterMs(tc.delay); got != tc.want {
			t.Errorf("retryAfterMs(%v) = %d, want %d", tc.delay, got, tc.want)
		}
	}
}
