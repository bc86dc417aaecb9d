package app_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A lowered tier closes the newest sockets over its cap wherever they are:
// with the oldest and the newest on one process and the one in between on
// the other, each process alone sees at most two and would keep the one in
// between.
func TestLoweredTierClosesNewestSocketsAcrossProcesses(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, nil)
	key := createKey(t, a, jwt, map[string]any{"name": "daemon", "scopes": []string{"keys:read", "ws:connect"}})
	upgrade(t, key.Secret, a, b)
	oldest := connect(t, a, key.Secret)
	time.Sleep(10 * time.Millisecond)
	between := connect(t, b, key.Secret)
	time.Sleep(10 * time.Millisecond)
	newest := connect(t, a, key.Secret)

	if _, err := a.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'free'"); err != nil {
		t.Fatal(err)
	}
	newest.expectClose(t, websocket.StatusPolicyViolation, revocationBound)
	between.expectClose(t, websocket.StatusPolicyViolation, revocationBound)
	oldest.expectOpen(t)
}

// After a partition longer than the lease, a key can hold more sockets
// than its cap: the partitioned process's lease was swept, and another
// process admitted a new socket meanwhile. When the lost lease comes back
// (with the time it was first taken), the newer socket closes.
func TestLeasesOverCapAfterPartitionAreReconciled(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, map[string]string{"WS_LEASE_TTL": "1s"})
	key := createKey(t, a, jwt, map[string]any{"name": "daemon", "scopes": []string{"ws:connect"}})
	held := connect(t, a, key.Secret)
	// What the sweeper does to a partitioned process's leases; b admits a
	// second socket before a's heartbeat writes its lease back.
	var second *socket
	eventually(t, 5*time.Second, func() string {
		if _, err := a.Pool.Exec(context.Background(), "DELETE FROM ws_connections"); err != nil {
			t.Fatal(err)
		}
		s, status, body := connectURL(t, b.URL, key.Secret)
		if s == nil {
			if status != http.StatusTooManyRequests {
				t.Fatalf("connect to b: %d %s", status, body)
			}
			return "a's heartbeat wrote its lease back first"
		}
		second = s
		return ""
	})
	second.expectClose(t, websocket.StatusPolicyViolation, 5*time.Second)
	held.expectOpen(t)
	eventually(t, waitLimit, func() string {
		if n := liveLeases(t, a, key.ID.String()); n != 1 {
			return fmt.Sprintf("%d live leases after the reconciliation, want 1", n)
		}
		return ""
	})
}
