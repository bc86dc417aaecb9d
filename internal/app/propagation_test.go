package app_test

import (
	"context"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

// TestRevocationPropagation measures what the change feed promises: from
// sending a revoke to process A until process B refuses the key over REST
// and has closed the key's socket (4001), over 100 revokes. It is a
// measurement, not a test of speed: it fails only if a revoke never
// arrives. BENCHMARKS.md records its output:
//
//	KEYHUB_MEASURE=1 make measure-propagation
func TestRevocationPropagation(t *testing.T) {
	if os.Getenv("KEYHUB_MEASURE") == "" {
		t.Skip("a measurement: set KEYHUB_MEASURE=1 (make measure-propagation)")
	}
	a, b, jwt := cluster(t, nil)
	if _, err := a.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'enterprise'"); err != nil {
		t.Fatal(err)
	}
	const runs = 100
	var rest, sockets, both []time.Duration
	for range runs {
		key := createKey(t, a, jwt, map[string]any{"name": "daemon", "scopes": []string{"keys:read", "ws:connect"}})
		b.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
		sock := connect(t, b, key.Secret)

		start := time.Now()
		a.Delete(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "")
		var refused time.Duration
		for refused == 0 {
			r := b.Get(t, "/v1/me", key.Secret)
			switch {
			case r.Status == http.StatusUnauthorized && r.ErrorCode() == "KEY_REVOKED":
				refused = time.Since(start)
			case time.Since(start) > 5*time.Second:
				t.Fatalf("B still answers %d 5s after the revoke", r.Status)
			}
		}
		sock.expectClose(t, 4001, 5*time.Second)
		closed := sock.closedAt.Sub(start)
		rest = append(rest, refused)
		sockets = append(sockets, closed)
		both = append(both, max(refused, closed))
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"B refuses over REST", rest}, {"B's socket closed (4001)", sockets}, {"both", both}} {
		slices.Sort(m.d)
		t.Logf("revoke on A → %-26s p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms  (%d revokes)",
			m.name, ms(m.d[len(m.d)/2]), ms(m.d[len(m.d)*99/100-1]), ms(m.d[len(m.d)-1]), len(m.d))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
