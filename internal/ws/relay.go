package ws

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// UpstreamDialer opens the upstream side of a relayed socket for an
// admitted principal, offering the client's subprotocols. It is the
// gateway's: it decides the URL and the headers (an identity, never the
// client's credential).
type UpstreamDialer func(ctx context.Context, r *http.Request, p *keyhub.Principal, subprotocols []string) (*websocket.Conn, error)

const (
	// upstreamDialTimeout bounds opening the upstream socket; the client
	// then gets the gateway's 504.
	upstreamDialTimeout = 10 * time.Second
	// upstreamReadLimit caps one message from the upstream (a product we
	// front, trusted more than clients, but not with all our memory).
	upstreamReadLimit = 16 << 20
	// upstreamCloseWait bounds how long a relay waits for the upstream's
	// side of the close handshake.
	upstreamCloseWait = 5 * time.Second
)

var errNoHeaderCredential = keyhub.Errorf(keyhub.CodeMissingCredentials,
	"a proxied WebSocket authenticates with a header credential or a ?ticket= (the first message belongs to the upstream)")

// Relay serves a WebSocket upgrade that is proxied to an upstream socket,
// frame by frame. The connection is keyhub's own as far as limits and
// revocation go: it is admitted by the same gate (headers or ticket), holds
// one of its key's or user's connection slots (the cluster-wide leases),
// its client→upstream messages obey the tier's rate and size limits, and
// it closes with 4001 when its key is revoked, expires or its grace ends,
// or loses the route's scope (on any process), with 4002 when its owner closes it; the upstream side
// is closed with the same code. dialFailed answers a failed upstream
// dial (502, 504) before the client is upgraded.
func (h *Hub) Relay(need auth.Need, dial UpstreamDialer, dialFailed func(http.ResponseWriter, *http.Request, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.checkHandshake(w, r); err != nil {
			httpjson.Error(w, r, err)
			return
		}
		client := h.gate.Client(r)
		adm, err := h.admitHandshake(r, client, need)
		if errors.Is(err, errNoHandshakeCredential) {
			err = errNoHeaderCredential
		}
		if err != nil {
			auth.WriteError(w, r, err)
			return
		}
		h.gate.SetHeaders(w.Header(), adm)
		p := *adm.Principal // the cache's copy is shared: never modify it
		// A relayed socket speaks its upstream's protocol: no secret is
		// ever sent on it.
		id, release, err := h.reserve(r.Context(), &p, nil)
		if err != nil {
			httpjson.Error(w, r, err)
			return
		}
		dialCtx, cancel := context.WithTimeout(r.Context(), upstreamDialTimeout)
		up, err := dial(dialCtx, r, &p, subprotocols(r))
		cancel()
		if err != nil {
			release()
			dialFailed(w, r, err)
			return
		}
		opts := h.acceptOptions()
		if sp := up.Subprotocol(); sp != "" {
			opts.Subprotocols = []string{sp}
		}
		ws, err := websocket.Accept(leanHijacker{w}, r, opts)
		if err != nil {
			release()
			up.Close(websocket.StatusGoingAway, "client handshake failed")
			return // Accept has answered the request
		}
		q := r.URL.Query()
		c := h.newConn(id, release, ws, r, client, &p, need.Scope, truncate(q.Get("machine_id")), truncate(q.Get("hostname")))
		c.upstream = up
		go h.serve(c)
	})
}

// subprotocols are the ones the client offers, in its order.
func subprotocols(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, sp := range strings.Split(v, ",") {
			if sp = strings.TrimSpace(sp); sp != "" {
				out = append(out, sp)
			}
		}
	}
	return out
}

// relay copies messages both ways until either side ends, then closes the
// other with the same code. It returns the client reader's error, as
// readLoop does.
func (h *Hub) relay(ctx context.Context, c *conn) error {
	up := c.upstream
	up.SetReadLimit(upstreamReadLimit)
	downDone := make(chan struct{})
	go func() { // upstream → client
		defer close(downDone)
		for {
			typ, data, err := up.Read(ctx)
			if err != nil {
				code, reason := clientCloseFor(err)
				c.kill(code, reason)
				return
			}
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err = c.ws.Write(wctx, typ, data)
			cancel()
			if err != nil {
				c.fail("write failed")
				up.CloseNow()
				return
			}
			h.metrics.WSMessageOut()
			c.touch()
		}
	}()

	var readErr error
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			readErr = err
			break
		}
		h.metrics.WSMessageIn()
		c.touch()
		if c.closing.Load() {
			continue // on its way out: read on so the close handshake completes
		}
		// The upstream's protocol has no room for keyhub's error messages:
		// a client over its tier's message rate is closed, and told why.
		if !h.spendMessage(ctx, c).Allowed {
			c.kill(websocket.StatusPolicyViolation, "rate limit exceeded")
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err = up.Write(wctx, typ, data)
		cancel()
		if err != nil {
			c.kill(websocket.StatusBadGateway, "upstream failed")
		}
	}

	// The client side is over: the upstream hears the same code (4001 for
	// a revoked key, 4002 when its owner closed it, 1009 for a message
	// over the tier's size, the client's own). The client's close frame is
	// recorded by serve only after this returns: read it here, or the
	// upstream would hear 1001.
	c.readEnded(readErr)
	c.mu.Lock()
	code, reason := c.closedWith, c.endedBy
	var peerClose websocket.CloseError
	if !c.closeSent && errors.As(readErr, &peerClose) {
		code, reason = peerClose.Code, peerClose.Reason
	}
	c.mu.Unlock()
	if !sendable(code) {
		code, reason = websocket.StatusGoingAway, "client gone"
	}
	go up.Close(code, reason)
	select {
	case <-downDone:
	case <-time.After(upstreamCloseWait):
		up.CloseNow()
		<-downDone
	}
	return readErr
}

// clientCloseFor is the close a client gets when its upstream's side ends:
// the upstream's own code when it can be sent on, else 1014.
func clientCloseFor(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		if sendable(ce.Code) {
			return ce.Code, ce.Reason
		}
		if ce.Code == websocket.StatusNoStatusRcvd {
			return websocket.StatusNormalClosure, ""
		}
	}
	return websocket.StatusBadGateway, "upstream failed"
}

// sendable reports whether code may appear in a close frame (RFC 6455
// §7.4: 1004 is reserved; 1005, 1006 and 1015 are for reporting, never
// for sending).
func sendable(code websocket.StatusCode) bool {
	switch {
	case code == 1004, code == websocket.StatusNoStatusRcvd, code == websocket.StatusAbnormalClosure, code == websocket.StatusTLSHandshake:
		return false
	case code >= 1000 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}
