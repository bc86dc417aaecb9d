package ws_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/postgres"
	"github.com/keyhub/keyhub/internal/ws"
)

// The server pings on a timer: a peer that answers stays connected across
// many intervals, one that stops answering is dropped with 1013.
func TestPingDropsSilentPeer(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	store := postgres.NewStore(env.Pool, nil)
	keys := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Minute, Size: 10, NegativeTTL: time.Minute, NegativeSize: 10}, nil)
	authn := auth.New(auth.Config{Keys: keys, Users: store})
	// A live peer must answer within one interval, so it is not too short
	// for a loaded machine's scheduling.
	const interval = 500 * time.Millisecond
	hub := ws.New(ws.Config{Gate: auth.NewGate(authn, nil, nil, nil), Store: store, TicketSecret: []byte(testTicketSecret), PingInterval: interval})
	srv := httptest.NewServer(hub.Upgrade())
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/daemon"
	var pings atomic.Int64
	// dialKey connects with the key; answer says whether the client
	// answers the server's pings while it reads.
	dialKey := func(answer bool) *websocket.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
				HTTPHeader:     http.Header{"X-API-Key": {key.Secret}},
				OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return answer },
			})
			if err == nil {
				if _, _, err := c.Read(ctx); err != nil { // the welcome
					t.Fatal(err)
				}
				return c
			}
			if ctx.Err() != nil { // the previous connection's slot is freed asynchronously
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A reading client answers pings (the library does, inside Read): it
	// is still connected after several rounds of them. Counted, not timed:
	// a loaded machine fires the server's timer late.
	live := dialKey(true)
	readErr := make(chan error, 1)
	go func() {
		_, _, err := live.Read(context.Background())
		readErr <- err
	}()
	const rounds = 3
	for deadline := time.Now().Add(30 * time.Second); pings.Load() < rounds; {
		select {
		case err := <-readErr:
			t.Fatalf("a peer that answers pings was dropped after %d pings: %v", pings.Load(), err)
		case <-time.After(interval / 4):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pings in 30s: the server stopped pinging", pings.Load())
		}
	}
	live.Close(websocket.StatusNormalClosure, "")
	<-readErr

	// A client that reads but does not answer is dropped after its first
	// unanswered ping.
	pings.Store(0)
	silent := dialKey(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := silent.Read(ctx)
	if status := websocket.CloseStatus(err); status != websocket.StatusTryAgainLater {
		var ce websocket.CloseError
		errors.As(err, &ce)
		t.Fatalf("silent peer: %v (close %v %q), want 1013 ping timeout", err, status, ce.Reason)
	}
	if n := pings.Load(); n == 0 {
		t.Fatal("the silent peer was dropped without a ping")
	}
}
