package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
)

// Connector tests are not parallel: each checks that it leaves no
// goroutine behind, which other tests running at once would muddle.

const waitLimit = 15 * time.Second

// newEnv starts a keyhub whose free tier allows many requests a minute:
// the tests' polling and reconnecting must not meet the request limit
// they are not about (each connection attempt spends a unit).
func newEnv(t *testing.T) *apitest.Env {
	t.Helper()
	return apitest.New(t, map[string]string{"RATE_LIMIT_TIER_RPM": "free=6000"})
}

// daemon is a Connector under test with what it reported.
type daemon struct {
	*client.Connector
	welcomes    chan api.WSWelcome
	messages    chan api.WSMessage
	mu          sync.Mutex
	disconnects []disconnect
	done        chan error
	cancel      context.CancelFunc
}

type disconnect struct {
	err     error
	retryIn time.Duration
}

// startDaemon runs a connector of c until the test ends.
func startDaemon(t *testing.T, c *client.Client, opts client.ConnectorOptions) *daemon {
	t.Helper()
	d := &daemon{welcomes: make(chan api.WSWelcome, 16), messages: make(chan api.WSMessage, 256), done: make(chan error, 1)}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	}
	opts.OnWelcome = func(w api.WSWelcome) { d.welcomes <- w }
	opts.OnMessage = func(m api.WSMessage) {
		select {
		case d.messages <- m:
		default:
			t.Errorf("message dropped: %s", m.Raw)
		}
	}
	opts.OnDisconnect = func(err error, retryIn time.Duration) {
		d.mu.Lock()
		d.disconnects = append(d.disconnects, disconnect{err, retryIn})
		d.mu.Unlock()
	}
	d.Connector = c.Connector(opts)
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- d.Run(ctx) }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop cancels Run and waits for it.
func (d *daemon) stop(t *testing.T) error {
	t.Helper()
	d.cancel()
	select {
	case err, ok := <-d.done:
		if ok {
			close(d.done)
		}
		return err
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

func (d *daemon) welcome(t *testing.T) api.WSWelcome {
	t.Helper()
	select {
	case w := <-d.welcomes:
		return w
	case err := <-d.done:
		d.done <- err // for stop
		t.Fatalf("Run returned before a welcome: %v", err)
	case <-time.After(waitLimit):
		t.Fatal("no welcome")
	}
	return api.WSWelcome{}
}

// message waits for the next message of this type, skipping others.
func (d *daemon) message(t *testing.T, typ string) api.WSMessage {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-d.messages:
			if m.Type == typ {
				return m
			}
		case <-deadline:
			t.Fatalf("no %q message", typ)
		}
	}
}

// ended waits for Run to return by itself.
func (d *daemon) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.done:
		close(d.done)
		return err
	case <-time.After(waitLimit):
		t.Fatal("Run did not return")
		return nil
	}
}

func (d *daemon) reconnects() []disconnect {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]disconnect(nil), d.disconnects...)
}

// noLeaks returns a check that no goroutine started after this call is
// still running: Run's, the WebSocket's, or the server's for this test's
// connections. It runs when the test ends (after the daemons are
// cancelled), and tests call it earlier, after Run returned by itself.
// Call it after starting the server.
func noLeaks(t *testing.T, transports ...*http.Transport) (check func()) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	check = func() {
		t.Helper()
		for _, tr := range transports {
			tr.CloseIdleConnections() // idle keep-alives are not leaks
		}
		// The restarted server's caches (golang-lru's expirable LRU) run a
		// janitor goroutine that the library never stops: the server's, not ours.
		lru := goleak.IgnoreTopFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1")
		// pgx reads a busy database connection in the background (the
		// server's pool, started by whatever query needed it).
		pgx := goleak.IgnoreAnyFunction("github.com/jackc/pgx/v5/pgconn/internal/bgreader.(*BGReader).bgRead")
		if err := goleak.Find(ignore, lru, pgx); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(check)
	return check
}

// keyClient makes a user and a key with these scopes, and a client using
// the key over its own transport.
func keyClient(t *testing.T, env *apitest.Env, email string, scopes ...string) (*client.Client, *client.Client, api.CreatedKey, *http.Transport) {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	hc := &http.Client{Transport: tr}
	user, err := client.New(env.URL, client.WithHTTPClient(hc), client.WithToken(env.Token(t, email)))
	if err != nil {
		t.Fatal(err)
	}
	key, err := user.CreateKey(context.Background(), api.CreateKeyRequest{Name: "daemon", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.URL, client.WithHTTPClient(hc), client.WithAPIKey(key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return user, c, key, tr
}

// coverWebSocket opens the WebSocket both ways in (the header on /v1/ws,
// a ticket on the seed's /ws/daemon) through the spec recorder, closes
// one as the owner and shuts the other down.
func coverWebSocket(t *testing.T, env *apitest.Env, rec http.RoundTripper, key string, user *client.Client) {
	ctx := context.Background()
	c := newClient(t, env, rec, client.WithAPIKey(key))
	d := startDaemon(t, c, client.ConnectorOptions{MachineID: "m-1", Hostname: "build-7"})
	w := d.welcome(t)
	if w.Tier != "free" || w.Limits.MaxConnections != 1 || w.ExpiresAt.IsZero() {
		t.Errorf("welcome: %+v", w)
	}
	conns, err := user.ListWSConnections(ctx)
	if err != nil || len(conns.Data) != 1 || conns.Data[0].ID != w.ConnectionID || conns.Data[0].MachineID != "m-1" || conns.Data[0].Hostname != "build-7" {
		t.Fatalf("connections: %+v %v", conns, err)
	}
	if err := user.CloseWSConnection(ctx, w.ConnectionID.String()); err != nil {
		t.Fatal(err)
	}
	var closed *client.CloseError
	if err := d.ended(t); !errors.As(err, &closed) || closed.Code != client.CloseClosedByOwner {
		t.Fatalf("after DELETE: Run returned %v, want close 4002", err)
	}
	if n := len(d.reconnects()); n != 0 {
		t.Errorf("reconnected %d times after 4002", n)
	}

	// The seed services' paths (the same endpoint).
	for _, path := range []string{"/ws/daemon", "/ws"} {
		seed := startDaemon(t, c, client.ConnectorOptions{Auth: client.AuthTicket, Path: path})
		seed.welcome(t)
		if err := seed.stop(t); err != nil {
			t.Errorf("%s: Run after cancel: %v", path, err)
		}
		waitNoConnections(t, user)
	}
	ticket, err := c.SeedIssueWSTicket(ctx)
	if err != nil || !strings.HasPrefix(ticket.Ticket, "wst_") || ticket.ExpiresIn != 30 {
		t.Fatalf("seed ticket: %+v %v", ticket, err)
	}
}

// waitNoConnections waits until the server has unregistered the owner's
// connections (just after they close), so the next one is not one too many.
func waitNoConnections(t *testing.T, user *client.Client) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(10 * time.Millisecond) {
		conns, err := user.ListWSConnections(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(conns.Data) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still connected: %+v", conns)
		}
	}
}

// TestConnectorReconnectsAfterRestart: the server restarts on the same
// port; the connector comes back (with delays within its bounds) and
// subscribes again, so events written after the restart arrive.
func TestConnectorReconnectsAfterRestart(t *testing.T) {
	env := newEnv(t)
	user, c, _, tr := keyClient(t, env, "restart@example.com", "ws:connect", "events:read", "keys:read")
	noLeaks(t, tr)
	d := startDaemon(t, c, client.ConnectorOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond})
	first := d.welcome(t)
	if err := d.Subscribe(context.Background(), "events"); err != nil {
		t.Fatal(err)
	}
	d.message(t, "subscribed")

	env.Restart(t)
	second := d.welcome(t)
	if second.ConnectionID == first.ConnectionID {
		t.Fatal("same connection id after a restart")
	}
	d.message(t, "subscribed") // sent again by the connector itself
	gone := d.reconnects()
	if len(gone) == 0 {
		t.Fatal("no disconnect reported")
	}
	var closed *client.CloseError
	if !errors.As(gone[0].err, &closed) || closed.Code != 1001 {
		t.Errorf("first disconnect: %v, want close 1001", gone[0].err)
	}
	for i, g := range gone {
		var apiErr *client.Error
		if errors.As(g.err, &apiErr) && apiErr.RetryAfter > 0 {
			// The shutting-down server's 503 asks for Retry-After: honoured up to MaxBackoff.
			if want := min(apiErr.RetryAfter, 80*time.Millisecond); g.retryIn != want {
				t.Errorf("attempt %d after %v waited %v, want %v", i, g.err, g.retryIn, want)
			}
			continue
		}
		if ceiling := min(10*time.Millisecond<<i, 80*time.Millisecond); g.retryIn < 0 || g.retryIn >= ceiling {
			t.Errorf("attempt %d waited %v, want [0, %v)", i, g.retryIn, ceiling)
		}
	}

	// An audit event written now reaches the re-subscribed session (the
	// restarted server's feed listens: apitest waits for it).
	if _, err := user.CreateKey(context.Background(), api.CreateKeyRequest{Name: "over the limit"}); client.ErrorCode(err) != "KEY_LIMIT_REACHED" {
		t.Fatalf("create: %v", err)
	}
	list, err := user.ListKeys(context.Background(), client.ListKeysParams{})
	if err != nil || len(list.Data) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	grace := int64(3600)
	refreshed, err := user.RefreshKey(context.Background(), list.Data[0].ID, api.RefreshKeyRequest{GracePeriod: &grace})
	if err != nil {
		t.Fatal(err)
	}
	if ev := d.message(t, "event"); ev.Event == nil || ev.Event.Type != "refreshed" || ev.Event.KeyID != list.Data[0].ID {
		t.Errorf("event after restart: %s (new key %s)", ev.Raw, refreshed.NewKey.ID)
	}
	if err := d.stop(t); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

// TestConnectorStopsOnRevoke: a fleet of daemons on one key (a team
// tier allows several connections) all stop with 4001 when the key is
// revoked, and none tries again; started again, a connector is refused
// before the upgrade (401 KEY_REVOKED) and stops at once too.
func TestConnectorStopsOnRevoke(t *testing.T) {
	env := newEnv(t)
	user, c, key, tr := keyClient(t, env, "revoke@example.com", "ws:connect")
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team'"); err != nil {
		t.Fatal(err)
	}
	leaks := noLeaks(t, tr)
	fleet := make([]*daemon, 5)
	for i := range fleet {
		fleet[i] = startDaemon(t, c, client.ConnectorOptions{})
		fleet[i].welcome(t)
	}
	if _, err := user.RevokeKey(context.Background(), key.ID); err != nil {
		t.Fatal(err)
	}
	for i, d := range fleet {
		var closed *client.CloseError
		if err := d.ended(t); !errors.As(err, &closed) || closed.Code != client.CloseKeyRevoked {
			t.Fatalf("daemon %d: Run returned %v, want close 4001", i, err)
		}
		if n := len(d.reconnects()); n != 0 {
			t.Errorf("daemon %d: %d reconnect attempts with a revoked key", i, n)
		}
	}
	again := startDaemon(t, c, client.ConnectorOptions{})
	var apiErr *client.Error
	if err := again.ended(t); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Code != "KEY_REVOKED" {
		t.Fatalf("restarted: Run returned %v, want 401 KEY_REVOKED", err)
	}
	if n := len(again.reconnects()); n != 0 {
		t.Errorf("%d reconnect attempts after 401", n)
	}
	leaks() // Run returned by itself: nothing of it may still run
}

// TestConnectorFirstMessage: without credentials on the upgrade, the key
// goes in the seed daemon's "authenticate" message with the machine id;
// an unknown key is a 1008 close, which is final.
func TestConnectorFirstMessage(t *testing.T) {
	env := newEnv(t)
	user, c, _, tr := keyClient(t, env, "first@example.com", "ws:connect")
	noLeaks(t, tr)
	d := startDaemon(t, c, client.ConnectorOptions{Auth: client.AuthFirstMessage, MachineID: "m-9", Hostname: "edge"})
	w := d.welcome(t)
	if got, ok := d.Welcome(); !ok || got.ConnectionID != w.ConnectionID {
		t.Errorf("Welcome() = %+v %v", got, ok)
	}
	conns, err := user.ListWSConnections(context.Background())
	if err != nil || len(conns.Data) != 1 || conns.Data[0].MachineID != "m-9" || conns.Data[0].Hostname != "edge" {
		t.Fatalf("connections: %+v %v", conns, err)
	}
	if err := d.stop(t); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if _, ok := d.Welcome(); ok {
		t.Error("Welcome() still set after Run returned")
	}

	unknown, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := client.New(env.URL, client.WithHTTPClient(&http.Client{Transport: tr}), client.WithAPIKey(unknown))
	if err != nil {
		t.Fatal(err)
	}
	refused := startDaemon(t, stranger, client.ConnectorOptions{Auth: client.AuthFirstMessage})
	var closed *client.CloseError
	if err := refused.ended(t); !errors.As(err, &closed) || closed.Code != 1008 || closed.Reason != "UNKNOWN_API_KEY" {
		t.Fatalf("Run returned %v, want close 1008 UNKNOWN_API_KEY", err)
	}
}

// TestConnectorTooManyConnections: a second connector on a free key (one
// connection) is refused with 429 and keeps trying, with backoff, until
// the first one leaves.
func TestConnectorTooManyConnections(t *testing.T) {
	env := newEnv(t)
	_, c, _, tr := keyClient(t, env, "busy@example.com", "ws:connect")
	noLeaks(t, tr)
	first := startDaemon(t, c, client.ConnectorOptions{})
	first.welcome(t)
	second := startDaemon(t, c, client.ConnectorOptions{MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	var refusals []disconnect
	for deadline := time.Now().Add(waitLimit); len(refusals) < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second connector did not retry")
		}
		refusals = second.reconnects()
	}
	for _, r := range refusals {
		var apiErr *client.Error
		if !errors.As(r.err, &apiErr) || apiErr.Status != http.StatusTooManyRequests || apiErr.Code != "TOO_MANY_CONNECTIONS" {
			t.Fatalf("refusal: %v", r.err)
		}
	}
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	second.welcome(t)
	second.stop(t)
}

// TestConnectorRespectsRateLimit: after RATE_LIMITED with
// retry_after_ms, Send waits that long, so the next message is served.
func TestConnectorRespectsRateLimit(t *testing.T) {
	env := newEnv(t)
	_, c, _, tr := keyClient(t, env, "chatty@example.com", "ws:connect")
	noLeaks(t, tr)
	d := startDaemon(t, c, client.ConnectorOptions{})
	w := d.welcome(t)
	ctx := context.Background()
	// A few more than the free tier's burst, without waiting for answers:
	// the budget refills one a second, and a loaded machine may take that
	// long over the burst (each refused message is a warning; ten close).
	for i := 0; i < w.Limits.MessagesPerMinute+3; i++ {
		if err := d.Send(ctx, map[string]any{"type": "ping", "id": i}); err != nil {
			t.Fatal(err)
		}
	}
	limited := d.message(t, "error")
	if limited.Code != "RATE_LIMITED" || limited.RetryAfterMs <= 0 {
		t.Fatalf("want RATE_LIMITED with retry_after_ms, got %s", limited.Raw)
	}
	start := time.Now()
	if err := d.Send(ctx, map[string]any{"type": "ping", "id": "after"}); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Duration(limited.RetryAfterMs)*time.Millisecond/2 {
		t.Errorf("Send waited %v after retry_after_ms=%d", waited, limited.RetryAfterMs)
	}
	for {
		m := d.message(t, "pong")
		if string(m.ID) == `"after"` {
			break
		}
	}
	select {
	case m := <-d.messages:
		if m.Type == "error" {
			t.Errorf("after waiting: %s", m.Raw)
		}
	default:
	}
	d.stop(t)
}

// TestBackoffBounds: every delay lies in [0, min(max, min·2ⁿ)), and the
// delays spread over that range (full jitter), even for huge attempts.
func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	const minDelay, maxDelay = 100 * time.Millisecond, 10 * time.Second
	for attempt := range 80 {
		ceiling := maxDelay
		if attempt < 7 {
			ceiling = minDelay << attempt
		}
		var lo, hi time.Duration = ceiling, 0
		for range 500 {
			d := client.Backoff(attempt, minDelay, maxDelay)
			if d < 0 || d >= ceiling {
				t.Fatalf("attempt %d: %v outside [0, %v)", attempt, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo > ceiling/4 || hi < ceiling*3/4 {
			t.Errorf("attempt %d: delays in [%v, %v], not spread over [0, %v)", attempt, lo, hi, ceiling)
		}
	}
}

// TestConnectorStopsOnCancel: cancel closes with 1000 (the server then
// lists no connection) and Run returns nil.
func TestConnectorStopsOnCancel(t *testing.T) {
	env := newEnv(t)
	user, c, _, tr := keyClient(t, env, "cancel@example.com", "ws:connect")
	noLeaks(t, tr)
	// A ping unanswered within the interval drops the connection: 20 ms
	// was too short for a loaded machine's scheduling.
	const ping = 100 * time.Millisecond
	d := startDaemon(t, c, client.ConnectorOptions{PingInterval: ping})
	d.welcome(t)
	time.Sleep(3*ping + ping/2) // a few keep-alive pings; nothing asserts them, the close is under test
	if err := d.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitNoConnections(t, user)
	if n := len(d.reconnects()); n != 0 {
		t.Errorf("%d reconnects", n)
	}
}

// TestConnectorRetriesNetworkErrors: with nothing listening, the
// connector keeps trying, and its error names the endpoint without the
// query (a ticket there would be a credential).
func TestConnectorRetriesNetworkErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	leaks := noLeaks(t)
	c, err := client.New("http://"+addr, client.WithAPIKey("mk_unused"))
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, c, client.ConnectorOptions{MachineID: "m-secret", MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	for deadline := time.Now().Add(waitLimit); len(d.reconnects()) < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no retries")
		}
	}
	if err := d.stop(t); err != nil {
		t.Errorf("Run: %v", err)
	}
	got := d.reconnects()[0].err.Error()
	if want := "connect to ws://" + addr + "/v1/ws: dial tcp " + addr + ": connect: connection refused"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	leaks()
}

// blackhole forwards TCP connections to target until freeze, after
// which the connections it holds swallow everything, both ways, without
// closing: a peer gone silent, as behind a dead NAT. New connections
// are forwarded normally.
type blackhole struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*holeConn
	wg     sync.WaitGroup
}

type holeConn struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		hc := &holeConn{client: c, server: s}
		b.mu.Lock()
		b.conns = append(b.conns, hc)
		b.mu.Unlock()
		b.wg.Add(2)
		go b.pipe(hc, c, s)
		go b.pipe(hc, s, c)
	}
}

func (b *blackhole) pipe(hc *holeConn, from, to net.Conn) {
	defer b.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			to.Close()
			return
		}
		if !hc.frozen.Load() {
			if _, err := to.Write(buf[:n]); err != nil {
				from.Close()
				return
			}
		}
	}
}

// freeze silences every connection open now.
func (b *blackhole) freeze() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.frozen.Store(true)
	}
}

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.client.Close()
		c.server.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// TestConnectorDetectsSilentPeer: when the server stops answering (the
// network swallows everything), the connector's unanswered ping ends the
// session within about one PingInterval, and it reconnects.
func TestConnectorDetectsSilentPeer(t *testing.T) {
	env := newEnv(t)
	// A team owner may hold several connections per key: the silenced
	// one stays registered until the server's own ping gives up on it.
	_, _, key, tr := keyClient(t, env, "silent@example.com", "ws:connect")
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team'"); err != nil {
		t.Fatal(err)
	}
	leaks := noLeaks(t, tr)
	hole := newBlackhole(t, env.Server.Listener.Addr().String())
	viaHole, err := client.New("http://"+hole.ln.Addr().String(), client.WithHTTPClient(&http.Client{Transport: tr}), client.WithAPIKey(key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, viaHole, client.ConnectorOptions{PingInterval: 100 * time.Millisecond})
	first := d.welcome(t)
	hole.freeze()
	second := d.welcome(t)
	if second.ConnectionID == first.ConnectionID {
		t.Fatal("no new session")
	}
	gone := d.reconnects()
	if len(gone) == 0 {
		t.Fatal("no disconnect reported")
	}
	if err := d.stop(t); err != nil {
		t.Errorf("Run: %v", err)
	}
	hole.close()
	leaks()
}
