package ws_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/redistest"
)

// Fifty simultaneous upgrades with a free key (one connection allowed):
// exactly one wins, the rest get 429 before any upgrade.
func TestConcurrentConnectsExactlyOneWins(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)

	const attempts = 50
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		winners  []*websocket.Conn
		statuses = map[int]int{}
	)
	start := make(chan struct{})
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, wsURL(env, "/v1/ws"), &websocket.DialOptions{HTTPHeader: bearer(key.Secret), HTTPClient: env.Server.Client()})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, c)
				statuses[http.StatusSwitchingProtocols]++
			case resp != nil:
				statuses[resp.StatusCode]++
			default:
				statuses[0]++
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, c := range winners {
		t.Cleanup(func() { c.CloseNow() })
	}
	if len(winners) != 1 || statuses[http.StatusTooManyRequests] != attempts-1 {
		t.Fatalf("want 1 winner and %d × 429, got %v", attempts-1, statuses)
	}
	_, status, body := dial(t, env, "/v1/ws", bearer(key.Secret))
	if status != http.StatusTooManyRequests || errorCode(t, body) != "TOO_MANY_CONNECTIONS" {
		t.Fatalf("want 429 TOO_MANY_CONNECTIONS, got %d %s", status, body)
	}

	// Closing the winner frees its slot.
	winners[0].Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(waitLimit)
	for {
		c, status, _ := dial(t, env, "/v1/ws", bearer(key.Secret))
		if c != nil {
			readWelcome(t, c)
			break
		}
		if status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("reconnect after close: %d", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Over the limit after first-message authentication: closed with 1008.
// Over the connection limit after a first message: 1013 (try again later),
// which clients retry with backoff, as they retry the upgrade's 429.
func TestFirstMessageOverLimitCloses1013(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	readWelcome(t, mustDial(t, env, "/v1/ws", bearer(key.Secret)))

	c := mustDial(t, env, "/v1/ws", nil)
	send(t, c, map[string]any{"type": "auth", "api_key": key.Secret})
	expectClose(t, c, websocket.StatusTryAgainLater, waitLimit)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	c := connectKey(t, env, key)

	// Free tier: 60 messages a minute. The 61st is refused, not answered.
	for i := range 61 {
		send(t, c, map[string]any{"type": "ping", "id": i})
	}
	for i := range 60 {
		if m := read(t, c); m.str("type") != "pong" || m["id"] != float64(i) {
			t.Fatalf("message %d: %v", i, m)
		}
	}
	m := read(t, c)
	if m.str("type") != "error" || m.str("code") != "RATE_LIMITED" || m["retry_after_ms"].(float64) <= 0 {
		t.Fatalf("want RATE_LIMITED, got %v", m)
	}
	// Keeping on: closed with 1008.
	for range 12 {
		_ = c.Write(context.Background(), websocket.MessageText, []byte(`{"type":"ping"}`))
	}
	expectClose(t, c, websocket.StatusPolicyViolation, waitLimit)
}

// maxRateStrikesForTest is the server's warnings per minute before it
// closes (ws.maxRateStrikes).
const maxRateStrikesForTest = 10

// Warnings are counted in a window, not since the last allowed message: a
// client slipping an allowed message between bursts over the rate is still
// closed with 1008 after maxRateStrikes warnings.
func TestRateLimitWarningsCountedPerWindow(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)
	var me api.Me
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	// Enterprise: 10,000 messages a minute, one every 6 ms, so short pauses
	// let an allowed message through between bursts.
	if _, err := env.Pool.Exec(context.Background(), `UPDATE owners SET tier = 'enterprise' WHERE id = $1`, me.OwnerID); err != nil {
		t.Fatal(err)
	}
	c := mustDial(t, env, "/v1/ws", bearer(key.Secret))
	if tier := readWelcome(t, c).str("tier"); tier != "enterprise" {
		t.Fatalf("tier %q, want enterprise", tier)
	}
	closed := make(chan websocket.StatusCode, 1)
	var warnings, answers atomic.Int64
	go func() {
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				closed <- websocket.CloseStatus(err)
				return
			}
			if bytes.Contains(data, []byte(`"RATE_LIMITED"`)) {
				warnings.Add(1)
			}
			answers.Add(1)
		}
	}()
	// answered waits until the server has answered n messages in all, so
	// that a burst reaches it only after the pause before it.
	answered := func(n int64) bool {
		for answers.Load() < n {
			select {
			case code := <-closed:
				if code != websocket.StatusPolicyViolation {
					t.Fatalf("closed with %d, want 1008", code)
				}
				return false
			case <-time.After(time.Millisecond):
			}
		}
		return true
	}
	ping := []byte(`{"type":"ping"}`)
	sent := int64(0)
	for range 10000 { // empties the bucket
		if err := c.Write(context.Background(), websocket.MessageText, ping); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if !answered(sent) {
		t.Fatal("closed before any warning")
	}
	// Bursts after short pauses: the first messages of each pass on the
	// tokens refilled meanwhile, the rest are warned. A burst is as long as
	// the pause refilled (one message every 6 ms) plus 6, so that a loaded
	// machine, whose pauses last longer, still gets warnings from every
	// burst (a fixed burst of 4 was refilled whole there, and no warning
	// came for a minute).
	deadline := time.Now().Add(time.Minute)
	last := time.Now()
	for warnings.Load() < 3*maxRateStrikesForTest && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // refills at least one message
		for range int(time.Since(last)/(6*time.Millisecond)) + 6 {
			_ = c.Write(context.Background(), websocket.MessageText, ping)
			sent++
		}
		if !answered(sent) {
			return // closed with 1008
		}
		last = time.Now()
	}
	t.Fatalf("%d warnings, with allowed messages between them, and the connection is still open", warnings.Load())
}

func TestMessageTooBigCloses1009(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	c := connectKey(t, env, key)

	c.SetReadLimit(1 << 20) // the pong echoes the big id
	// Free tier: 64 KiB. A message just under it is fine.
	send(t, c, map[string]any{"type": "ping", "id": strings.Repeat("x", 60<<10)})
	if m := read(t, c); m.str("type") != "pong" {
		t.Fatalf("want pong, got type %q", m.str("type"))
	}
	big := `{"type":"ping","id":"` + strings.Repeat("x", 65<<10) + `"}`
	_ = c.Write(context.Background(), websocket.MessageText, []byte(big))
	expectClose(t, c, websocket.StatusMessageTooBig, waitLimit)
}

func TestProtocol(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	c := connectKey(t, env, key)

	send(t, c, map[string]any{"type": "ping", "id": "abc"})
	if m := read(t, c); m.str("type") != "pong" || m.str("id") != "abc" {
		t.Fatalf("pong: %v", m)
	}
	send(t, c, map[string]any{"type": "whoami"})
	if m := read(t, c); m.str("type") != "whoami" || m.str("auth_method") != "api_key" || m.str("key_prefix") != key.Prefix {
		t.Fatalf("whoami: %v", m)
	}
	send(t, c, map[string]any{"type": "dance"})
	if m := read(t, c); m.str("type") != "error" || m.str("code") != "UNKNOWN_TYPE" {
		t.Fatalf("unknown type: %v", m)
	}
	// Still open after the error.
	send(t, c, map[string]any{"type": "ping", "id": 7})
	if m := read(t, c); m.str("type") != "pong" {
		t.Fatalf("after error: %v", m)
	}
}

func TestShutdownCloses1001(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	jwt := env.Token(t, "alice@example.com")
	c := mustDial(t, env, "/v1/ws", bearer(jwt))
	readWelcome(t, c)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = env.App.Shutdown(ctx)
	}()
	expectClose(t, c, websocket.StatusGoingAway, waitLimit)
}

// Connections waiting to authenticate by first message are capped per
// client address (after TRUSTED_PROXIES), so one client cannot take the
// slots every daemon relies on; other addresses still get theirs, and a
// slot comes back when its connection ends.
func TestPendingCapPerClientIP(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "WS_PENDING_PER_IP": "2"})
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }

	first := mustDial(t, env, "/v1/ws", from("203.0.113.7"))
	mustDial(t, env, "/v1/ws", from("203.0.113.7"))
	_, status, body := dial(t, env, "/v1/ws", from("203.0.113.7"))
	if status != http.StatusTooManyRequests || errorCode(t, body) != "TOO_MANY_CONNECTIONS" {
		t.Fatalf("third pending connection from one address: %d %s, want 429 TOO_MANY_CONNECTIONS", status, body)
	}
	mustDial(t, env, "/v1/ws", from("203.0.113.8"))

	first.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(waitLimit)
	for {
		c, status, _ := dial(t, env, "/v1/ws", from("203.0.113.7"))
		if c != nil {
			break
		}
		if status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after a pending connection ended: %d", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closeReasonOf reads until the connection closes and returns the reason.
func closeReasonOf(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("want a close, got %v", err)
		}
		// Limits are worth a retry later (1013); refused credentials not (1008).
		want := websocket.StatusPolicyViolation
		if ce.Reason == "RATE_LIMITED" || ce.Reason == "TOO_MANY_CONNECTIONS" {
			want = websocket.StatusTryAgainLater
		}
		if ce.Code != want {
			t.Fatalf("closed %q with %d, want %d", ce.Reason, ce.Code, want)
		}
		return ce.Reason
	}
}

// guessFirstMessage opens a connection from ip, authenticates by first
// message with a well-formed key that does not exist, and returns the
// close reason.
func guessFirstMessage(t *testing.T, env *apitest.Env, ip string) string {
	t.Helper()
	c := mustDial(t, env, "/v1/ws", http.Header{"X-Forwarded-For": {ip}})
	send(t, c, map[string]string{"type": "auth", "api_key": "mk_" + strings.Repeat("A", 43)})
	return closeReasonOf(t, c)
}

// Guessing keys through first-message authentication or tickets spends
// the same per-address failed-authentication bucket as the REST API: past
// the burst the address's upgrades are 429 before any credential is read;
// another address is not affected.
func TestFailedFirstMessageAuthLimitedPerClientIP(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "AUTH_FAILURE_BURST": "2"})
	for range 2 {
		if reason := guessFirstMessage(t, env, "203.0.113.20"); reason != "INVALID_API_KEY" {
			t.Fatalf("a guess within the burst: closed %q", reason)
		}
	}
	for _, path := range []string{"/v1/ws", "/v1/ws?ticket=forged"} {
		_, status, body := dial(t, env, path, http.Header{"X-Forwarded-For": {"203.0.113.20"}})
		if status != http.StatusTooManyRequests || errorCode(t, body) != "RATE_LIMITED" {
			t.Fatalf("%s from the guessing address: %d %s, want 429 RATE_LIMITED", path, status, body)
		}
	}
	if reason := guessFirstMessage(t, env, "203.0.113.21"); reason != "INVALID_API_KEY" {
		t.Fatalf("another address: closed %q", reason)
	}
}

// With Redis, the failures an address made on one process count on
// another: there the next guess is closed with RATE_LIMITED.
func TestFailedFirstMessageAuthSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	a := newEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "AUTH_FAILURE_BURST": "2", "REDIS_URL": redistest.URL(t)})
	b := a.Replica(t, nil)
	ip := fmt.Sprintf("198.18.%d.%d", rand.IntN(256), 1+rand.IntN(254)) // a bucket no other run has
	for range 2 {
		if reason := guessFirstMessage(t, a, ip); reason != "INVALID_API_KEY" {
			t.Fatalf("a guess within the burst: closed %q", reason)
		}
	}
	if reason := guessFirstMessage(t, b, ip); reason != "RATE_LIMITED" {
		t.Fatalf("a guess over the burst on the other process: closed %q, want RATE_LIMITED", reason)
	}
	if _, status, _ := dial(t, b, "/v1/ws", http.Header{"X-Forwarded-For": {ip}}); status != http.StatusTooManyRequests {
		t.Fatalf("after its refusal the other process refuses at once: %d", status)
	}
}

// A connection authenticated by first message or ticket spends a request
// of its key's bucket like a REST request (headers are counted by the REST
// middleware): past it, the first message is closed with RATE_LIMITED and
// a ticket's upgrade is 429.
func TestConnectionsSpendTheKeysRequests(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, map[string]string{"RATE_LIMIT_TIER_RPM": "free=3"})
	var ticket api.WSTicket
	// The 1st request of the key.
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/ws/tickets", Headers: map[string]string{"X-API-Key": key.Secret}}).Want(t, http.StatusCreated, "").JSON(t, &ticket)
	// The 2nd: a connection by first message holds the free tier's one slot.
	first := mustDial(t, env, "/v1/ws", nil)
	send(t, first, map[string]string{"type": "auth", "api_key": key.Secret})
	readWelcome(t, first)
	// The 3rd: within the limit, refused by the connection cap.
	second := mustDial(t, env, "/v1/ws", nil)
	send(t, second, map[string]string{"type": "auth", "api_key": key.Secret})
	if reason := closeReasonOf(t, second); reason != "TOO_MANY_CONNECTIONS" {
		t.Fatalf("within the request limit: closed %q", reason)
	}
	// The 4th: over the request limit.
	third := mustDial(t, env, "/v1/ws", nil)
	send(t, third, map[string]string{"type": "auth", "api_key": key.Secret})
	if reason := closeReasonOf(t, third); reason != "RATE_LIMITED" {
		t.Fatalf("over the request limit: closed %q, want RATE_LIMITED", reason)
	}
	_, status, body := dial(t, env, "/v1/ws?ticket="+ticket.Ticket, nil)
	if status != http.StatusTooManyRequests || errorCode(t, body) != "RATE_LIMITED" {
		t.Fatalf("ticket over the request limit: %d %s", status, body)
	}
}

// spendMessages sends n pings on c and reads their pongs.
func spendMessages(t *testing.T, c *websocket.Conn, n int) {
	t.Helper()
	for i := range n {
		send(t, c, map[string]any{"type": "ping", "id": i})
		if m := read(t, c); m.str("type") != "pong" {
			t.Fatalf("message %d of %d: %v", i+1, n, m)
		}
	}
}

// reconnectKey connects with key once its previous connection's slot is
// free again (the free tier allows one).
func reconnectKey(t *testing.T, env *apitest.Env, key api.CreatedKey) *websocket.Conn {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		c, status, body := dial(t, env, "/v1/ws", bearer(key.Secret))
		if c != nil {
			readWelcome(t, c)
			return c
		}
		if status != http.StatusTooManyRequests || errorCode(t, body) != "TOO_MANY_CONNECTIONS" || time.Now().After(deadline) {
			t.Fatalf("reconnect: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectBudgetSpent sends pings on c until one is refused, and wants
// fewer answered than the budget refilled since spending began (one a
// second for the free tier, from the first message spent: on a loaded
// machine spending the minute's 60 took over a second), plus one: a fresh
// budget would answer 60.
func expectBudgetSpent(t *testing.T, c *websocket.Conn, spendingBegan time.Time) {
	t.Helper()
	for answered := 0; ; answered++ {
		send(t, c, map[string]any{"type": "ping"})
		m := read(t, c)
		if m.str("type") == "error" && m.str("code") == "RATE_LIMITED" {
			return
		}
		if refilled := int(time.Since(spendingBegan)/time.Second) + 1; answered >= refilled {
			t.Fatalf("%d messages answered, %v after spending the budget began (refilled: %d): %v", answered+1, time.Since(spendingBegan), refilled, m)
		}
	}
}

// The message budget is the key's, not the connection's: reconnecting
// does not refill it (50 reconnects used to give 50 budgets a minute).
func TestMessageBudgetSurvivesReconnect(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	c := connectKey(t, env, key)
	spendingBegan := time.Now()
	spendMessages(t, c, 60) // the free tier's minute
	c.Close(websocket.StatusNormalClosure, "")
	expectBudgetSpent(t, reconnectKey(t, env, key), spendingBegan)
}

// With Redis the budget is shared by every process: messages spent on
// one count on the other.
func TestMessageBudgetSharedAcrossProcesses(t *testing.T) {
	t.Parallel()
	a, _, key := setup(t, map[string]string{"REDIS_URL": redistest.URL(t)})
	b := a.Replica(t, nil)
	c := connectKey(t, a, key)
	spendingBegan := time.Now()
	spendMessages(t, c, 60)
	c.Close(websocket.StatusNormalClosure, "")
	expectBudgetSpent(t, reconnectKey(t, b, key), spendingBegan)
}
