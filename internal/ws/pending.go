package ws

import (
	"bufio"
	"container/list"
	"net"
	"net/netip"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/clientip"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// Connections that have not authenticated yet (first-message auth) may sit
// for WS_AUTH_TIMEOUT without proving anything: they are the cheap way to
// exhaust the server. Three rules keep them from starving real daemons:
//   - caps per client address block and per network (/24, /56), so one
//     client or one network cannot take every slot;
//   - when the global cap is full, a newcomer evicts the oldest connection
//     that has sent nothing yet: an honest client answers within a round
//     trip, so to push one out an attacker must open WS_PENDING_MAX
//     handshakes within that round trip, not merely once;
//   - a connection ended here (timed out, evicted) gives its slot back at
//     once and is dropped pendingCloseHold after the close frame, whether
//     or not the peer answers it (the library would wait 5 s + 5 s).

// Defaults of the caps on connections that have not authenticated yet.
const (
	defaultMaxPending        = 1024
	defaultPendingPerIP      = 16
	defaultPendingPerNetwork = 64
)

// pendingCloseHold is how long a pending connection being closed may take
// to answer the close frame before its TCP connection is dropped.
const pendingCloseHold = time.Second

// pendingSlot is one connection's share of the pending caps, from the
// moment it is reserved (before the upgrade) until it authenticates, ends,
// or is pushed out. Fields are guarded by the hub's mu.
type pendingSlot struct {
	hub            *Hub
	block, network netip.Prefix
	ws             *websocket.Conn // nil until accepted
	raw            net.Conn        // the hijacked connection under ws
	queued         *list.Element   // in hub.pendingQueue once accepted
	counted        bool            // holds its share of the caps
	answered       bool            // sent its first message: no longer evictable
	done           bool            // the handler let go of it
}

// reservePending counts a connection without credentials from client
// before it is accepted, or refuses it when too many are waiting from its
// address block or network, when the global cap is full and no silent
// connection can be pushed out, or when the server is shutting down.
func (h *Hub) reservePending(client netip.Addr) (*pendingSlot, error) {
	s := &pendingSlot{hub: h, block: clientip.Block(client), network: clientip.Network(client)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shuttingDown {
		return nil, errShuttingDown
	}
	// The per-address and per-network caps come before eviction, so that
	// no one can push out others' connections beyond their own share.
	if h.pendingByIP[s.block] >= h.pendingPerIP {
		h.pendingRejected()
		return nil, keyhub.Errorf(keyhub.CodeTooManyConnections, "too many connections from this address are waiting to authenticate; authenticate the open ones or retry later")
	}
	if h.pendingByNetwork[s.network] >= h.pendingPerNetwork {
		h.pendingRejected()
		return nil, keyhub.Errorf(keyhub.CodeTooManyConnections, "too many connections from this network are waiting to authenticate; authenticate the open ones or retry later")
	}
	if h.pendingCount >= h.maxPending && !h.evictOldestPendingLocked() {
		h.pendingRejected()
		return nil, keyhub.Errorf(keyhub.CodeTooManyConnections, "too many connections are waiting to authenticate; send credentials in the headers or retry later")
	}
	h.pendingCount++
	h.pendingByIP[s.block]++
	h.pendingByNetwork[s.network]++
	s.counted = true
	h.active.Add(1)
	return s, nil
}

// evictOldestPendingLocked ends the oldest accepted connection that has
// not sent its first message, freeing its slot at once. It reports false
// when there is none (every slot is mid-upgrade or authenticating).
func (h *Hub) evictOldestPendingLocked() bool {
	for e := h.pendingQueue.Front(); e != nil; e = e.Next() {
		s := e.Value.(*pendingSlot)
		if s.answered {
			continue
		}
		s.uncountLocked()
		h.pendingRejected()
		go s.close(websocket.StatusTryAgainLater, string(keyhub.CodeTooManyConnections))
		return true
	}
	return false
}

// accepted registers the upgraded socket: from now on it can be evicted,
// and shutdown closes it.
func (s *pendingSlot) accepted(ws *websocket.Conn, raw net.Conn) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.ws, s.raw = ws, raw
	if !s.counted { // cannot happen before accepted; be safe
		go s.close(websocket.StatusTryAgainLater, string(keyhub.CodeTooManyConnections))
		return
	}
	s.queued = h.pendingQueue.PushBack(s)
	if h.shuttingDown { // Shutdown's sweep ran before this socket existed
		go s.close(websocket.StatusGoingAway, "server shutting down")
	}
}

// answer marks the connection as authenticating (its first message came):
// it is not evicted any more. It reports false when the connection was
// pushed out or timed out meanwhile; the message must then be ignored.
func (s *pendingSlot) answer() bool {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.answered = true
	return s.counted
}

// expire ends a connection that sent nothing in time.
func (s *pendingSlot) expire() { s.end(websocket.StatusPolicyViolation, "authentication timeout") }

// end closes the connection with code and reason: its slot is free at
// once, and the peer is dropped pendingCloseHold later if it does not
// answer the close.
func (s *pendingSlot) end(code websocket.StatusCode, reason string) {
	s.hub.mu.Lock()
	s.uncountLocked()
	s.hub.mu.Unlock()
	s.close(code, reason)
}

// release gives the slot back (the connection authenticated and is handed
// over, or its handler returns). Safe to call more than once.
func (s *pendingSlot) release() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	s.uncountLocked()
	if !s.done {
		s.done = true
		h.active.Done()
	}
}

// uncountLocked frees the slot's share of the caps, once.
func (s *pendingSlot) uncountLocked() {
	h := s.hub
	if s.queued != nil {
		h.pendingQueue.Remove(s.queued)
		s.queued = nil
	}
	if !s.counted {
		return
	}
	s.counted = false
	h.pendingCount--
	if h.pendingByIP[s.block]--; h.pendingByIP[s.block] <= 0 {
		delete(h.pendingByIP, s.block)
	}
	if h.pendingByNetwork[s.network]--; h.pendingByNetwork[s.network] <= 0 {
		delete(h.pendingByNetwork, s.network)
	}
}

// close sends a close frame and drops the TCP connection if the peer has
// not answered within pendingCloseHold.
func (s *pendingSlot) close(code websocket.StatusCode, reason string) {
	drop := time.AfterFunc(pendingCloseHold, func() { s.raw.Close() })
	defer drop.Stop()
	s.ws.Close(code, reason)
}

// closeAllPendingLocked closes every accepted pending connection with
// 1001 (shutdown).
func (h *Hub) closeAllPendingLocked() {
	for e := h.pendingQueue.Front(); e != nil; e = e.Next() {
		go e.Value.(*pendingSlot).close(websocket.StatusGoingAway, "server shutting down")
	}
}

// pendingRejected counts a refused or evicted pending connection
// (rate-limit rejections by limiter, for metrics).
func (h *Hub) pendingRejected() {
	h.limits.Rejected(ratelimit.LimiterWSPending)
}

// rawHijacker is a leanHijacker that remembers the connection it took
// over, so that a pending connection can be dropped without waiting for
// the library's close handshake.
type rawHijacker struct {
	leanHijacker
	conn net.Conn
}

// Hijack takes the connection over and remembers it.
func (w *rawHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := w.leanHijacker.Hijack()
	w.conn = conn
	return conn, brw, err
}
