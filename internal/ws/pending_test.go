package ws_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/apitest"
)

func from(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }

// A flood of silent handshakes that fills the global cap cannot lock out
// a daemon that authenticates right away: its connection pushes out the
// oldest silent one, which is told why (1013 TOO_MANY_CONNECTIONS).
func TestPendingFloodCannotStarveADaemon(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "WS_PENDING_MAX": "4", "WS_AUTH_TIMEOUT": "1m"})
	closed := make(chan string, 4)
	var silent []*websocket.Conn
	for i := range 4 { // one per network: only the global cap is in play
		c := mustDial(t, env, "/v1/ws", from(fmt.Sprintf("198.51.%d.7", 100+i)))
		silent = append(silent, c)
		go func() {
			_, _, err := c.Read(context.Background())
			var ce websocket.CloseError
			errors.As(err, &ce)
			closed <- fmt.Sprintf("%d %s", ce.Code, ce.Reason)
		}()
	}
	daemon := mustDial(t, env, "/v1/ws", from("203.0.113.9"))
	send(t, daemon, map[string]string{"type": "auth", "api_key": key.Secret})
	readWelcome(t, daemon)
	// One silent connection (the oldest the server had accepted) made room.
	select {
	case got := <-closed:
		if got != "1013 TOO_MANY_CONNECTIONS" {
			t.Fatalf("a silent connection closed with %q, want 1013 TOO_MANY_CONNECTIONS", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no silent connection was pushed out")
	}
	// The other three are still open: each answers a ping sent after the
	// push-out (a connection pushed out too would have been closed first).
	alive := 0
	for _, c := range silent {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if c.Ping(ctx) == nil {
			alive++
		}
		cancel()
	}
	select {
	case got := <-closed:
		t.Fatalf("a second silent connection closed (%q): one was enough", got)
	default:
	}
	if alive != 3 {
		t.Fatalf("%d silent connections answer a ping after one was pushed out, want 3", alive)
	}
}

// Silent connections are capped per network (/24, /56) beside the
// per-address cap: many addresses of one network share one allowance,
// and other networks keep theirs.
func TestPendingCapPerNetwork(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "WS_PENDING_PER_NETWORK": "2"})
	for name, addrs := range map[string][]string{
		"IPv4 /24": {"203.0.113.7", "203.0.113.8", "203.0.113.200", "203.0.114.1"},
		"IPv6 /56": {"2001:db8:0:1::1", "2001:db8:0:2::1", "2001:db8:0:ff::9", "2001:db8:0:100::1"},
	} {
		mustDial(t, env, "/v1/ws", from(addrs[0]))
		mustDial(t, env, "/v1/ws", from(addrs[1]))
		_, status, body := dial(t, env, "/v1/ws", from(addrs[2]))
		if status != http.StatusTooManyRequests || errorCode(t, body) != "TOO_MANY_CONNECTIONS" {
			t.Fatalf("%s: third silent connection from one network: %d %s, want 429 TOO_MANY_CONNECTIONS", name, status, body)
		}
		mustDial(t, env, "/v1/ws", from(addrs[3])) // the next network
	}
}

// A peer that never sends its auth message, nor answers the close, gives
// its slot back when the auth timeout ends and is dropped shortly after;
// the library alone would hold both for 5 s more.
func TestPendingTimeoutFreesSlotAndDropsSilentPeer(t *testing.T) {
	t.Parallel()
	env := newEnv(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "WS_PENDING_PER_IP": "1", "WS_AUTH_TIMEOUT": "200ms"})
	raw := rawUpgrade(t, env, "198.51.100.4")
	opened := time.Now()

	// The slot is back well before the library's 5 s close handshake ends.
	for {
		c, status, _ := dial(t, env, "/v1/ws", from("198.51.100.4"))
		if c != nil {
			break
		}
		if status != http.StatusTooManyRequests || time.Since(opened) > 4*time.Second {
			t.Fatalf("slot of a timed-out connection not back after %v: %d", time.Since(opened), status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The peer reads the close frame, does not answer, and is dropped.
	raw.SetReadDeadline(opened.Add(4 * time.Second))
	if _, err := io.Copy(io.Discard, raw); err != nil {
		t.Fatalf("silent peer still connected after %v: %v", time.Since(opened), err)
	}
}

// rawUpgrade performs a WebSocket handshake by hand from a client that
// will never read or answer anything after it.
func rawUpgrade(t *testing.T, env *apitest.Env, ip string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	nonce := make([]byte, 16)
	rand.Read(nonce)
	fmt.Fprintf(conn, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nX-Forwarded-For: %s\r\n\r\n",
		strings.TrimPrefix(env.URL, "http://"), base64.StdEncoding.EncodeToString(nonce), ip)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw upgrade: %d", resp.StatusCode)
	}
	return conn
}

// When the global cap is full, a new handshake pushes out the oldest
// connection that has not authenticated yet, not any: the longest silent
// is the likeliest attacker's, while one that just connected may still be
// a client within its first round trip. Two newcomers (a silent one, then
// a daemon) push out the first and then the second connection the server
// accepted, in that order.
func TestPendingEvictsTheOldestSilentConnection(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "WS_PENDING_MAX": "4", "WS_AUTH_TIMEOUT": "1m"})
	evicted := make(chan int, 8)
	silent := func(i int) {
		c := mustDial(t, env, "/v1/ws", from(fmt.Sprintf("198.51.%d.7", 100+i))) // one per network: only the global cap is in play
		go func() {
			_, _, err := c.Read(context.Background())
			var ce websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.StatusTryAgainLater && ce.Reason == "TOO_MANY_CONNECTIONS" {
				evicted <- i
			}
		}()
		// The server answers a ping only once it reads the connection,
		// which it does after queueing it: so the next one is younger.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("silent connection %d: ping: %v", i, err)
		}
	}
	expectEvicted := func(want int) {
		t.Helper()
		select {
		case got := <-evicted:
			if got != want {
				t.Fatalf("silent connection %d was pushed out, want %d (the oldest still silent)", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no silent connection was pushed out, want %d", want)
		}
	}
	for i := range 4 {
		silent(i)
	}
	silent(4) // the cap is full: a newcomer pushes out the oldest
	expectEvicted(0)
	daemon := mustDial(t, env, "/v1/ws", from("203.0.113.9"))
	send(t, daemon, map[string]string{"type": "auth", "api_key": key.Secret})
	readWelcome(t, daemon)
	expectEvicted(1)
}
