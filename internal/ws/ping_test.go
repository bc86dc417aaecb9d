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
// many intervals, one that stops answering is dropped with 1008.
func TestPingDropsSilentPeer(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	store := postgres.NewStore(env.Pool, nil)
	keys := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Minute, Size: 10, NegativeTTL: time.Minute, NegativeSize: 10}, nil)
	authn := auth.New(auth.Config{Keys: keys, Users: store})
	const interval = 200 * time.Millisecond
	hub := ws.New(ws.Config{Gate: auth.NewGate(authn, nil, nil, nil), Store: store, TicketSecret: []byte(testTicketSecret), PingInterval: interval})
	srv := httptest.NewServer(hub.Upgrade())
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/daemon"
	var pings atomic.Int64
	dialKey := func() *websocket.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
				HTTPHeader:     http.Header{"X-API-Key": {key.Secret}},
				OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
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

	// A reading client answers pings (the library does, inside Read).
	live := dialKey()
	readErr := make(chan error, 1)
	go func() {
		_, _, err := live.Read(context.Background())
		readErr <- err
	}()
	select {
	case err := <-readErr:
		t.Fatalf("a peer that answers pings was dropped: %v", err)
	case <-time.After(6 * interval):
	}
	if n := pings.Load(); n < 3 {
		t.Fatalf("%d pings in 6 intervals: the server stopped pinging", n)
	}
	live.Close(websocket.StatusNormalClosure, "")
	<-readErr

	// A client that does not read cannot answer.
	silent := dialKey()
	time.Sleep(3 * interval)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := silent.Read(ctx)
	if status := websocket.CloseStatus(err); status != websocket.StatusTryAgainLater {
		var ce websocket.CloseError
		errors.As(err, &ce)
		t.Fatalf("silent peer: %v (close %v %q), want 1013 ping timeout", err, status, ce.Reason)
	}
}
