package ws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/clientip"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/origin"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// preAuthReadLimit is the largest message read before authentication:
// enough for any token, too little to make anonymous peers expensive.
const preAuthReadLimit = 8 << 10

// maxIdentityLen caps the daemon's self-description kept per connection.
const maxIdentityLen = 255

// Upgrade serves GET /v1/ws and GET /ws/daemon. The principal comes from
// the headers (already resolved by the auth middleware), else from a
// ?ticket=, else from the first message. Whenever the principal is known
// before the upgrade, refusals are the REST JSON errors.
func (h *Hub) Upgrade() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Checked before anything else, so a plain GET neither spends a
		// ticket nor gets the library's plain-text answer.
		if !isHandshake(r) {
			w.Header().Set("Upgrade", "websocket")
			httpjson.Error(w, r, errNotHandshake)
			return
		}
		if err := h.checkOrigin(r); err != nil {
			httpjson.Error(w, r, err)
			return
		}
		var p *keyhub.Principal
		fromHeaders := auth.FromContext(r.Context())
		client := clientip.Of(r, h.trustedProxies)
		if fromHeaders == nil && h.limits != nil {
			// A ticket or a first message is still to be checked: an address
			// over its failed-authentication limit gets no further.
			if d, blocked := h.limits.AuthBlocked(client); blocked {
				refuseRateLimited(w, r, d)
				return
			}
		}
		if fromHeaders != nil {
			copied := *fromHeaders // the cache's copy is shared: never modify it
			p = &copied
		} else if ticket := r.URL.Query().Get("ticket"); ticket != "" {
			var err error
			p, err = h.redeemTicket(r.Context(), ticket)
			h.metrics.AuthOutcome("ticket", err)
			if err != nil {
				if d, refused := h.countAuthFailure(r.Context(), client, err); refused {
					refuseRateLimited(w, r, d)
					return
				}
				httpjson.Error(w, r, err)
				return
			}
		} else {
			h.serveFirstMessage(w, r, client)
			return
		}
		if err := checkPrincipal(p); err != nil {
			httpjson.Error(w, r, err)
			return
		}
		if fromHeaders == nil { // header credentials were counted by the REST middleware
			if d, refused := h.spendRequest(r.Context(), p); refused {
				ratelimit.SetRefusalHeaders(w.Header(), d)
				httpjson.Error(w, r, ratelimit.RefusalError(d, whyPrincipalLimit))
				return
			}
		}
		id, release, err := h.reserve(r.Context(), p)
		if err != nil {
			httpjson.Error(w, r, err)
			return
		}
		ws, err := websocket.Accept(leanHijacker{w}, r, h.acceptOptions())
		if err != nil {
			release()
			return // Accept has answered the request
		}
		// A daemon authenticated by header or ticket names itself in the query.
		q := r.URL.Query()
		go h.serve(h.newConn(id, release, ws, r, p, truncate(q.Get("machine_id")), truncate(q.Get("hostname"))))
	})
}

// countAuthFailure spends one unit of client's failed-authentication
// bucket when err is a failed authentication, and reports whether the
// bucket refused it.
func (h *Hub) countAuthFailure(ctx context.Context, client netip.Addr, err error) (ratelimit.Decision, bool) {
	if h.limits == nil || !ratelimit.IsAuthFailure(err) {
		return ratelimit.Decision{}, false
	}
	d := h.limits.AuthFailure(ctx, client)
	return d, !d.Allowed
}

// whyPrincipalLimit says why a connection over its key's or user's
// request limit is refused.
const whyPrincipalLimit = "too many requests for this API key or user"

// spendRequest spends one request of p's bucket for a connection whose
// credential did not pass the REST middleware (a ticket, a first message),
// so opening connections counts like any other request; it reports
// whether the bucket refused. A Redis outage fails open, as for REST.
func (h *Hub) spendRequest(ctx context.Context, p *keyhub.Principal) (ratelimit.Decision, bool) {
	if h.limits == nil {
		return ratelimit.Decision{}, false
	}
	d := h.limits.Principal(ctx, p)
	return d, !d.Allowed
}

// refuseRateLimited answers an upgrade with 429 RATE_LIMITED and the
// headers of the failed-authentication limit.
func refuseRateLimited(w http.ResponseWriter, r *http.Request, d ratelimit.Decision) {
	ratelimit.SetRefusalHeaders(w.Header(), d)
	httpjson.Error(w, r, ratelimit.RefusalError(d, ratelimit.AuthFailureMessage))
}

// checkPrincipal refuses principals that may not open a connection.
func checkPrincipal(p *keyhub.Principal) error {
	if !p.Scopes.Has(keyhub.ScopeWSConnect) {
		return keyhub.Errorf(keyhub.CodeInsufficientScope, "this API key lacks the ws:connect scope")
	}
	if p.Expired(time.Now()) {
		if p.IsKey() {
			return keyhub.Errorf(keyhub.CodeKeyExpired, "the API key has expired")
		}
		return keyhub.Errorf(keyhub.CodeExpiredToken, "the access token has expired")
	}
	return nil
}

func (h *Hub) acceptOptions() *websocket.AcceptOptions {
	return &websocket.AcceptOptions{OriginPatterns: h.allowedOrigins}
}

func (h *Hub) newConn(id uuid.UUID, release func(), ws *websocket.Conn, r *http.Request, p *keyhub.Principal, machineID, hostname string) *conn {
	c := &conn{
		id:          id,
		release:     release,
		ws:          ws,
		principal:   *p,
		machineID:   machineID,
		hostname:    hostname,
		remoteAddr:  clientip.Of(r, h.trustedProxies).String(),
		connectedAt: time.Now(),
		requestID:   httpjson.RequestID(r.Context()),
		closed:      make(chan struct{}),
		ended:       make(chan struct{}),
		endedBy:     "peer",
		closedWith:  websocket.StatusAbnormalClosure,
	}
	c.tier.Store(p.Tier)
	c.touch()
	return c
}

// checkOrigin refuses browsers from origins not in ALLOWED_ORIGINS with
// the JSON error, the same way websocket.Accept would with plain text
// (Accept still checks, with the same patterns). No Origin header means
// not a browser: allowed.
func (h *Hub) checkOrigin(r *http.Request) error {
	from := r.Header.Get("Origin")
	if from == "" {
		return nil
	}
	if u, err := url.Parse(from); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	if origin.Allowed(from, h.allowedOrigins) {
		return nil
	}
	return keyhub.Errorf(keyhub.CodeOriginNotAllowed, "origin %q may not open WebSocket connections (see ALLOWED_ORIGINS)", from)
}

// redeemTicket verifies a ticket, uses it up, and resolves its principal
// as it is now.
func (h *Hub) redeemTicket(ctx context.Context, raw string) (*keyhub.Principal, error) {
	now := time.Now()
	t, err := h.tickets.Verify(raw, now)
	if err != nil {
		return nil, err
	}
	claimed, err := h.store.ClaimWSTicket(ctx, t.ID, t.ExpiresAt)
	if err != nil {
		return nil, err
	}
	if !claimed {
		return nil, errInvalidTicket
	}
	// The principal comes from the one resolver (caches, revoked and
	// expiry rules) that headers and first messages use too.
	var p *keyhub.Principal
	if t.KeyID != uuid.Nil {
		p, err = h.auth.ResolveKeyID(ctx, t.KeyID)
	} else {
		p, err = h.auth.ResolveUser(ctx, t.UserID)
	}
	if keyhub.ErrorCode(err) == keyhub.CodeUnknownAPIKey {
		return nil, errInvalidTicket
	}
	if err != nil {
		return nil, err
	}
	copied := *p // the cache's copy is shared: never modify it
	if copied.OwnerID != t.OwnerID || copied.UserID != t.UserID {
		return nil, errInvalidTicket
	}
	if t.KeyID == uuid.Nil {
		copied.ExpiresAt = t.CredentialExpiresAt
	}
	return &copied, nil
}

// authMessage is the first message of a connection without credentials:
// {"type":"auth","api_key"|"token":...}, the seed daemon's
// {"type":"authenticate","apiKey":...,"machineId":...,"hostname":...}, or
// the seed tiered service's {"api_key":...,"client_info":{...}} (no type).
type authMessage struct {
	Type       string          `json:"type"`
	APIKey     string          `json:"api_key"`
	Token      string          `json:"token"`
	DaemonKey  string          `json:"apiKey"`
	MachineID  string          `json:"machineId"`
	Hostname   string          `json:"hostname"`
	ClientInfo *seedClientInfo `json:"client_info"`
}

// seedClientInfo is what a seed tiered client says about itself.
type seedClientInfo struct {
	MachineID string `json:"machine_id"`
	Hostname  string `json:"hostname"`
}

// seedTiered reports whether the message is the seed tiered service's,
// whose clients expect its result message before the protocol goes on.
func (m authMessage) seedTiered() bool { return m.Type == "" && m.APIKey != "" }

// identity is the machine id and hostname the client sent, either way.
func (m authMessage) identity() (machineID, hostname string) {
	if m.ClientInfo != nil {
		return truncate(m.ClientInfo.MachineID), truncate(m.ClientInfo.Hostname)
	}
	return truncate(m.MachineID), truncate(m.Hostname)
}

// seedResult is the seed tiered service's answer to its auth message.
type seedResult struct {
	Success            bool        `json:"success"`
	ConnectionID       *uuid.UUID  `json:"connection_id,omitempty"`
	Tier               keyhub.Tier `json:"tier,omitempty"`
	RateLimit          int         `json:"rate_limit,omitempty"` // messages per minute
	SessionTimeoutSecs int64       `json:"session_timeout_secs,omitempty"`
	Error              string      `json:"error,omitempty"`
}

// refuseFirstMessage closes a connection whose auth message was refused,
// first telling a seed tiered client in its own shape.
func refuseFirstMessage(ctx context.Context, ws *websocket.Conn, msg authMessage, err error, code websocket.StatusCode) {
	if msg.seedTiered() {
		text := err.Error()
		var kerr *keyhub.Error
		if errors.As(err, &kerr) {
			text = kerr.Message // never the internal cause
		}
		_ = writeJSON(ctx, ws, seedResult{Success: false, Error: text})
	}
	ws.Close(code, closeReason(err))
}

// serveFirstMessage accepts a connection without credentials and waits
// for it to authenticate. Every refusal from here on is a close with 1008.
func (h *Hub) serveFirstMessage(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	track, stopWaiting, err := h.reservePending(client)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	defer stopWaiting()
	ws, err := websocket.Accept(leanHijacker{w}, r, h.acceptOptions())
	if err != nil {
		return
	}
	handedOver := false // to serve's goroutine, which closes it
	defer func() {
		if !handedOver {
			ws.CloseNow()
		}
	}()
	track(ws)

	ws.SetReadLimit(preAuthReadLimit)
	// Read's own context would drop the TCP connection without a close
	// frame; a timer closing with 1008 tells the client why.
	timer := time.AfterFunc(h.authTimeout, func() {
		ws.Close(websocket.StatusPolicyViolation, "authentication timeout")
	})
	_, data, err := ws.Read(r.Context())
	if !timer.Stop() || err != nil {
		h.metrics.AuthOutcome("first_message", errNoAuthMessage)
		return
	}
	p, msg, err := h.authenticateFirstMessage(r.Context(), data)
	if err == nil {
		err = checkPrincipal(p)
	}
	if errors.Is(err, errBadAuthMessage) {
		h.metrics.AuthOutcome("first_message", errBadAuthOutcome)
	} else {
		h.metrics.AuthOutcome("first_message", err)
	}
	if err == nil {
		if d, refused := h.spendRequest(r.Context(), p); refused {
			err = ratelimit.RefusalError(d, whyPrincipalLimit)
		}
	}
	if err != nil {
		if _, refused := h.countAuthFailure(r.Context(), client, err); refused {
			err = keyhub.Errorf(keyhub.CodeRateLimited, ratelimit.AuthFailureMessage)
		}
		// A refused credential is the client's to fix (1008, do not retry);
		// an outage, a rate limit or our own failure are worth a retry.
		code := websocket.StatusPolicyViolation
		switch keyhub.ErrorCode(err) {
		case keyhub.CodeUnavailable, keyhub.CodeRateLimited, keyhub.CodeInternal:
			code = closeCodeOf(err)
		}
		refuseFirstMessage(r.Context(), ws, msg, err, code)
		h.metrics.WSClosed(int(code))
		return
	}
	id, release, err := h.reserve(r.Context(), p)
	if err != nil {
		refuseFirstMessage(r.Context(), ws, msg, err, closeCodeOf(err))
		h.metrics.WSClosed(int(closeCodeOf(err)))
		return
	}
	if msg.seedTiered() {
		limits := p.Tier.Limits()
		result := seedResult{Success: true, ConnectionID: &id, Tier: p.Tier, RateLimit: limits.WSMessagesPerMinute, SessionTimeoutSecs: int64(limits.WSSession / time.Second)}
		if err := writeJSON(r.Context(), ws, result); err != nil {
			release()
			return
		}
	}
	stopWaiting() // serve registers it instead
	machineID, hostname := msg.identity()
	handedOver = true
	go h.serve(h.newConn(id, release, ws, r, p, machineID, hostname))
}

var errBadAuthMessage = errors.New("expected an auth message")

// Outcomes of first-message authentication that are not API errors, as
// the auth metrics label them.
var (
	errNoAuthMessage  = keyhub.Errorf("NO_AUTH_MESSAGE", "no auth message in time")
	errBadAuthOutcome = keyhub.Errorf("BAD_AUTH_MESSAGE", "expected an auth message")
)

func (h *Hub) authenticateFirstMessage(ctx context.Context, data []byte) (*keyhub.Principal, authMessage, error) {
	var msg authMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return nil, msg, errBadAuthMessage
	}
	var p *keyhub.Principal
	var err error
	switch {
	case msg.Type == "auth" && msg.APIKey != "" && msg.Token == "":
		p, err = h.auth.ResolveKey(ctx, msg.APIKey)
	case msg.Type == "auth" && msg.Token != "" && msg.APIKey == "":
		p, err = h.auth.ResolveToken(ctx, msg.Token)
	case msg.Type == "authenticate" && msg.DaemonKey != "":
		p, err = h.auth.ResolveKey(ctx, msg.DaemonKey)
	case msg.seedTiered() && msg.Token == "":
		p, err = h.auth.ResolveKey(ctx, msg.APIKey)
	default:
		return nil, msg, errBadAuthMessage
	}
	if err != nil {
		return nil, msg, err
	}
	copied := *p // the cache's copy is shared: never modify it
	return &copied, msg, nil
}

// closeReason is a short close reason: the error code, which clients can
// branch on (a close reason holds at most 123 bytes).
func closeReason(err error) string {
	var kerr *keyhub.Error
	if errors.As(err, &kerr) {
		return string(kerr.Code)
	}
	return err.Error()
}

func truncate(s string) string {
	if len(s) > maxIdentityLen {
		s = s[:maxIdentityLen]
	}
	return strings.ToValidUTF8(s, "")
}

// TicketResponse is the body of POST /v1/ws/tickets.
type TicketResponse = api.WSTicket

// IssueTicket serves POST /v1/ws/tickets: a 30-second, single-use ticket
// for clients that cannot set headers on the upgrade (browsers).
func (h *Hub) IssueTicket() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.issueTicket(w, r, http.StatusCreated) })
}

// IssueSeedTicket serves the seed ws-ticket service's POST /api/ws-ticket:
// the same ticket, answered 200 as that service did.
func (h *Hub) IssueSeedTicket() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.issueTicket(w, r, http.StatusOK) })
}

func (h *Hub) issueTicket(w http.ResponseWriter, r *http.Request, status int) {
	p := auth.FromContext(r.Context())
	t := Ticket{ID: uuid.New(), UserID: p.UserID, OwnerID: p.OwnerID, ExpiresAt: time.Now().Add(TicketTTL)}
	if p.IsKey() {
		t.KeyID = p.KeyID // re-read when used: the key's state then counts
	} else {
		t.CredentialExpiresAt = p.ExpiresAt
	}
	httpjson.Write(w, status, TicketResponse{Ticket: h.tickets.Sign(t), ExpiresIn: int(TicketTTL / time.Second)})
}

// Connection describes an open connection in GET /v1/ws/connections.
type Connection = api.WSConnection

// ConnectionList is the body of GET /v1/ws/connections.
type ConnectionList = api.WSConnectionList

// ListConnections serves GET /v1/ws/connections: the open connections of
// the caller's owner, oldest first.
func (h *Hub) ListConnections() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.FromContext(r.Context())
		out := ConnectionList{Data: []Connection{}}
		h.mu.Lock()
		for c := range h.byOwner[p.OwnerID] {
			out.Data = append(out.Data, Connection{
				ID:             c.id,
				AuthMethod:     string(c.principal.Method),
				KeyPrefix:      c.principal.KeyPrefix,
				MachineID:      c.machineID,
				Hostname:       c.hostname,
				RemoteAddr:     c.remoteAddr,
				ConnectedAt:    api.Timestamp(c.connectedAt),
				LastActivityAt: api.Timestamp(time.Unix(0, c.lastActivity.Load())),
			})
		}
		h.mu.Unlock()
		sort.Slice(out.Data, func(i, j int) bool {
			if !out.Data[i].ConnectedAt.Equal(out.Data[j].ConnectedAt) {
				return out.Data[i].ConnectedAt.Before(out.Data[j].ConnectedAt)
			}
			return out.Data[i].ID.String() < out.Data[j].ID.String()
		})
		httpjson.Write(w, http.StatusOK, out)
	})
}

// CloseConnection serves DELETE /v1/ws/connections/{id}: closes one of
// the owner's connections with 4002. Another owner's connection is
// NOT_FOUND, as if it did not exist.
func (h *Hub) CloseConnection() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := auth.FromContext(r.Context())
		notFound := keyhub.Errorf(keyhub.CodeNotFound, "connection not found")
		id, err := uuid.Parse(chi.URLParam(r, "id"))
		if err != nil {
			httpjson.Error(w, r, notFound)
			return
		}
		h.mu.Lock()
		c, ok := h.conns[id]
		if ok && c.principal.OwnerID == p.OwnerID {
			c.kill(StatusClosedByOwner, "closed by owner")
		}
		h.mu.Unlock()
		if !ok || c.principal.OwnerID != p.OwnerID {
			httpjson.Error(w, r, notFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

var errNotHandshake = keyhub.Errorf(keyhub.CodeUpgradeRequired, "this endpoint speaks WebSocket: send a WebSocket handshake (Connection: Upgrade, Upgrade: websocket)")

// isHandshake reports whether r asks to upgrade to WebSocket.
func isHandshake(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, token := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return true
			}
		}
	}
	return false
}
