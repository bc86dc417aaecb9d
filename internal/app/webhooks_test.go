package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// TestWebhookOutboxSharedByTwoProcessesDeliversOnce: two processes share the
// outbox. Every delivery reaches the receiver exactly once (the lease is
// far longer than an attempt, so not even a sequential duplicate), no
// webhook-id is ever being received twice at the same time, and the
// events of writes on either process are delivered.
func TestWebhookOutboxSharedByTwoProcessesDeliversOnce(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, map[string]string{
		"WEBHOOKS_ALLOW_INSECURE": "1",
		"WEBHOOKS_POLL_INTERVAL":  "10ms",
		"WEBHOOKS_CONCURRENCY":    "4",
	})
	rcv := apitest.NewWebhookReceiver(t, "")
	rcv.Delay.Store(int64(15 * time.Millisecond)) // an attempt takes a while: room for a second claim to overlap
	const hooks = 3
	for i := range hooks {
		var w api.CreatedWebhook
		path := fmt.Sprintf("/hook/%d", i)
		a.Post(t, "/v1/webhooks", jwt, map[string]any{"url": rcv.Server.URL + path, "event_types": []string{"created", "refreshed", "revoked"}}).
			Want(t, http.StatusCreated, "").JSON(t, &w)
		rcv.Expect(path, w.Secret)
	}
	// Each refresh writes refreshed + created (and, past the first, the
	// revoked end of the previous grace): a burst of events on both sides.
	key := createKey(t, a, jwt, nil)
	const refreshes = 12
	for i := range refreshes {
		env := []*apitest.Env{a, b}[i%2]
		var r api.Refreshed
		env.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", jwt, map[string]any{"grace_period": 60}).Want(t, http.StatusCreated, "").JSON(t, &r)
		key = r.NewKey
	}
	var events api.EventList
	a.Get(t, "/v1/events?limit=200", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	want := hooks * len(events.Data)

	eventually(t, 30*time.Second, func() string {
		if n := len(rcv.Received()); n < want {
			return fmt.Sprintf("%d of %d deliveries arrived", n, want)
		}
		return ""
	})
	// Anything still in flight or claimed twice would arrive now: wait
	// until both processes have settled every delivery and finished every
	// attempt they recorded (an attempt is recorded in the claim's own
	// transaction), so no claim can come after and none is still sending.
	eventually(t, 30*time.Second, func() string {
		var pending, unfinished int
		if err := a.Pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),
			(SELECT count(*) FROM webhook_attempts WHERE finished_at IS NULL)`).Scan(&pending, &unfinished); err != nil {
			t.Fatal(err)
		}
		if pending > 0 || unfinished > 0 {
			return fmt.Sprintf("%d deliveries pending, %d attempts unfinished", pending, unfinished)
		}
		return ""
	})
	overlaps, bad := rcv.Problems()
	if len(overlaps) > 0 || len(bad) > 0 {
		t.Fatalf("received at once twice: %v; bad signatures: %v", overlaps, bad)
	}
	perHook := map[string]map[int64]int{}
	ids := map[string]int{}
	for _, m := range rcv.Received() {
		var e api.Event
		if err := json.Unmarshal(m.Body, &e); err != nil {
			t.Fatal(err)
		}
		if perHook[m.Path] == nil {
			perHook[m.Path] = map[int64]int{}
		}
		perHook[m.Path][e.ID]++
		ids[m.ID]++
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("webhook-id %s arrived %d times", id, n)
		}
	}
	for path, got := range perHook {
		for _, e := range events.Data {
			if got[e.ID] != 1 {
				t.Fatalf("%s got event %d (%s) %d times", path, e.ID, e.Type, got[e.ID])
			}
		}
	}
	if len(perHook) != hooks || len(rcv.Received()) != want {
		t.Fatalf("%d hooks, %d messages, want %d", len(perHook), len(rcv.Received()), want)
	}
}
