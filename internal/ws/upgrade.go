package ws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/origin"
)

// preAuthReadLimit is the largest message read before authentication:
// enough for any token, too little to make anonymous peers expensive.
const preAuthReadLimit = 8 << 10

// maxIdentityLen caps the daemon's self-description kept per connection.
const maxIdentityLen = 255

// Upgrade serves GET /v1/ws and GET /ws/daemon. The principal comes from
// the headers, else from a ?ticket=, else from the first message; each
// way goes through the one admission step (auth.Gate). Whenever the
// principal is known before the upgrade, refusals are the REST JSON errors.
func (h *Hub) Upgrade() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Checked before anything else, so a plain GET neither spends a
		// ticket nor gets the library's plain-text answer.
		if err := h.checkHandshake(w, r); err != nil {
			httpjson.Error(w, r, err)
			return
		}
		client := h.gate.Client(r)
		adm, err := h.admitHandshake(r, client, needConnect)
		if errors.Is(err, errNoHandshakeCredential) {
			// The credential comes after the upgrade: an address over its
			// failed-authentication limit gets no further.
			if err := h.gate.RefuseBlocked(client); err != nil {
				auth.WriteError(w, r, err)
				return
			}
			h.serveFirstMessage(w, r, client)
			return
		}
		if err != nil {
			auth.WriteError(w, r, err)
			return
		}
		h.gate.SetHeaders(w.Header(), adm)
		p := *adm.Principal // the cache's copy is shared: never modify it
		inbox := inboxFor(&p)
		id, release, err := h.reserve(r.Context(), &p, inbox)
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
		c := h.newConn(id, release, ws, r, client, &p, needConnect.Scope, truncate(q.Get("machine_id")), truncate(q.Get("hostname")))
		c.inbox = inbox
		go h.serve(c)
	})
}

// errNoHandshakeCredential says that a handshake carries neither a header
// credential nor a ticket: its credential, if any, comes after the upgrade.
var errNoHandshakeCredential = errors.New("no credential in the handshake")

// admitHandshake admits a handshake by the credential it carries: a header
// credential, else a ?ticket= (used up), each through the one admission
// step; errNoHandshakeCredential when it carries neither.
func (h *Hub) admitHandshake(r *http.Request, client netip.Addr, need auth.Need) (auth.Admission, error) {
	if auth.HasCredentials(r.Header) {
		return h.gate.Admit(r, need)
	}
	ticket := r.URL.Query().Get("ticket")
	if ticket == "" {
		return auth.Admission{Client: client}, errNoHandshakeCredential
	}
	return h.gate.AdmitWith(r.Context(), client, need, func(ctx context.Context) (*keyhub.Principal, string, error) {
		p, err := h.redeemTicket(ctx, ticket, keyhub.RequestMeta{IP: client, UserAgent: r.UserAgent()})
		return p, "ticket", err
	})
}

// needConnect is what opening a connection requires.
var needConnect = auth.Need{Scope: keyhub.ScopeWSConnect}

func (h *Hub) acceptOptions() *websocket.AcceptOptions {
	return &websocket.AcceptOptions{OriginPatterns: h.allowedOrigins}
}

func (h *Hub) newConn(id uuid.UUID, release func(), ws *websocket.Conn, r *http.Request, client netip.Addr, p *keyhub.Principal, admitted keyhub.Scopes, machineID, hostname string) *conn {
	c := &conn{
		admitted:    admitted,
		id:          id,
		release:     release,
		ws:          ws,
		principal:   *p,
		machineID:   machineID,
		hostname:    hostname,
		client:      client,
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
// as it is now; a key's use is recorded as coming from from.
func (h *Hub) redeemTicket(ctx context.Context, raw string, from keyhub.RequestMeta) (*keyhub.Principal, error) {
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
	authn := h.gate.Authenticator()
	var p *keyhub.Principal
	if t.KeyID != uuid.Nil {
		p, err = authn.ResolveKeyID(ctx, t.KeyID, from)
	} else {
		p, err = authn.ResolveUser(ctx, t.UserID)
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
func refuseFirstMessage(ctx context.Context, slot *pendingSlot, msg authMessage, err error, code websocket.StatusCode) {
	ws := slot.ws
	if msg.seedTiered() {
		text := err.Error()
		var kerr *keyhub.Error
		if errors.As(err, &kerr) {
			text = kerr.Message // never the internal cause
		}
		_ = writeJSON(ctx, ws, seedResult{Success: false, Error: text})
	}
	slot.end(code, closeReason(err))
}

// serveFirstMessage accepts a connection without credentials and waits
// for it to authenticate. Every refusal from here on is a close with 1008.
func (h *Hub) serveFirstMessage(w http.ResponseWriter, r *http.Request, client netip.Addr) {
	slot, err := h.reservePending(client)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	defer slot.release()
	hijacker := &rawHijacker{leanHijacker: leanHijacker{w}}
	ws, err := websocket.Accept(hijacker, r, h.acceptOptions())
	if err != nil {
		return
	}
	handedOver := false // to serve's goroutine, which closes it
	defer func() {
		if !handedOver {
			ws.CloseNow()
		}
	}()
	slot.accepted(ws, hijacker.conn)

	ws.SetReadLimit(preAuthReadLimit)
	// Read's own context would drop the TCP connection without a close
	// frame; the timer closes with 1008, telling the client why.
	timer := time.AfterFunc(h.authTimeout, slot.expire)
	_, data, err := ws.Read(r.Context())
	if !timer.Stop() || err != nil || !slot.answer() {
		// Timed out, gone, or pushed out by a newer connection.
		h.metrics.AuthOutcome("first_message", errNoAuthMessage)
		return
	}
	var msg authMessage
	adm, err := h.gate.AdmitWith(r.Context(), client, needConnect, func(ctx context.Context) (*keyhub.Principal, string, error) {
		var p *keyhub.Principal
		var err error
		p, msg, err = h.authenticateFirstMessage(ctx, data, keyhub.RequestMeta{IP: client, UserAgent: r.UserAgent()})
		return p, "first_message", err
	})
	if err != nil {
		// A refused credential is the client's to fix (1008, do not retry);
		// an outage, a rate limit or our own failure are worth a retry.
		code := websocket.StatusPolicyViolation
		switch keyhub.ErrorCode(err) {
		case keyhub.CodeUnavailable, keyhub.CodeRateLimited, keyhub.CodeInternal:
			code = closeCodeOf(err)
		}
		refuseFirstMessage(r.Context(), slot, msg, err, code)
		h.metrics.WSClosed(int(code))
		return
	}
	p := adm.Principal
	inbox := inboxFor(p)
	id, release, err := h.reserve(r.Context(), p, inbox)
	if err != nil {
		refuseFirstMessage(r.Context(), slot, msg, err, closeCodeOf(err))
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
	slot.release() // serve registers it instead
	machineID, hostname := msg.identity()
	handedOver = true
	c := h.newConn(id, release, ws, r, client, p, needConnect.Scope, machineID, hostname)
	c.inbox = inbox
	go h.serve(c)
}

// Outcomes of first-message authentication that are not API errors; the
// auth metrics and the close reason carry their codes.
var (
	errNoAuthMessage  = keyhub.Errorf("NO_AUTH_MESSAGE", "no auth message in time")
	errBadAuthMessage = keyhub.Errorf("BAD_AUTH_MESSAGE", "expected an auth message")
)

// authenticateFirstMessage resolves the credential of a first message; a
// key's use is recorded as coming from from (the upgrade request's).
func (h *Hub) authenticateFirstMessage(ctx context.Context, data []byte, from keyhub.RequestMeta) (*keyhub.Principal, authMessage, error) {
	var msg authMessage
	if err := json.Unmarshal(data, &msg); err != nil {
		return nil, msg, errBadAuthMessage
	}
	authn := h.gate.Authenticator()
	var p *keyhub.Principal
	var err error
	switch {
	case msg.Type == "auth" && msg.APIKey != "" && msg.Token == "":
		p, err = authn.ResolveKey(ctx, msg.APIKey, from)
	case msg.Type == "auth" && msg.Token != "" && msg.APIKey == "":
		p, err = authn.ResolveToken(ctx, msg.Token)
	case msg.Type == "authenticate" && msg.DaemonKey != "":
		p, err = authn.ResolveKey(ctx, msg.DaemonKey, from)
	case msg.seedTiered() && msg.Token == "":
		p, err = authn.ResolveKey(ctx, msg.APIKey, from)
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

// checkHandshake refuses, before anything is spent, what cannot become a
// connection: a request that is not a handshake, one that announces a
// body (it would hold a pending slot while the body never comes), and a
// browser from an origin not allowed.
func (h *Hub) checkHandshake(w http.ResponseWriter, r *http.Request) error {
	if !isHandshake(r) {
		w.Header().Set("Upgrade", "websocket")
		return errNotHandshake
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close") // the body is not read
		return errHandshakeBody
	}
	return h.checkOrigin(r)
}

var errHandshakeBody = keyhub.Errorf(keyhub.CodeValidation, "a WebSocket handshake has no body: send no Content-Length or Transfer-Encoding")

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
