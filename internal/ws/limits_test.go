package ws_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
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
	deadline := time.Now().Add(3 * time.Second)
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
func TestFirstMessageOverLimitCloses1008(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	readWelcome(t, mustDial(t, env, "/v1/ws", bearer(key.Secret)))

	c := mustDial(t, env, "/v1/ws", nil)
	send(t, c, map[string]any{"type": "auth", "api_key": key.Secret})
	expectClose(t, c, websocket.StatusPolicyViolation, 2*time.Second)
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
	expectClose(t, c, websocket.StatusPolicyViolation, 2*time.Second)
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
	expectClose(t, c, websocket.StatusMessageTooBig, 2*time.Second)
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
	expectClose(t, c, websocket.StatusGoingAway, 2*time.Second)
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
	deadline := time.Now().Add(3 * time.Second)
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
