// Package ws is keyhub's WebSocket endpoint: the three ways in (headers,
// single-use tickets, a first "auth" message), the registry of open
// connections with per-key (per-user for JWT) connection limits, the
// message protocol, and live revocation: a key revoked over REST closes
// its sockets at once.
package ws

import (
	"container/list"
	"context"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/handover"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// Close codes of the application range (4000–4999) that clients branch on.
const (
	StatusSessionExpired websocket.StatusCode = 4000
	StatusKeyRevoked     websocket.StatusCode = 4001
	StatusClosedByOwner  websocket.StatusCode = 4002
)

// Store is the database work the endpoint needs.
type Store interface {
	ClaimWSTicket(ctx context.Context, ticketID uuid.UUID, expiresAt time.Time) (bool, error)
	DeleteExpiredWSTickets(ctx context.Context) (int64, error)
	KeyStates(ctx context.Context, keyIDs []uuid.UUID) ([]keyhub.KeyChange, error)
	OwnerTiers(ctx context.Context, ownerIDs []uuid.UUID) (map[uuid.UUID]keyhub.Tier, error)
	AcquireWSLease(ctx context.Context, id, slotID, ownerID, processID uuid.UUID, limit int, ttl time.Duration, handoverKey []byte) (openedAt time.Time, admitted bool, err error)
	ReleaseWSLease(ctx context.Context, id uuid.UUID) error
	RenewWSLeases(ctx context.Context, processID uuid.UUID, ttl time.Duration, leases []keyhub.WSLease) (overCap []uuid.UUID, err error)
	DeleteExpiredWSLeases(ctx context.Context) (int64, error)
}

// Config assembles a Hub.
type Config struct {
	// Gate admits every connection (headers, ticket or first message):
	// the same admission step as every other front door.
	Gate  *auth.Gate
	Store Store
	Log   *slog.Logger
	// TicketSecret signs tickets; empty means a random per-process secret
	// (tickets then work only on the process that issued them).
	TicketSecret []byte
	// AuthTimeout is how long a connection without credentials may take
	// to send its auth message (default 10s).
	AuthTimeout time.Duration
	// AllowedOrigins are the browser origins (or host patterns) accepted
	// besides the request's own host.
	AllowedOrigins []string
	// PingInterval is how often the server pings (default 30s); a peer that
	// does not answer within it is dropped.
	PingInterval time.Duration
	// MaxPending caps connections waiting to authenticate (default 1024);
	// PendingPerIP caps them per client address block (default 16) and
	// PendingPerNetwork per /24 or /56 (default 64).
	MaxPending        int
	PendingPerIP      int
	PendingPerNetwork int
	// RateLimits holds the message budgets (shared by a key's connections,
	// across processes with Redis), counts refused pending connections and
	// tells whoami the request rate this server enforces; nil: the tier
	// table's figures, in process.
	RateLimits *ratelimit.Limits
	// Metrics counts connections, closes, messages and the ticket and
	// first-message authentications; may be nil.
	Metrics *metrics.Metrics
	// StaleBound is how often open connections re-check their credentials
	// in the database while the change feed is down (default 5s).
	StaleBound time.Duration
	// LeaseTTL is how long a connection's lease (the cluster-wide count of
	// connections) outlives its process's last heartbeat (default 30s).
	LeaseTTL time.Duration
	// Scopes names scope bits in "whoami" answers; nil knows keyhub's own
	// scopes only.
	Scopes *keyhub.ScopeCatalog
}

// Hub is the registry of open connections. It implements
// httpapi.WebSocketRoutes and keyhub.ChangeObserver.
type Hub struct {
	gate           *auth.Gate
	store          Store
	log            *slog.Logger
	tickets        TicketSigner
	authTimeout    time.Duration
	pingInterval   time.Duration
	allowedOrigins []string
	limits         *ratelimit.Limits
	metrics        *metrics.Metrics
	staleBound     time.Duration
	leaseTTL       time.Duration
	scopes         *keyhub.ScopeCatalog
	// processID names this process's leases in ws_connections.
	processID uuid.UUID
	// leases are this process's admitted connections (guarded by mu),
	// which the heartbeat renews; one leaves it before its row is deleted.
	leases map[uuid.UUID]keyhub.WSLease

	// recheck asks Run to re-read the state of every open connection's
	// credential (the change feed was down, or an owner changed).
	recheck  chan struct{}
	feedDown atomic.Bool

	// mu guards everything below. Slots are reserved under it before the
	// upgrade, so concurrent attempts can never exceed a limit.
	mu           sync.Mutex
	conns        map[uuid.UUID]*conn
	byOwner      map[uuid.UUID]map[*conn]struct{}
	slots        map[slotKey]int
	pendingQueue list.List            // *pendingSlot accepted, not yet authenticated, oldest first
	pendingCount int                  // reserved or accepted, not yet authenticated
	pendingByIP  map[netip.Prefix]int // pendingCount per clientip.Block
	// pendingByNetwork is pendingCount per clientip.Network.
	pendingByNetwork map[netip.Prefix]int
	endedKeys        map[uuid.UUID]time.Time // keys that stopped working lately
	// disabledKeys are keys disabled lately (or through a key they were
	// obtained through), until an enable is heard: enabling restores a key,
	// so this set, unlike endedKeys, forgets a key that works again.
	disabledKeys map[uuid.UUID]time.Time
	maxPending   int
	pendingPerIP int
	// pendingPerNetwork caps pendingByNetwork.
	pendingPerNetwork int
	shuttingDown      bool
	active            sync.WaitGroup // registered and pending connections
}

// slotKey is what a connection limit counts: the key, or the user for
// JWT connections.
type slotKey struct {
	keyID  uuid.UUID
	userID uuid.UUID
}

func slotKeyOf(p *keyhub.Principal) slotKey {
	if p.IsKey() {
		return slotKey{keyID: p.KeyID}
	}
	return slotKey{userID: p.UserID}
}

// New returns a Hub.
func New(cfg Config) *Hub {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 10 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = defaultMaxPending
	}
	if cfg.PendingPerIP <= 0 {
		cfg.PendingPerIP = defaultPendingPerIP
	}
	if cfg.RateLimits == nil {
		cfg.RateLimits = ratelimit.New(ratelimit.Config{})
	}
	if cfg.PendingPerNetwork <= 0 {
		cfg.PendingPerNetwork = defaultPendingPerNetwork
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.StaleBound <= 0 {
		cfg.StaleBound = 5 * time.Second
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	secret := cfg.TicketSecret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret) // never fails (crypto/rand panics instead)
		cfg.Log.Warn("WS_TICKET_SECRET is not set: WebSocket tickets use a random per-process secret and work only on the process that issued them")
	}
	return &Hub{
		gate:              cfg.Gate,
		store:             cfg.Store,
		log:               cfg.Log,
		tickets:           NewTicketSigner(secret),
		authTimeout:       cfg.AuthTimeout,
		pingInterval:      cfg.PingInterval,
		allowedOrigins:    cfg.AllowedOrigins,
		limits:            cfg.RateLimits,
		metrics:           cfg.Metrics,
		staleBound:        cfg.StaleBound,
		leaseTTL:          cfg.LeaseTTL,
		scopes:            cfg.Scopes,
		processID:         uuid.New(),
		leases:            make(map[uuid.UUID]keyhub.WSLease),
		recheck:           make(chan struct{}, 1),
		conns:             make(map[uuid.UUID]*conn),
		byOwner:           make(map[uuid.UUID]map[*conn]struct{}),
		slots:             make(map[slotKey]int),
		pendingByIP:       make(map[netip.Prefix]int),
		pendingByNetwork:  make(map[netip.Prefix]int),
		pendingPerNetwork: cfg.PendingPerNetwork,
		maxPending:        cfg.MaxPending,
		pendingPerIP:      cfg.PendingPerIP,
		endedKeys:         make(map[uuid.UUID]time.Time),
		disabledKeys:      make(map[uuid.UUID]time.Time),
	}
}

var (
	errShuttingDown = keyhub.Errorf(keyhub.CodeNotReady, "the server is shutting down; reconnect to another instance")
	errRevoked      = keyhub.Errorf(keyhub.CodeKeyRevoked, "the API key has been revoked")
)

// reserve takes one of p's connection slots on every process, or refuses
// with TOO_MANY_CONNECTIONS: first in this process (no database round trip
// for a refusal), then as a lease in the database, which counts the
// connections of all processes. It returns the connection's id (its
// lease's). release gives the slot back; calling it twice is safe. inbox
// (nil for connections that take no secret) is published with the lease,
// so that a refresh on any process can seal a rotated key to it.
func (h *Hub) reserve(ctx context.Context, p *keyhub.Principal, inbox *handover.Inbox) (id uuid.UUID, release func(), err error) {
	releaseLocal, err := h.reserveLocal(p)
	if err != nil {
		return uuid.Nil, nil, err
	}
	key := slotKeyOf(p)
	slotID := key.keyID
	if slotID == uuid.Nil {
		slotID = key.userID
	}
	limit := p.Tier.Limits().WSConnections
	id = uuid.New()
	openedAt, admitted, err := h.store.AcquireWSLease(ctx, id, slotID, p.OwnerID, h.processID, limit, h.leaseTTL, inbox.PublicKey())
	if err != nil || !admitted {
		releaseLocal()
		if err == nil {
			err = tooManyConnections(p, limit)
		}
		return uuid.Nil, nil, err
	}
	h.mu.Lock()
	h.leases[id] = keyhub.WSLease{ID: id, SlotID: slotID, OwnerID: p.OwnerID, OpenedAt: openedAt, Cap: limit, HandoverKey: inbox.PublicKey()}
	h.mu.Unlock()
	var once sync.Once
	return id, func() {
		once.Do(func() {
			releaseLocal()
			h.mu.Lock()
			delete(h.leases, id)
			h.mu.Unlock()
			// The request's context may be gone: the lease must go anyway.
			releaseCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := h.store.ReleaseWSLease(releaseCtx, id); err != nil {
				h.log.Warn("websocket: release lease (it expires on its own)", "connection_id", id, "err", err)
			}
		})
	}, nil
}

// renewLeases extends this process's leases and closes its connections
// that rank past their slot's cap among every process's (after a partition
// longer than the lease, or a lowered tier): the newest over the cap close
// (1008), wherever they are, and the longest-standing daemons keep
// running. A lease released while the renewal was on its way may have
// been written back by it: such a row is deleted again, or its slot would
// stay taken until it expired.
func (h *Hub) renewLeases(ctx context.Context) error {
	h.mu.Lock()
	leases := make([]keyhub.WSLease, 0, len(h.leases))
	for id, l := range h.leases {
		if c, ok := h.conns[id]; ok { // the cap of its tier as it is now
			l.Cap = c.currentTier().Limits().WSConnections
		}
		leases = append(leases, l)
	}
	h.mu.Unlock()
	if len(leases) == 0 {
		return nil
	}
	overCap, err := h.store.RenewWSLeases(ctx, h.processID, h.leaseTTL, leases)
	if err != nil {
		return err
	}
	h.mu.Lock()
	for _, id := range overCap {
		if c, ok := h.conns[id]; ok {
			c.kill(websocket.StatusPolicyViolation, "over the connection limit of the tier")
		}
	}
	var gone []uuid.UUID
	for _, l := range leases {
		if _, ok := h.leases[l.ID]; !ok {
			gone = append(gone, l.ID)
		}
	}
	h.mu.Unlock()
	for _, id := range gone {
		if err := h.store.ReleaseWSLease(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func tooManyConnections(p *keyhub.Principal, limit int) error {
	who := "API key"
	if !p.IsKey() {
		who = "user"
	}
	return keyhub.Errorf(keyhub.CodeTooManyConnections, "this %s already has %d open connection(s), the limit of the %s tier", who, limit, p.Tier)
}

// reserveLocal counts p's connections on this process.
func (h *Hub) reserveLocal(p *keyhub.Principal) (release func(), err error) {
	key := slotKeyOf(p)
	limit := p.Tier.Limits().WSConnections
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shuttingDown {
		return nil, errShuttingDown
	}
	if h.slots[key] >= limit {
		return nil, tooManyConnections(p, limit)
	}
	h.slots[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.slots[key]--; h.slots[key] <= 0 {
				delete(h.slots, key)
			}
		})
	}, nil
}

// register makes c visible to revocation, events, listing and shutdown.
// It refuses a connection whose key ended after it was resolved, so a
// revocation racing with the upgrade cannot leave a socket open.
func (h *Hub) register(c *conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shuttingDown {
		return errShuttingDown
	}
	if c.principal.IsKey() {
		if _, ended := h.endedKeys[c.principal.KeyID]; ended {
			return errRevoked
		}
		if _, disabled := h.disabledKeys[c.principal.KeyID]; disabled {
			return keyhub.ErrKeyDisabled
		}
	}
	h.conns[c.id] = c
	owned := h.byOwner[c.principal.OwnerID]
	if owned == nil {
		owned = make(map[*conn]struct{})
		h.byOwner[c.principal.OwnerID] = owned
	}
	owned[c] = struct{}{}
	h.active.Add(1)
	return nil
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c.id)
	if owned := h.byOwner[c.principal.OwnerID]; owned != nil {
		delete(owned, c)
		if len(owned) == 0 {
			delete(h.byOwner, c.principal.OwnerID)
		}
	}
	h.active.Done()
}

// endedKeyMemory is how long a revoked key is remembered for register's
// check: far longer than any resolve-to-register window.
const endedKeyMemory = time.Minute

// KeyChanged implements keyhub.ChangeObserver: a key that stopped working
// closes its connections with 4001, and so do its connections from outside
// networks the key was narrowed to; a key given an expiry (the grace
// period of a refresh) ends its connections then.
func (h *Hub) KeyChanged(change keyhub.KeyChange) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if change.Ended {
		forgetOld(h.endedKeys, now)
		h.endedKeys[change.KeyID] = now
	}
	if change.Disabled {
		forgetOld(h.disabledKeys, now)
		h.disabledKeys[change.KeyID] = now
	} else {
		delete(h.disabledKeys, change.KeyID)
	}
	for c := range h.byOwner[change.OwnerID] {
		if !c.principal.IsKey() || c.principal.KeyID != change.KeyID {
			continue
		}
		switch {
		case change.Ended:
			c.kill(StatusKeyRevoked, "key revoked")
		case change.Disabled:
			c.kill(StatusKeyRevoked, "key disabled")
		case !keyhub.NetAllowed(change.AllowedNets, c.client):
			c.kill(StatusKeyRevoked, "address not allowed")
		case change.ExpiresAt != nil:
			c.keyExpiry.Store(change.ExpiresAt)
			c.update()
		}
	}
}

// forgetOld drops the keys remembered longer than endedKeyMemory.
func forgetOld(keys map[uuid.UUID]time.Time, now time.Time) {
	for id, at := range keys {
		if now.Sub(at) > endedKeyMemory {
			delete(keys, id)
		}
	}
}

// PrincipalChanged implements keyhub.ChangeObserver. A user whose owner
// changed or who is gone loses its sessions (4000: reconnecting resolves
// the user afresh); an owner's tier is re-read by Run, off the feed's
// goroutine.
func (h *Hub) PrincipalChanged(change keyhub.PrincipalChange) {
	if change.UserID != uuid.Nil {
		h.mu.Lock()
		for c := range h.byOwner[change.OwnerID] {
			if !c.principal.IsKey() && c.principal.UserID == change.UserID {
				c.kill(StatusSessionExpired, "user changed")
			}
		}
		h.mu.Unlock()
	}
	h.askRecheck()
}

// FeedDown implements keyhub.ChangeObserver: open connections are
// re-checked at once (a key revoked while the feed was silent, before it
// was declared down, would otherwise live up to one more stale bound), and
// then every stale bound until the feed is back.
func (h *Hub) FeedDown() {
	if !h.feedDown.Swap(true) {
		h.askRecheck()
	}
}

// FeedUp implements keyhub.ChangeObserver: changes made while the feed was
// down were not heard, so every open connection is checked once.
func (h *Hub) FeedUp() {
	h.feedDown.Store(false)
	h.askRecheck()
}

func (h *Hub) askRecheck() {
	select {
	case h.recheck <- struct{}{}:
	default:
	}
}

// recheckAll reads the state of every open connection's key and owner and
// applies what changed: ended keys close, new expiries and tiers apply.
func (h *Hub) recheckAll(ctx context.Context) error {
	h.mu.Lock()
	keyIDs := make([]uuid.UUID, 0, len(h.conns))
	ownerIDs := make([]uuid.UUID, 0, len(h.byOwner))
	seen := make(map[uuid.UUID]bool)
	for _, c := range h.conns {
		if c.principal.IsKey() && !seen[c.principal.KeyID] {
			seen[c.principal.KeyID] = true
			keyIDs = append(keyIDs, c.principal.KeyID)
		}
	}
	for ownerID := range h.byOwner {
		ownerIDs = append(ownerIDs, ownerID)
	}
	h.mu.Unlock()
	if len(ownerIDs) == 0 {
		return nil
	}
	if len(keyIDs) > 0 {
		states, err := h.store.KeyStates(ctx, keyIDs)
		if err != nil {
			return err
		}
		for _, change := range states {
			h.KeyChanged(change)
		}
	}
	tiers, err := h.store.OwnerTiers(ctx, ownerIDs)
	if err != nil {
		return err
	}
	h.applyTiers(tiers)
	return nil
}

// applyTiers gives open connections their owner's current tier. Where a
// lowered tier allows fewer connections than are open, the newest close
// first (1008): the longest-standing daemons keep running.
func (h *Hub) applyTiers(tiers map[uuid.UUID]keyhub.Tier) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ownerID, tier := range tiers {
		var changed []*conn
		for c := range h.byOwner[ownerID] {
			if c.currentTier() != tier {
				c.tier.Store(tier)
				c.update()
				changed = append(changed, c)
			}
		}
		if len(changed) == 0 {
			continue
		}
		bySlot := make(map[slotKey][]*conn)
		for c := range h.byOwner[ownerID] {
			key := slotKeyOf(&c.principal)
			bySlot[key] = append(bySlot[key], c)
		}
		limit := tier.Limits().WSConnections
		for _, conns := range bySlot {
			if len(conns) <= limit {
				continue
			}
			slices.SortFunc(conns, func(a, b *conn) int { return b.connectedAt.Compare(a.connectedAt) })
			for _, c := range conns[:len(conns)-limit] {
				c.kill(websocket.StatusPolicyViolation, "connection limit of the tier lowered")
			}
		}
	}
}

// EventWritten implements keyhub.ChangeObserver: subscribed connections of
// the event's owner receive it. An `expiring` event also warns the
// connections opened with that key, subscribed or not (key_expiring): the
// daemon holding the key is the one that must replace it.
func (h *Hub) EventWritten(e keyhub.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.byOwner[e.OwnerID] {
		if c.subscribed.Load() {
			c.deliver(&e) // shared, never modified: a pointer per queued event, not a copy
		}
	}
	if warning, ok := keyhub.ExpiryWarningOf(e); ok {
		msg := api.WSKeyExpiring{Type: api.WSTypeKeyExpiring, KeyID: e.KeyID, ExpiresAt: api.Timestamp(warning.ExpiresAt)}
		for c := range h.byOwner[e.OwnerID] {
			// A relayed socket speaks its upstream's protocol.
			if c.principal.IsKey() && c.principal.KeyID == e.KeyID && c.upstream == nil {
				// Off the announcer's goroutine, as KeyDelivered: a slow
				// peer must not hold the hub (or the feed).
				go func() {
					if err := h.send(context.Background(), c.ws, msg); err != nil {
						c.fail("write failed")
					}
				}()
			}
		}
	}
}

// Shutdown closes every connection with 1001 (going away) and waits until
// they have ended or ctx is done. New connections are refused from now on.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.shuttingDown = true
	for _, c := range h.conns {
		c.kill(websocket.StatusGoingAway, "server shutting down")
	}
	h.closeAllPendingLocked()
	h.mu.Unlock()

	done := make(chan struct{})
	go func() {
		h.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ticketSweepInterval is how often used tickets past their expiry are
// deleted.
const ticketSweepInterval = time.Minute

// Run deletes expired tickets from time to time, and re-checks open
// connections when asked or, while the change feed is down, every stale
// bound, until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	tick := time.NewTicker(ticketSweepInterval)
	defer tick.Stop()
	stale := time.NewTicker(h.staleBound)
	defer stale.Stop()
	heartbeat := time.NewTicker(h.leaseTTL / 3)
	defer heartbeat.Stop()
	recheck := func() {
		checkCtx, cancel := context.WithTimeout(ctx, h.staleBound)
		defer cancel()
		if err := h.recheckAll(checkCtx); err != nil {
			if ctx.Err() == nil {
				h.log.Warn("websocket: re-check open connections", "err", err)
			}
			return
		}
		// A tier may have changed: the cluster-wide count applies the new
		// caps now, not at the next heartbeat.
		if err := h.renewLeases(checkCtx); err != nil && ctx.Err() == nil {
			h.log.Warn("websocket: renew connection leases", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.recheck:
			recheck()
			stale.Reset(h.staleBound) // the next periodic one a full bound later
		case <-stale.C:
			if h.feedDown.Load() {
				recheck()
			}
		case <-heartbeat.C:
			beatCtx, cancel := context.WithTimeout(ctx, h.leaseTTL/3)
			if err := h.renewLeases(beatCtx); err != nil && ctx.Err() == nil {
				h.log.Warn("websocket: renew connection leases", "err", err)
			}
			cancel()
		case <-tick.C:
			if _, err := h.store.DeleteExpiredWSTickets(ctx); err != nil && ctx.Err() == nil {
				h.log.Warn("sweep ws tickets", "err", err)
			}
			if _, err := h.store.DeleteExpiredWSLeases(ctx); err != nil && ctx.Err() == nil {
				h.log.Warn("sweep ws leases", "err", err)
			}
		}
	}
}
