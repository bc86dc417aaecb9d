package ws

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/handover"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ratelimit"
	"github.com/keyhub/keyhub/internal/wire"
)

// Error codes that only the WebSocket protocol uses.
const (
	CodeUnknownType  keyhub.Code = "UNKNOWN_TYPE"
	CodeUnknownTopic keyhub.Code = "UNKNOWN_TOPIC"
)

const (
	// writeTimeout bounds one message to a slow peer.
	writeTimeout = 10 * time.Second
	// eventBacklog is how many events may wait for a slow subscriber
	// before it is disconnected rather than slowing the writer of events.
	eventBacklog = 64
	// maxRateStrikes is how many messages over the rate limit are answered
	// with RATE_LIMITED within strikeWindow before the connection is
	// closed. They are counted in a window, not since the last allowed
	// message: a client slipping one allowed message between bursts would
	// otherwise never be closed.
	maxRateStrikes = 10
	strikeWindow   = time.Minute
)

// conn is one authenticated connection. It costs one goroutine, the
// reader: closing, the session's end and pings run on timers and on the
// goroutines of whoever asks (the hub, under its lock), and events get a
// writer goroutine only once the connection subscribes. Idle daemons are
// most connections, and each goroutine's stack was their largest cost.
type conn struct {
	id        uuid.UUID
	ws        *websocket.Conn
	principal keyhub.Principal // a copy: the cache's is shared
	// admitted is the scope the socket was opened with (ws:connect, or a
	// gateway route's); lostScopes are the principal's scopes its key lost
	// since (PATCH). Losing is for good, for this socket: a change heard
	// late or twice can never give a scope back, whatever the order.
	admitted    keyhub.Scopes
	lostScopes  atomic.Uint64
	machineID   string
	hostname    string
	client      netip.Addr // the trusted client address, judged against the key's networks (and listed)
	connectedAt time.Time
	release     func() // gives the connection's slot back (idempotent)
	requestID   string // the upgrade request's, for the close's log line
	// upstream is the product's socket this one is relayed to (Relay);
	// nil for keyhub's own protocol.
	upstream *websocket.Conn
	// inbox opens the secrets a refresh seals to this connection (a key's
	// connection on keyhub's protocol; nil otherwise); rotatedTo is the
	// new key last handed over, so a delivery heard twice is sent once.
	inbox     *handover.Inbox
	rotatedTo atomic.Pointer[uuid.UUID]

	lastActivity atomic.Int64 // unix nanoseconds
	subscribed   atomic.Bool
	// closing is set by the first of kill (a close handshake, in its own
	// goroutine) and the reader's end; closed, below, is done when kill's
	// handshake has returned. (Beside subscribed, so the two 4-byte flags
	// share one word: see TestConnFitsItsSizeClass.)
	closing atomic.Bool
	// events is made, with the goroutine that writes them, on the first
	// subscribe, by the reader; the hub reads it only once subscribed is
	// set, which orders the two.
	events chan *keyhub.Event

	// The credential's state can change while the socket is open (a
	// grace period set by a refresh, a tier change): the hub stores the
	// new state here and calls update, which applies it.
	tier      atomic.Value // keyhub.Tier
	keyExpiry atomic.Pointer[time.Time]

	// mu guards the session's end, which update changes and the session
	// timer reads.
	mu        sync.Mutex
	expiresAt time.Time // the credential's expiry as known now (zero: none)
	endCode   websocket.StatusCode
	endReason string
	session   *time.Timer // ends the connection at the session's end
	pinger    *time.Timer
	endedBy   string // what ended the connection, for the log line
	// closedWith is the close code sent or received, for the metrics;
	// abnormal until a close frame is.
	closedWith websocket.StatusCode
	closeSent  bool // closedWith is the server's own
	// toldExpiry is the expiry warning last sent (key_expiring), so that
	// one heard twice is sent once (firstTold); nil until one is. A
	// pointer: few sockets are ever warned, and the 24 bytes it saves keep
	// conn in its size class (TestConnFitsItsSizeClass).
	toldExpiry *keyhub.ExpiryWarning

	closed chan struct{} // done when kill's close handshake has returned
	ended  chan struct{} // closed when serve returns
}

// update applies the tier and key expiry the hub stored: a new tier's
// limits apply to the open socket; a key's new expiry (a grace period) can
// only bring its end forward. It never blocks on I/O, so the hub can call
// it under its lock.
func (c *conn) update() {
	c.mu.Lock()
	defer c.mu.Unlock()
	limits := c.currentTier().Limits()
	c.ws.SetReadLimit(limits.WSMaxMessageBytes)
	if exp := c.keyExpiry.Load(); exp != nil && (c.expiresAt.IsZero() || exp.Before(c.expiresAt)) {
		c.expiresAt = *exp
	}
	c.scheduleEnd(limits)
}

// scheduleEnd (re)arms the session timer. c.mu is held.
func (c *conn) scheduleEnd(limits keyhub.TierLimits) time.Time {
	end, code, reason := c.sessionEnd(limits, c.expiresAt)
	c.endCode, c.endReason = code, reason
	if c.session == nil {
		c.session = time.AfterFunc(time.Until(end), c.endSession)
	} else {
		c.session.Reset(time.Until(end))
	}
	return end
}

// endSession closes the connection when its session is over.
func (c *conn) endSession() {
	c.mu.Lock()
	code, reason := c.endCode, c.endReason
	c.mu.Unlock()
	c.kill(code, reason)
}

// currentTier is the tier the connection's limits follow now.
func (c *conn) currentTier() keyhub.Tier { return c.tier.Load().(keyhub.Tier) }

// currentPrincipal is the principal with its tier and scopes as they are
// now.
func (c *conn) currentPrincipal() keyhub.Principal {
	p := c.principal
	p.Tier = c.currentTier()
	p.Scopes = c.scopes()
	return p
}

// scopes are what the socket may still do: its key's scopes at admission
// less those taken away since.
func (c *conn) scopes() keyhub.Scopes {
	return c.principal.Scopes &^ keyhub.Scopes(c.lostScopes.Load())
}

// narrow records that the socket's key holds only held now, and reports
// whether the socket keeps what it needs: the scope it was admitted with,
// and events:read while it is subscribed. (subscribe sets subscribed and
// then checks the scope, narrow records the loss and then reads
// subscribed: one of them sees the other.)
func (c *conn) narrow(held keyhub.Scopes) bool {
	if lost := c.principal.Scopes &^ held; lost != 0 {
		c.lostScopes.Or(uint64(lost))
	}
	need := c.admitted
	if c.subscribed.Load() {
		need |= keyhub.ScopeEventsRead
	}
	return c.scopes().Has(need)
}

// kill closes the connection with code; the first request wins. The close
// handshake runs in its own goroutine while the reader keeps reading (the
// peer's close frame comes through it), so kill never blocks and the hub
// can call it under its lock.
func (c *conn) kill(code websocket.StatusCode, reason string) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	c.endedBy, c.closedWith, c.closeSent = reason, code, true
	c.mu.Unlock()
	go func() {
		defer close(c.closed)
		c.ws.Close(code, reason)
	}()
}

// fail drops the connection without a handshake (the peer is gone or does
// not read), unless it is already closing.
func (c *conn) fail(reason string) {
	if c.closing.CompareAndSwap(false, true) {
		c.setEndedBy(reason)
		c.ws.CloseNow()
		close(c.closed)
	}
}

// closeCode records the peer's close code, unless the server sent its own.
func (c *conn) closeCode(code websocket.StatusCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closeSent {
		c.closedWith = code
	}
}

// readEnded records how the client's reader ended: the peer's close code
// (unless the server sent its own), or the 1009 the library sent when a
// message passed the read limit (its error carries no close status).
func (c *conn) readEnded(err error) {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		c.mu.Lock()
		if !c.closeSent {
			c.endedBy, c.closedWith, c.closeSent = "message too big", websocket.StatusMessageTooBig, true
		}
		c.mu.Unlock()
		return
	}
	if code := websocket.CloseStatus(err); code != -1 {
		c.closeCode(code)
	}
}

func (c *conn) setEndedBy(reason string) {
	c.mu.Lock()
	c.endedBy = reason
	c.mu.Unlock()
}

// deliver queues an event without blocking.
func (c *conn) deliver(e *keyhub.Event) {
	select {
	case c.events <- e:
	default:
		c.kill(websocket.StatusTryAgainLater, "too slow to receive events")
	}
}

func (c *conn) touch() { c.lastActivity.Store(time.Now().UnixNano()) }

// serve runs an authenticated connection until it ends, whichever way,
// then gives its slot back (c.release). It runs on a goroutine of its own:
// the upgrade's handler returns, and with it net/http's goroutine and the
// deep stack it grew serving the request.
func (h *Hub) serve(c *conn) {
	limits := c.currentTier().Limits()
	c.ws.SetReadLimit(limits.WSMaxMessageBytes)
	c.mu.Lock()
	c.expiresAt = c.principal.ExpiresAt
	sessionEnd := c.scheduleEnd(limits)
	c.mu.Unlock()
	defer c.session.Stop()
	if err := h.register(c); err != nil {
		c.release()
		if c.upstream != nil {
			c.upstream.Close(closeCodeOf(err), string(keyhub.ErrorCode(err)))
		}
		c.ws.Close(closeCodeOf(err), string(keyhub.ErrorCode(err)))
		h.metrics.WSClosed(int(closeCodeOf(err)))
		return
	}
	defer h.unregister(c)
	// Deferred after unregister, so it runs first: once a connection is
	// gone from the list, its slot is free on every process.
	defer c.release()
	defer func() {
		c.mu.Lock()
		closedWith := c.closedWith
		c.mu.Unlock()
		h.metrics.WSClosed(int(closedWith))
	}()
	// Ends before the close is counted: a scrape that sees the close sees
	// the connection gone.
	h.metrics.WSOpened(c.principal.Tier)
	defer h.metrics.WSEnded(c.principal.Tier)
	defer func() {
		c.mu.Lock()
		endedBy := c.endedBy
		c.mu.Unlock()
		h.log.Info("websocket closed", "request_id", c.requestID,
			"connection_id", c.id, "owner_id", c.principal.OwnerID, "auth_method", c.principal.Method,
			"key_prefix", c.principal.KeyPrefix, "duration_ms", time.Since(c.connectedAt).Milliseconds(), "ended_by", endedBy)
	}()

	// Not the request's context, which ends with the handler; and not a
	// cancellable one either: the library registers a callback on the
	// context of every blocked Read, and for a cancellable context that is
	// ≈1 KiB per idle connection. The connection ends by being closed;
	// ended tells the timers and the event writer.
	ctx := context.Background()
	defer close(c.ended)
	welcome := api.WSWelcome{
		Type:         "welcome",
		ConnectionID: c.id,
		Tier:         string(c.principal.Tier),
		Limits:       wire.WSLimitsFrom(limits),
		ExpiresAt:    api.Timestamp(sessionEnd),
	}
	if c.principal.IsKey() {
		welcome.KeyID = &c.principal.KeyID
	}
	// A relayed socket speaks its upstream's protocol: no welcome.
	if c.upstream == nil {
		if err := h.send(ctx, c.ws, welcome); err != nil {
			c.fail("write failed")
			return
		}
		h.tellExpiryWarningGiven(c)
	}

	c.mu.Lock()
	c.pinger = time.AfterFunc(h.pingInterval, func() { h.ping(c) })
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.pinger.Stop()
		c.mu.Unlock()
	}()

	var readErr error
	if c.upstream != nil {
		readErr = h.relay(ctx, c)
	} else {
		readErr = h.readLoop(ctx, c)
	}
	c.readEnded(readErr)
	// Whatever ended the reader, a close handshake kill started finishes
	// before the connection is dropped.
	if !c.closing.CompareAndSwap(false, true) {
		<-c.closed
	}
	c.ws.CloseNow()
}

// ping checks that the peer still answers, and re-arms itself; a peer that
// does not answer within the interval is disconnected.
func (h *Hub) ping(c *conn) {
	pingCtx, cancel := context.WithTimeout(context.Background(), h.pingInterval)
	defer cancel()
	if err := c.ws.Ping(pingCtx); err != nil {
		if !c.hasEnded() {
			c.kill(websocket.StatusTryAgainLater, "ping timeout")
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A connection on its way out is not pinged again: a re-armed timer
	// would hold it for another interval.
	if !c.hasEnded() && !c.closing.Load() {
		c.pinger.Reset(h.pingInterval)
	}
}

// hasEnded reports whether serve has finished with the connection.
func (c *conn) hasEnded() bool {
	select {
	case <-c.ended:
		return true
	default:
		return false
	}
}

// writeEvents sends the events of a subscribed connection until it ends.
func (h *Hub) writeEvents(ctx context.Context, c *conn) {
	for {
		select {
		case <-c.ended:
			return
		case e := <-c.events:
			event := wire.EventFrom(*e)
			if err := h.send(ctx, c.ws, api.WSMessage{Type: "event", Event: &event}); err != nil {
				c.fail("write failed")
				return
			}
		}
	}
}

// sessionEnd is when the connection must end, and with which code: the
// tier's session length, or the credential's expiry when that comes first.
func (c *conn) sessionEnd(limits keyhub.TierLimits, expiresAt time.Time) (time.Time, websocket.StatusCode, string) {
	end := c.connectedAt.Add(limits.WSSession)
	if !expiresAt.IsZero() && expiresAt.Before(end) {
		if c.principal.IsKey() {
			return expiresAt, StatusKeyRevoked, "key expired"
		}
		return expiresAt, StatusSessionExpired, "session expired"
	}
	return end, StatusSessionExpired, "session expired"
}

// spendMessage spends one message of c's budget. The budget is the key's
// (the user's, for a session) at its current tier, shared by all its
// connections and, with Redis, by every process: a budget per connection
// would start afresh on every reconnect.
func (h *Hub) spendMessage(ctx context.Context, c *conn) ratelimit.Decision {
	p := c.currentPrincipal()
	return h.limits.WSMessage(ctx, &p)
}

// readLoop reads and answers the client's messages until the connection
// fails or closes.
func (h *Hub) readLoop(ctx context.Context, c *conn) error {
	// A bucket of maxRateStrikes warnings refilled over strikeWindow: a
	// sliding window, so bursts straddling a window's edge gain nothing.
	strikes := rate.NewLimiter(rate.Every(strikeWindow/maxRateStrikes), maxRateStrikes)
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		h.metrics.WSMessageIn()
		c.touch()
		if d := h.spendMessage(ctx, c); !d.Allowed {
			if !strikes.Allow() {
				c.kill(websocket.StatusPolicyViolation, "rate limit exceeded")
				continue // keep reading so that the close handshake completes
			}
			if err := h.send(ctx, c.ws, errorMessage(keyhub.CodeRateLimited, "too many messages", retryAfterMs(d.RetryAfter))); err != nil {
				return err
			}
			continue
		}
		if err := h.answer(ctx, c, data); err != nil {
			return err
		}
	}
}

// answer handles one message; an error means the connection failed.
func (h *Hub) answer(ctx context.Context, c *conn, data []byte) error {
	var msg api.WSClientMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return h.send(ctx, c.ws, errorMessage(keyhub.CodeInvalidJSON, "messages must be JSON objects with a \"type\"", 0))
	}
	switch msg.Type {
	case "ping":
		return h.send(ctx, c.ws, api.WSMessage{Type: "pong", ID: msg.ID})
	case "whoami":
		p := c.currentPrincipal()
		me := wire.MeFrom(&p, h.scopes, h.limits.RequestsPerMinute(p.Tier))
		return h.send(ctx, c.ws, api.WSMessage{Type: "whoami", Me: &me})
	case "subscribe", "unsubscribe":
		if msg.Topic != "events" {
			return h.send(ctx, c.ws, errorMessage(CodeUnknownTopic, "the only topic is \"events\"", 0))
		}
		// The audit trail is what events:read guards over REST.
		errNoEvents := errorMessage(keyhub.CodeInsufficientScope, "subscribing to events needs the events:read scope", 0)
		if !c.scopes().Has(keyhub.ScopeEventsRead) {
			return h.send(ctx, c.ws, errNoEvents)
		}
		if msg.Type == "subscribe" && c.events == nil {
			c.events = make(chan *keyhub.Event, eventBacklog)
			go h.writeEvents(ctx, c)
		}
		c.subscribed.Store(msg.Type == "subscribe")
		if !c.scopes().Has(keyhub.ScopeEventsRead) { // taken away meanwhile (see narrow)
			c.subscribed.Store(false)
			return h.send(ctx, c.ws, errNoEvents)
		}
		return h.send(ctx, c.ws, api.WSMessage{Type: msg.Type + "d", Topic: msg.Topic})
	default:
		return h.send(ctx, c.ws, errorMessage(CodeUnknownType, "unknown message type", 0))
	}
}

// errorMessage is the protocol's answer to a message it refuses.
func errorMessage(code keyhub.Code, message string, retryAfterMs int64) api.WSMessage {
	return api.WSMessage{Type: "error", Code: string(code), Message: message, RetryAfterMs: retryAfterMs}
}

// writeJSON sends v, giving up on a peer that does not read.
func writeJSON(ctx context.Context, ws *websocket.Conn, v any) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return wsjson.Write(ctx, ws, v)
}

// send is writeJSON on an authenticated connection, counted.
func (h *Hub) send(ctx context.Context, ws *websocket.Conn, v any) error {
	h.metrics.WSMessageOut()
	return writeJSON(ctx, ws, v)
}

// closeCodeOf is the close code for an error after the upgrade.
func closeCodeOf(err error) websocket.StatusCode {
	var kerr *keyhub.Error
	if errors.As(err, &kerr) {
		switch kerr.Code {
		case keyhub.CodeNotReady:
			return websocket.StatusGoingAway
		case keyhub.CodeKeyRevoked, keyhub.CodeKeyDisabled:
			return StatusKeyRevoked
		case keyhub.CodeUnavailable, keyhub.CodeRateLimited, keyhub.CodeTooManyConnections:
			return websocket.StatusTryAgainLater // not the client's fault, or not for long
		case keyhub.CodeInternal:
			return websocket.StatusInternalError
		}
	}
	return websocket.StatusPolicyViolation
}

// retryAfterMs is a wait in whole milliseconds, rounded up: a client that
// waits exactly retry_after_ms must find a token (rounding down sent
// clients back a fraction of a millisecond early, to be refused again).
func retryAfterMs(delay time.Duration) int64 {
	return max((delay + time.Millisecond - 1).Milliseconds(), 1)
}
