package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api"
)

// TestShouldReconnect: which ends of a session the connector recovers
// from, and which it reports. The real server's closes are covered by
// the connector tests; 1011, 1012, 1013 and 4000 (after a 30-minute
// session) are only reachable here.
func TestShouldReconnect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err   error
		retry bool
		wait  time.Duration
	}{
		{errors.New("dial tcp: connection refused"), true, 0},
		{&CloseError{Code: 1001, Reason: "server shutting down"}, true, 0},
		{&CloseError{Code: 1006}, true, 0},
		{&CloseError{Code: 1011}, true, 0},
		{&CloseError{Code: 1012}, true, 0},
		{&CloseError{Code: 1013}, true, 0},
		{&CloseError{Code: CloseSessionExpired, Reason: "session expired"}, true, 0},
		{&CloseError{Code: 1008, Reason: "TOO_MANY_CONNECTIONS"}, true, 0},
		{fmt.Errorf("get a ticket: %w", &Error{Status: 429, Code: "TOO_MANY_CONNECTIONS", RetryAfter: 7 * time.Second}), true, 7 * time.Second},
		{&Error{Status: 503, Code: "NOT_READY"}, true, 0},
		{&CloseError{Code: CloseKeyRevoked, Reason: "key revoked"}, false, 0},
		{&CloseError{Code: CloseClosedByOwner, Reason: "closed by owner"}, false, 0},
		{&CloseError{Code: 1008, Reason: "UNKNOWN_API_KEY"}, false, 0},
		{&CloseError{Code: 1008, Reason: "ping timeout"}, false, 0},
		{&CloseError{Code: 1009}, false, 0},
		{&CloseError{Code: 1000}, false, 0},
		{&Error{Status: 401, Code: "KEY_REVOKED"}, false, 0},
		{&Error{Status: 403, Code: "INSUFFICIENT_SCOPE"}, false, 0},
		{&Error{Status: 404, Code: "NOT_FOUND"}, false, 0},
	} {
		retry, wait := shouldReconnect(tc.err)
		if retry != tc.retry || wait != tc.wait {
			t.Errorf("shouldReconnect(%v) = %v, %v; want %v, %v", tc.err, retry, wait, tc.retry, tc.wait)
		}
	}
}

// TestConnectorClosesNormally: cancelling Run closes with 1000, as the
// server sees it. The server here is a bare WebSocket peer that sends a
// welcome and records the close; the real server does not expose it.
func TestConnectorClosesNormally(t *testing.T) {
	t.Parallel()
	closed := make(chan websocket.StatusCode, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		if err := conn.Write(r.Context(), websocket.MessageText, []byte(`{"type":"welcome","tier":"free"}`)); err != nil {
			return
		}
		_, _, err = conn.Read(r.Context())
		closed <- websocket.CloseStatus(err)
	}))
	defer srv.Close()
	c, err := New(srv.URL, WithAPIKey("mk_x"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	welcomed := make(chan struct{})
	k := c.Connector(ConnectorOptions{OnWelcome: func(api.WSWelcome) { close(welcomed) }})
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	<-welcomed
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if code := <-closed; code != websocket.StatusNormalClosure {
		t.Errorf("the server saw close %d, want 1000", code)
	}
}

// TestConnectorHonoursRetryAfter: a 429 with Retry-After makes the next
// attempt wait that long (not the shorter backoff), capped by MaxBackoff.
func TestConnectorHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"error":{"code":"TOO_MANY_CONNECTIONS","message":"one too many"}}`))
	}))
	defer srv.Close()
	c, err := New(srv.URL, WithAPIKey("mk_x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		maxBackoff, want time.Duration
	}{{time.Minute, 7 * time.Second}, {2 * time.Second, 2 * time.Second}} {
		ctx, cancel := context.WithCancel(context.Background())
		var got time.Duration
		var gotErr error
		k := c.Connector(ConnectorOptions{MinBackoff: time.Millisecond, MaxBackoff: tc.maxBackoff, OnDisconnect: func(err error, retryIn time.Duration) {
			got, gotErr = retryIn, err
			cancel() // no need to sleep it
		}})
		if err := k.Run(ctx); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got != tc.want || ErrorCode(gotErr) != "TOO_MANY_CONNECTIONS" {
			t.Errorf("MaxBackoff %v: waits %v after %v, want %v", tc.maxBackoff, got, gotErr, tc.want)
		}
	}
}
