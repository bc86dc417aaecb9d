package ws

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
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
	// with RATE_LIMITED before the connection is closed.
	maxRateStrikes = 10
)

// closeRequest asks a connection's loop to close it.
type closeRequest struct {
	code   websocket.StatusCode
	reason string
}

// conn is one authenticated connection.
type conn struct {
	id          uuid.UUID
	ws          *websocket.Conn
	principal   keyhub.Principal // a copy: the cache's is shared
	machineID   string
	hostname    string
	remoteAddr  string
	connectedAt time.Time
	release     func() // gives the connection's slot back (idempotent)

	lastActivity atomic.Int64 // unix nanoseconds
	subscribed   atomic.Bool
	events       chan keyhub.Event
	closeReqs    chan closeRequest

	// The credential's state can change while the socket is open (a
	// grace period set by a refresh, a tier change): the hub stores the
	// new state here and signals updates; the connection's loop applies it.
	tier      atomic.Value // keyhub.Tier
	keyExpiry atomic.Pointer[time.Time]
	updates   chan struct{}
}

// update tells the connection's loop to re-read its tier and key expiry.
// It never blocks, so the hub can call it under its lock.
func (c *conn) update() {
	select {
	case c.updates <- struct{}{}:
	default:
	}
}

// currentTier is the tier the connection's limits follow now.
func (c *conn) currentTier() keyhub.Tier { return c.tier.Load().(keyhub.Tier) }

// currentPrincipal is the principal with its tier as it is now.
func (c *conn) currentPrincipal() keyhub.Principal {
	p := c.principal
	p.Tier = c.currentTier()
	return p
}

// kill asks the connection to close; the first request wins. It never
// blocks, so the hub can call it under its lock.
func (c *conn) kill(code websocket.StatusCode, reason string) {
	select {
	case c.closeReqs <- closeRequest{code: code, reason: reason}:
	default:
	}
}

// deliver queues an event without blocking.
func (c *conn) deliver(e keyhub.Event) {
	select {
	case c.events <- e:
	default:
		c.kill(websocket.StatusPolicyViolation, "too slow to receive events")
	}
}

func (c *conn) touch() { c.lastActivity.Store(time.Now().UnixNano()) }

// Messages the server sends.
type (
	welcomeMessage struct {
		Type         string       `json:"type"`
		ConnectionID uuid.UUID    `json:"connection_id"`
		Tier         keyhub.Tier  `json:"tier"`
		Limits       limitsFields `json:"limits"`
		ExpiresAt    time.Time    `json:"expires_at"`
	}
	limitsFields = api.WSLimits
	errorMessage struct {
		Type         string      `json:"type"`
		Code         keyhub.Code `json:"code"`
		Message      string      `json:"message,omitempty"`
		RetryAfterMs int64       `json:"retry_after_ms,omitempty"`
	}
	pongMessage struct {
		Type string          `json:"type"`
		ID   json.RawMessage `json:"id,omitempty"`
	}
	whoamiMessage struct {
		Type string `json:"type"`
		api.Me
	}
	topicMessage struct {
		Type  string `json:"type"`
		Topic string `json:"topic"`
	}
	eventMessage struct {
		Type  string    `json:"type"`
		Event api.Event `json:"event"`
	}
)

// clientMessage is any message a client sends after authenticating.
type clientMessage struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id"`
	Topic string          `json:"topic"`
}

// serve runs an authenticated connection until it ends, whichever way.
func (h *Hub) serve(ctx context.Context, c *conn) {
	if err := h.register(c); err != nil {
		c.ws.Close(closeCodeOf(err), string(keyhub.ErrorCode(err)))
		h.metrics.WSClosed(int(closeCodeOf(err)))
		return
	}
	defer h.unregister(c)
	// Deferred after unregister, so it runs first: once a connection is
	// gone from the list, its slot is free on every process.
	defer c.release()
	closedWith := websocket.StatusAbnormalClosure // until a close frame is sent or received
	defer func() { h.metrics.WSClosed(int(closedWith)) }()
	// Ends before the close is counted: a scrape that sees the close sees
	// the connection gone.
	h.metrics.WSOpened(c.principal.Tier)
	defer h.metrics.WSEnded(c.principal.Tier)
	endedBy := "peer" // what ended the connection, for the log line
	defer func() {
		httpjson.Logger(ctx).Info("websocket closed",
			"connection_id", c.id, "owner_id", c.principal.OwnerID, "auth_method", c.principal.Method,
			"key_prefix", c.principal.KeyPrefix, "duration_ms", time.Since(c.connectedAt).Milliseconds(), "ended_by", endedBy)
	}()

	limits := c.currentTier().Limits()
	c.ws.SetReadLimit(limits.WSMaxMessageBytes)
	expiresAt := c.principal.ExpiresAt
	sessionEnd, endCode, endReason := c.sessionEnd(limits, expiresAt)
	limiter := newMessageLimiter(limits)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	welcome := welcomeMessage{
		Type:         "welcome",
		ConnectionID: c.id,
		Tier:         c.principal.Tier,
		Limits: limitsFields{
			MaxConnections:    limits.WSConnections,
			MessagesPerMinute: limits.WSMessagesPerMinute,
			MaxMessageBytes:   limits.WSMaxMessageBytes,
			SessionSeconds:    int64(limits.WSSession / time.Second),
		},
		ExpiresAt: api.Timestamp(sessionEnd),
	}
	if err := h.send(ctx, c.ws, welcome); err != nil {
		c.ws.CloseNow()
		return
	}

	readDone := make(chan error, 1)
	go func() { readDone <- h.readLoop(ctx, c, limiter) }()
	// Whatever ends the loop, the reader has stopped before serve returns.
	closeWith := func(code websocket.StatusCode, reason string) {
		c.ws.Close(code, reason)
		<-readDone
	}

	session := time.NewTimer(time.Until(sessionEnd))
	defer session.Stop()
	ping := time.NewTicker(h.pingInterval)
	defer ping.Stop()
	for {
		select {
		case err := <-readDone:
			if code := websocket.CloseStatus(err); code != -1 {
				closedWith = code // the peer's
			}
			c.ws.CloseNow()
			return
		case req := <-c.closeReqs:
			endedBy, closedWith = req.reason, req.code
			closeWith(req.code, req.reason)
			return
		case <-session.C:
			endedBy, closedWith = endReason, endCode
			closeWith(endCode, endReason)
			return
		case <-c.updates:
			// A new tier's limits apply to the open socket; a key's new
			// expiry (a grace period) can only bring its end forward.
			limits = c.currentTier().Limits()
			c.ws.SetReadLimit(limits.WSMaxMessageBytes)
			limiter.SetLimit(messageRate(limits))
			limiter.SetBurst(limits.WSMessagesPerMinute)
			if exp := c.keyExpiry.Load(); exp != nil && (expiresAt.IsZero() || exp.Before(expiresAt)) {
				expiresAt = *exp
			}
			sessionEnd, endCode, endReason = c.sessionEnd(limits, expiresAt)
			session.Reset(time.Until(sessionEnd))
		case e := <-c.events:
			if err := h.send(ctx, c.ws, eventMessage{Type: "event", Event: api.EventFrom(e)}); err != nil {
				endedBy = "write failed"
				c.ws.CloseNow()
				<-readDone
				return
			}
		case <-ping.C:
			go func() {
				pingCtx, cancel := context.WithTimeout(ctx, h.pingInterval)
				defer cancel()
				if err := c.ws.Ping(pingCtx); err != nil && ctx.Err() == nil {
					c.kill(websocket.StatusPolicyViolation, "ping timeout")
				}
			}()
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

// newMessageLimiter limits a connection's messages to its tier's rate.
// rate.Limiter is safe for concurrent use: the loop may change its limits
// while the reader uses it.
func newMessageLimiter(limits keyhub.TierLimits) *rate.Limiter {
	return rate.NewLimiter(messageRate(limits), limits.WSMessagesPerMinute)
}

func messageRate(limits keyhub.TierLimits) rate.Limit {
	return rate.Limit(float64(limits.WSMessagesPerMinute) / 60)
}

// readLoop reads and answers the client's messages until the connection
// fails or closes.
func (h *Hub) readLoop(ctx context.Context, c *conn, limiter *rate.Limiter) error {
	strikes := 0
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		h.metrics.WSMessageIn()
		c.touch()
		now := time.Now()
		if res := limiter.ReserveN(now, 1); !res.OK() || res.DelayFrom(now) > 0 {
			delay := res.DelayFrom(now)
			res.CancelAt(now)
			if strikes++; strikes > maxRateStrikes {
				c.kill(websocket.StatusPolicyViolation, "rate limit exceeded")
				continue // keep reading so that the close handshake completes
			}
			if err := h.send(ctx, c.ws, errorMessage{Type: "error", Code: keyhub.CodeRateLimited, Message: "too many messages", RetryAfterMs: retryAfterMs(delay)}); err != nil {
				return err
			}
			continue
		}
		strikes = 0
		if err := h.answer(ctx, c, data); err != nil {
			return err
		}
	}
}

// answer handles one message; an error means the connection failed.
func (h *Hub) answer(ctx context.Context, c *conn, data []byte) error {
	var msg clientMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return h.send(ctx, c.ws, errorMessage{Type: "error", Code: keyhub.CodeInvalidJSON, Message: "messages must be JSON objects with a \"type\""})
	}
	switch msg.Type {
	case "ping":
		return h.send(ctx, c.ws, pongMessage{Type: "pong", ID: msg.ID})
	case "whoami":
		p := c.currentPrincipal()
		me := api.MeFrom(&p)
		if h.limits != nil { // the figure this server enforces
			me.Limits.RequestsPerMinute = h.limits.TierLimit(p.Tier).Rate
		}
		return h.send(ctx, c.ws, whoamiMessage{Type: "whoami", Me: me})
	case "subscribe", "unsubscribe":
		if msg.Topic != "events" {
			return h.send(ctx, c.ws, errorMessage{Type: "error", Code: CodeUnknownTopic, Message: "the only topic is \"events\""})
		}
		// The audit trail is what events:read guards over REST.
		if !c.principal.Scopes.Has(keyhub.ScopeEventsRead) {
			return h.send(ctx, c.ws, errorMessage{Type: "error", Code: keyhub.CodeInsufficientScope, Message: "subscribing to events needs the events:read scope"})
		}
		c.subscribed.Store(msg.Type == "subscribe")
		return h.send(ctx, c.ws, topicMessage{Type: msg.Type + "d", Topic: msg.Topic})
	default:
		return h.send(ctx, c.ws, errorMessage{Type: "error", Code: CodeUnknownType, Message: "unknown message type"})
	}
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
		case keyhub.CodeKeyRevoked:
			return StatusKeyRevoked
		case keyhub.CodeUnavailable:
			return websocket.StatusTryAgainLater
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
