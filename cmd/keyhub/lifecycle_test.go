package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/pgtest"
)

// server is `keyhub serve` running in the test, through run().
type server struct {
	addr string
	logs *apitest.LogBuffer
	stop context.CancelFunc // what SIGTERM does to main's context
	done chan error
}

// startServe runs `keyhub serve` on a migrated database with env added.
func startServe(t *testing.T, dbURL string, env map[string]string) *server {
	t.Helper()
	addr := freeAddr(t)
	vars := map[string]string{"DATABASE_URL": dbURL, "LISTEN_ADDR": addr, "KEYHUB_DEV": "1", "KEYHUB_DATA_DIR": t.TempDir(), "SHUTDOWN_DRAIN_DELAY": "0"}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{addr: addr, logs: &apitest.LogBuffer{}, stop: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- run(ctx, []string{"serve"}, func(k string) string { return vars[k] }, s.logs, s.logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return s
}

func (s *server) get(path string) int {
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *server) waitFor(t *testing.T, path string, status int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if s.get(path) == status {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered %d; logs:\n%s", path, status, s.logs.String())
}

// devToken mints a token through the running dev-mode server.
func (s *server) devToken(t *testing.T, email string) string {
	t.Helper()
	resp, err := http.Post("http://"+s.addr+"/dev/token", "application/json", strings.NewReader(`{"email":"`+email+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("dev token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// On SIGTERM: /readyz answers 503 at once while the listener keeps serving
// for SHUTDOWN_DRAIN_DELAY; then a request in flight still gets its whole
// answer, WebSockets are closed with 1001, and serve returns.
func TestGracefulShutdownDrainsFirst(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDB(t)
	const drain = 1500 * time.Millisecond
	s := startServe(t, dbURL, map[string]string{"SHUTDOWN_DRAIN_DELAY": drain.String()})
	s.waitFor(t, "/readyz", http.StatusOK, 15*time.Second)
	jwt := s.devToken(t, "alice@example.com")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+s.addr+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + jwt}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil { // welcome
		t.Fatal(err)
	}

	// A request in flight: its headers and half its body are sent.
	body := `{"name":"in flight"}`
	inFlight, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer inFlight.Close()
	fmt.Fprintf(inFlight, "POST /v1/keys HTTP/1.1\r\nHost: keyhub\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", jwt, len(body), body[:5])
	time.Sleep(100 * time.Millisecond) // let the server start reading it

	sigterm := time.Now() // before it is sent: the drain cannot end before sigterm+drain
	s.stop()              // SIGTERM
	s.waitFor(t, "/readyz", http.StatusServiceUnavailable, drain/2)
	// Still serving during the drain, on new connections too.
	for time.Since(sigterm) < drain*2/3 {
		if status := s.get("/healthz"); status != http.StatusOK {
			t.Fatalf("during the drain, /healthz answered %d (0: refused) after %s", status, time.Since(sigterm))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The drain ends and the listener closes (new connections are refused);
	// only then does the request in flight send the rest of its body.
	for deadline := time.Now().Add(30 * time.Second); s.get("/healthz") != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the listener still accepts connections %v after SIGTERM", time.Since(sigterm))
		}
	}
	if closedAfter := time.Since(sigterm); closedAfter < drain {
		t.Fatalf("the listener closed %v after SIGTERM, before the %v drain ended", closedAfter, drain)
	}
	if _, err := io.WriteString(inFlight, body[5:]); err != nil {
		t.Fatal(err)
	}
	_ = inFlight.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(inFlight), nil)
	if err != nil {
		t.Fatalf("the request in flight lost its answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the request in flight was answered %d", resp.StatusCode)
	}

	_, _, err = ws.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
		t.Fatalf("WebSocket ended with %v (%v), want 1001", code, err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
		s.done <- nil // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return")
	}
	if s.get("/healthz") != 0 {
		t.Fatal("the listener is still open after shutdown")
	}
	// Durations are logged in milliseconds, never as nanosecond integers.
	logs := s.logs.String()
	if !strings.Contains(logs, `"drain_delay_ms":1500`) || !strings.Contains(logs, `"timeout_ms":15000`) {
		t.Errorf("the shutdown is not logged in milliseconds:\n%s", logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"websocket closed"`) && !strings.Contains(line, `"duration_ms":`) {
			t.Errorf("websocket duration not in milliseconds: %s", line)
		}
		if strings.Contains(line, `"duration":`) || strings.Contains(line, `"timeout":`) {
			t.Errorf("a duration logged without its unit: %s", line)
		}
	}
	if !strings.Contains(logs, `"msg":"websocket closed"`) {
		t.Error("the WebSocket's end was not logged")
	}
}

// serve waits for a database that is not there yet (DATABASE_WAIT),
// saying so in the log, and starts once it answers.
func TestServeWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	_, direct := pgtest.NewDB(t)
	proxy, dbURL := pgtest.NewProxy(t, direct)
	proxy.Block()
	s := startServe(t, dbURL, map[string]string{"DATABASE_WAIT": "60s"})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.logs.String(), "waiting for the database") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line says serve waits for the database:\n%s", s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.get("/healthz") != 0 {
		t.Fatal("serve listens before the database answers")
	}
	proxy.Unblock()
	s.waitFor(t, "/readyz", http.StatusOK, 15*time.Second)
}

// serve gives up after DATABASE_WAIT with a message that says what it
// waited for and how long.
func TestServeGivesUpOnAMissingDatabase(t *testing.T) {
	t.Parallel()
	dead := "postgres://keyhub@" + freeAddr(t) + "/keyhub?sslmode=disable" // nothing listens there
	s := startServe(t, dead, map[string]string{"DATABASE_WAIT": "1s"})
	select {
	case err := <-s.done:
		if err == nil || !strings.Contains(err.Error(), "database not reachable") || !strings.Contains(err.Error(), "DATABASE_WAIT=1s") {
			t.Fatalf("serve returned %v", err)
		}
		s.done <- err // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("serve kept waiting past DATABASE_WAIT")
	}
	if !strings.Contains(s.logs.String(), "waiting for the database") {
		t.Errorf("the wait was not logged:\n%s", s.logs.String())
	}
}

// migrate waits for its database too.
func TestMigrateWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	proxy, dbURL := pgtest.NewProxy(t, pgtest.NewDatabase(t))
	proxy.Block()
	time.AfterFunc(time.Second, proxy.Unblock)
	out := &apitest.LogBuffer{}
	env := map[string]string{"DATABASE_URL": dbURL, "DATABASE_WAIT": "30s"}
	if err := run(context.Background(), []string{"migrate", "up"}, func(k string) string { return env[k] }, out, out); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "waiting for the database") || !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate output:\n%s", out.String())
	}
}
