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
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/metrics"
	"github.com/keyhub/keyhub/internal/ratelimit"
)

// This file holds the Hub itself: its configuration, construction,
// background loop and shutdown. The registry of open connections
// (registry.go), the cluster-wide leases (leases.go), the caps on
// connections not yet authenticated (pending.go) and the change observer
// (observer.go) live beside it.

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
	ExpiryWarningGiven(ctx context.Context, keyID uuid.UUID) (w keyhub.ExpiryWarning, ok bool, err error)
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
	leases map[uuid.UUID]lease

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
	endedKeys        recentKeys[struct{}] // keys that stopped working lately
	// disabledKeys are keys disabled lately (or through a key they were
	// obtained through), until an enable is heard: enabling restores a key,
	// so this set, unlike endedKeys, forgets a key that works again.
	disabledKeys recentKeys[struct{}]
	// keyScopes are the scopes of keys changed lately, as last heard, for
	// register's check: a socket admitted just before its key lost a
	// scope loses it too.
	keyScopes    recentKeys[keyhub.Scopes]
	maxPending   int
	pendingPerIP int
	// pendingPerNetwork caps pendingByNetwork.
	pendingPerNetwork int
	shuttingDown      bool
	active            sync.WaitGroup // registered and pending connections
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
		leases:            make(map[uuid.UUID]lease),
		recheck:           make(chan struct{}, 1),
		conns:             make(map[uuid.UUID]*conn),
		byOwner:           make(map[uuid.UUID]map[*conn]struct{}),
		slots:             make(map[slotKey]int),
		pendingByIP:       make(map[netip.Prefix]int),
		pendingByNetwork:  make(map[netip.Prefix]int),
		pendingPerNetwork: cfg.PendingPerNetwork,
		maxPending:        cfg.MaxPending,
		pendingPerIP:      cfg.PendingPerIP,
		endedKeys:         newRecentKeys[struct{}](),
		disabledKeys:      newRecentKeys[struct{}](),
		keyScopes:         newRecentKeys[keyhub.Scopes](),
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
