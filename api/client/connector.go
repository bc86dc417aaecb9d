package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
)

// Close codes of keyhub's WebSocket protocol that a daemon branches on.
const (
	// CloseSessionExpired: the tier's session length is over; reconnect.
	CloseSessionExpired = 4000
	// CloseKeyRevoked: the key was revoked, refreshed without grace, or
	// expired ("key revoked" / "key expired"); reconnecting cannot help.
	CloseKeyRevoked = 4001
	// CloseClosedByOwner: the owner closed this connection
	// (DELETE /v1/ws/connections/{id}); it is not meant to come back.
	CloseClosedByOwner = 4002
)

// Protocol defaults.
const (
	// DefaultPingInterval is the protocol's keep-alive interval: the
	// server pings every 30 s and drops peers that stop answering.
	DefaultPingInterval = 30 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the reconnect delays.
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = time.Minute
	// stableSession is how long a session must last for the next
	// reconnect to start again from the shortest delay: a server that
	// accepts and then drops at once still sees growing delays.
	stableSession = 30 * time.Second
	// welcomeTimeout bounds the wait for the server's first message.
	welcomeTimeout = 30 * time.Second
)

// AuthMode is how a Connector authenticates its WebSocket.
type AuthMode int

const (
	// AuthHeader sends the credential in the upgrade's Authorization
	// header; refusals come back as API errors before the upgrade.
	AuthHeader AuthMode = iota
	// AuthTicket first gets a single-use ticket (POST /v1/ws/tickets),
	// then opens /v1/ws?ticket=, with no credential on the upgrade.
	AuthTicket
	// AuthFirstMessage opens the WebSocket without credentials and sends
	// them as the first message (the seed daemon's "authenticate" message
	// for a key, carrying MachineID and Hostname; "auth" for a token).
	AuthFirstMessage
)

// ConnectorOptions configure a Connector. Zero values mean the defaults.
type ConnectorOptions struct {
	Auth AuthMode
	// Path is the endpoint: /v1/ws (default), or the seed services'
	// /ws/daemon or /ws (the same endpoint).
	Path string
	// MachineID and Hostname describe this daemon (sent as the upgrade's
	// machine_id and hostname parameters, and in the first message); the
	// server lists them in GET /v1/ws/connections.
	MachineID, Hostname string
	// PingInterval is how often the connector pings; a ping unanswered
	// within it counts as a lost connection. Default DefaultPingInterval.
	PingInterval time.Duration
	// MinBackoff and MaxBackoff bound reconnect delays: attempt n waits a
	// random time in [0, min(MaxBackoff, MinBackoff·2ⁿ)) ("full jitter"),
	// or the server's Retry-After (429, 503) when longer, up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration

	// The callbacks are called one at a time, from the goroutine that
	// called Run, so they need no locking among themselves; they should
	// not block for long (reading waits for them).

	// OnWelcome is called on each new session with the server's welcome.
	OnWelcome func(api.WSWelcome)
	// OnMessage is called with every message after the welcome, in order.
	OnMessage func(api.WSMessage)
	// OnKeyExpiring is called when keyhub warns that the connection's key
	// enters an expiry warning window (7 days, then 1 day, before
	// ExpiresAt), after OnMessage heard the same message: the daemon's cue
	// to get the key replaced before it stops working. keyhub repeats the
	// warning after the welcome of every later connection with the key
	// (a new process must learn it); the connector reports each warning
	// (key, expiry, window) once in its lifetime, however often it
	// reconnects, so the 1-day warning after the 7-day one, or a rotated
	// key's own, is reported, and a reconnect repeats nothing.
	OnKeyExpiring func(api.WSKeyExpiring)
	// OnDisconnect is called when a session ends (or a connection attempt
	// fails) and the connector will try again after retryIn.
	OnDisconnect func(err error, retryIn time.Duration)

	// KeyFile, when set, is where the connector stores a rotated key
	// (the key and a newline, mode 0600, replaced atomically): the file
	// the daemon read its key from, so that a restart finds the new one.
	KeyFile string
	// OnKeyRotated is called when keyhub hands this connection a rotated
	// key (zero-touch rotation), after the client switched to it and
	// KeyFile was written (stored is that write's error, nil without
	// KeyFile); the connector then reconnects with the new key at once.
	// Store the key here if it lives elsewhere. The message is never
	// passed to OnMessage: it holds a secret.
	OnKeyRotated func(rotated api.WSKeyRotated, stored error)
}

// ErrKeyRotated ends a session whose key keyhub rotated: the connector
// reconnects with the new key at once (OnDisconnect hears it).
var ErrKeyRotated = errors.New("keyhub rotated the key: reconnecting with the new one")

// CloseError is a WebSocket close from the server that the connector
// does not recover from (4001, 4002, 1008, ...): Run returns it.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("keyhub closed the WebSocket: %d %s", e.Code, e.Reason)
}

// ErrNotConnected is returned by Send while no session is open.
var ErrNotConnected = errors.New("keyhub WebSocket: not connected")

// Connector holds a daemon's WebSocket to keyhub open: it reconnects
// with exponential backoff and full jitter after network errors and the
// closes that invite it (1001, 1006, 1011, 1012, 1013, 4000, and 429
// TOO_MANY_CONNECTIONS), re-subscribes, and stops for good on the rest
// (4001 key revoked or expired, 4002 closed by owner, 1008 policy, and
// refusals such as 401 and 403), so revoked daemons do not hammer the
// server. Its methods are safe for concurrent use.
type Connector struct {
	client *Client
	opts   ConnectorOptions

	mu        sync.Mutex
	conn      *websocket.Conn // nil between sessions
	welcome   *api.WSWelcome
	topics    map[string]bool
	notBefore time.Time // the server asked us to wait (RATE_LIMITED)

	// reported are the expiry warnings OnKeyExpiring was given; only
	// dispatch, on Run's goroutine, uses it.
	reported map[expiryWarning]bool
}

// expiryWarning identifies a key_expiring warning: the key, its expiry
// (in microseconds, as keyhub sends times) and the window entered.
type expiryWarning struct {
	keyID     uuid.UUID
	expiresAt int64
	window    int64
}

// Connector returns a connector using c's base URL, credential and HTTP
// client. Nothing happens until Run.
func (c *Client) Connector(opts ConnectorOptions) *Connector {
	if opts.Path == "" {
		opts.Path = "/v1/ws"
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	return &Connector{client: c, opts: opts, topics: map[string]bool{}, reported: map[expiryWarning]bool{}}
}

// Welcome is the current session's welcome; false between sessions.
func (k *Connector) Welcome() (api.WSWelcome, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.welcome == nil {
		return api.WSWelcome{}, false
	}
	return *k.welcome, true
}

// Subscribe asks for a topic's messages ("events": the owner's audit
// events, scope events:read), now if connected and again after every
// reconnect. The server's "subscribed" (or error) arrives in OnMessage.
func (k *Connector) Subscribe(ctx context.Context, topic string) error {
	k.mu.Lock()
	k.topics[topic] = true
	k.mu.Unlock()
	return k.sendTopic(ctx, "subscribe", topic)
}

// Unsubscribe stops a topic, now and after reconnects.
func (k *Connector) Unsubscribe(ctx context.Context, topic string) error {
	k.mu.Lock()
	delete(k.topics, topic)
	k.mu.Unlock()
	return k.sendTopic(ctx, "unsubscribe", topic)
}

func (k *Connector) sendTopic(ctx context.Context, typ, topic string) error {
	err := k.Send(ctx, api.WSClientMessage{Type: typ, Topic: topic})
	if errors.Is(err, ErrNotConnected) {
		return nil // the next session sends it
	}
	return err
}

// Send writes one message (JSON-encoded) on the current session,
// waiting first if the server answered RATE_LIMITED with retry_after_ms.
func (k *Connector) Send(ctx context.Context, msg any) error {
	raw, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	k.mu.Lock()
	wait := time.Until(k.notBefore)
	k.mu.Unlock()
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
	k.mu.Lock()
	conn := k.conn
	k.mu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.Write(ctx, websocket.MessageText, raw)
}

// Run connects and keeps connecting until ctx is done (it then closes
// the WebSocket with 1000 and returns nil) or the server says not to
// come back: then it returns a *CloseError (4001, 4002, 1008, ...) or an
// *Error (a refused upgrade or ticket: 401, 403, ...). Call it once.
func (k *Connector) Run(ctx context.Context) error {
	attempt := 0
	for {
		started := time.Now()
		welcomed, err := k.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		retry, serverWait := shouldReconnect(err)
		if !retry {
			return err
		}
		if welcomed && time.Since(started) >= stableSession {
			attempt = 0
		}
		// The server's Retry-After counts, up to MaxBackoff: a daemon
		// never sleeps longer than its owner allowed.
		wait := max(Backoff(attempt, k.opts.MinBackoff, k.opts.MaxBackoff), min(serverWait, k.opts.MaxBackoff))
		attempt++
		if errors.Is(err, ErrKeyRotated) {
			// The old key's grace is running out: reconnect now.
			wait, attempt = 0, 0
		}
		if k.opts.OnDisconnect != nil {
			k.opts.OnDisconnect(err, wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// Backoff is the delay before reconnect attempt n (from 0): a random
// duration in [0, min(maxDelay, minDelay·2ⁿ)), "full jitter", so a fleet
// of daemons that lost the server together does not return together.
func Backoff(attempt int, minDelay, maxDelay time.Duration) time.Duration {
	ceiling := minDelay
	for i := 0; i < attempt && ceiling < maxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxDelay)
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

// shouldReconnect classifies the end of a session: whether to try again,
// and how long the server asked us to wait at least.
func shouldReconnect(err error) (bool, time.Duration) {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.Status == http.StatusTooManyRequests:
			return true, apiErr.RetryAfter
		case apiErr.Status >= 500:
			return true, apiErr.RetryAfter
		}
		return false, 0
	}
	var closeErr *CloseError
	if errors.As(err, &closeErr) {
		switch closeErr.Code {
		case int(websocket.StatusGoingAway), int(websocket.StatusAbnormalClosure), int(websocket.StatusInternalError),
			int(websocket.StatusServiceRestart), int(websocket.StatusTryAgainLater), CloseSessionExpired:
			return true, 0
		case int(websocket.StatusPolicyViolation):
			// After first-message auth, one connection too many is a 1008
			// whose reason is the code: the same as a 429 before the upgrade.
			return closeErr.Reason == "TOO_MANY_CONNECTIONS", 0
		}
		return false, 0
	}
	return true, 0 // the network, a timeout, a welcome that never came
}

// session runs one connection to its end. welcomed reports whether the
// server accepted it.
func (k *Connector) session(ctx context.Context) (welcomed bool, err error) {
	conn, err := k.dial(ctx)
	if err != nil {
		return false, err
	}
	defer conn.CloseNow()

	welcome, err := k.handshake(ctx, conn)
	if err != nil {
		return false, err
	}
	k.mu.Lock()
	k.conn, k.welcome = conn, &welcome
	topics := make([]string, 0, len(k.topics))
	for t := range k.topics {
		topics = append(topics, t)
	}
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.conn, k.welcome = nil, nil
		k.mu.Unlock()
	}()
	if k.opts.OnWelcome != nil {
		k.opts.OnWelcome(welcome)
	}
	for _, topic := range topics {
		raw, _ := json.Marshal(api.WSClientMessage{Type: "subscribe", Topic: topic})
		if err := conn.Write(ctx, websocket.MessageText, raw); err != nil {
			return true, readError(err)
		}
	}

	// Reads end only when the connection does: ctx is watched by
	// keepAlive, which closes with 1000 so the server sees a clean stop.
	sessionCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		k.keepAlive(ctx, sessionCtx, conn)
	}()
	defer wg.Wait()
	defer stop()
	for {
		_, data, err := conn.Read(sessionCtx)
		if err != nil {
			return true, readError(err)
		}
		if k.dispatch(data) {
			conn.Close(websocket.StatusNormalClosure, "reconnecting with a rotated key")
			return true, ErrKeyRotated
		}
	}
}

// keepAlive pings every PingInterval and closes the connection with 1000
// when ctx ends; an unanswered ping drops it (the reader then fails).
func (k *Connector) keepAlive(ctx, sessionCtx context.Context, conn *websocket.Conn) {
	ticker := time.NewTicker(k.opts.PingInterval)
	defer ticker.Stop()
	for {
		select {
		case <-sessionCtx.Done():
			return
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "client shutting down")
			return
		case <-ticker.C:
			pingCtx, cancel := context.WithTimeout(sessionCtx, k.opts.PingInterval)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil && sessionCtx.Err() == nil && ctx.Err() == nil {
				conn.CloseNow()
				return
			}
		}
	}
}

// dispatch hands a message to OnMessage, noting RATE_LIMITED first, then
// an expiry warning to OnKeyExpiring; it takes a rotated key (reporting
// rotated: the session must reconnect).
func (k *Connector) dispatch(data []byte) (rotated bool) {
	var msg api.WSMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return false // not the protocol: nothing a handler could do with it
	}
	if msg.Type == api.WSTypeKeyRotated {
		return k.takeRotatedKey(data)
	}
	msg.Raw = data
	if msg.Type == "error" && msg.Code == "RATE_LIMITED" && msg.RetryAfterMs > 0 {
		k.mu.Lock()
		k.notBefore = time.Now().Add(time.Duration(msg.RetryAfterMs) * time.Millisecond)
		k.mu.Unlock()
	}
	if k.opts.OnMessage != nil {
		k.opts.OnMessage(msg)
	}
	if msg.Type == api.WSTypeKeyExpiring && k.opts.OnKeyExpiring != nil {
		var warning api.WSKeyExpiring
		if json.Unmarshal(data, &warning) == nil && k.firstReport(warning) {
			k.opts.OnKeyExpiring(warning)
		}
	}
	return false
}

// firstReport records warning and reports whether it is new to this
// connector. Warnings of expiries already past are forgotten: a key past
// its expiry connects no more, so the set stays a few entries long.
func (k *Connector) firstReport(warning api.WSKeyExpiring) bool {
	id := expiryWarning{keyID: warning.KeyID, expiresAt: warning.ExpiresAt.UnixMicro(), window: warning.WindowSeconds}
	if k.reported[id] {
		return false
	}
	now := time.Now().UnixMicro()
	for old := range k.reported {
		if old.expiresAt < now {
			delete(k.reported, old)
		}
	}
	k.reported[id] = true
	return true
}

// takeRotatedKey switches the client to the key a key_rotated message
// carries and stores it (KeyFile, OnKeyRotated). A message without a
// well-formed key changes nothing.
func (k *Connector) takeRotatedKey(data []byte) bool {
	var rotated api.WSKeyRotated
	if err := json.Unmarshal(data, &rotated); err != nil || !strings.HasPrefix(rotated.Key, "mk_") || strings.ContainsAny(rotated.Key, " \t\r\n") {
		return false
	}
	k.client.SetAPIKey(rotated.Key)
	var stored error
	if k.opts.KeyFile != "" {
		stored = WriteSecretFile(k.opts.KeyFile, []byte(rotated.Key+"\n"))
	}
	if k.opts.OnKeyRotated != nil {
		k.opts.OnKeyRotated(rotated, stored)
	}
	return true
}

// readError turns a failed read into a *CloseError when the server
// closed with a code, and leaves network errors as they are.
func readError(err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: int(ce.Code), Reason: ce.Reason}
	}
	return err
}

// dial opens the WebSocket; a refused upgrade is an *Error decoded from
// the JSON the server answered instead.
func (k *Connector) dial(ctx context.Context) (*websocket.Conn, error) {
	u := *k.client.base
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path = strings.TrimRight(u.Path, "/") + k.opts.Path
	header := http.Header{"User-Agent": {k.client.userAgent}}
	query := url.Values{}
	setIf(query, "machine_id", k.opts.MachineID)
	setIf(query, "hostname", k.opts.Hostname)
	switch k.opts.Auth {
	case AuthHeader:
		k.client.authorize(header)
	case AuthTicket:
		ticket, err := k.client.IssueWSTicket(ctx)
		if err != nil {
			return nil, fmt.Errorf("get a WebSocket ticket: %w", err)
		}
		query.Set("ticket", ticket.Ticket)
	}
	u.RawQuery = query.Encode()
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: k.client.httpClient, HTTPHeader: header})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			// coder/websocket keeps the first KiB of a refusal's body.
			body, _ := io.ReadAll(resp.Body)
			return nil, decodeError(resp, body)
		}
		// The URL without its query: a ticket is a credential. The
		// innermost network error says what happened without the layers.
		u.RawQuery = ""
		var netErr *net.OpError
		if errors.As(err, &netErr) {
			err = netErr
		}
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	return conn, nil
}

// handshake authenticates (first-message mode) and reads the welcome.
func (k *Connector) handshake(ctx context.Context, conn *websocket.Conn) (api.WSWelcome, error) {
	ctx, cancel := context.WithTimeout(ctx, welcomeTimeout)
	defer cancel()
	if k.opts.Auth == AuthFirstMessage {
		var msg any
		if cred := k.client.currentCredential(); strings.HasPrefix(cred, "mk_") {
			msg = map[string]string{"type": "authenticate", "apiKey": cred, "machineId": k.opts.MachineID, "hostname": k.opts.Hostname}
		} else {
			msg = map[string]string{"type": "auth", "token": cred}
		}
		raw, _ := json.Marshal(msg)
		if err := conn.Write(ctx, websocket.MessageText, raw); err != nil {
			return api.WSWelcome{}, readError(err)
		}
	}
	_, data, err := conn.Read(ctx)
	if err != nil {
		return api.WSWelcome{}, readError(err)
	}
	var welcome api.WSWelcome
	if err := json.Unmarshal(data, &welcome); err != nil || welcome.Type != "welcome" {
		return api.WSWelcome{}, fmt.Errorf("expected a welcome message, got %.200s", data)
	}
	welcome.Raw = data
	return welcome, nil
}
