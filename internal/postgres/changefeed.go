package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/handover"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// ChangeChannel is the channel the change-feed triggers notify (migration
// 20261202000010_change_feed.sql).
const ChangeChannel = "keyhub_changes"

// ListenerAppName is the application_name of the feed's connection, so an
// operator (or a test) can find it in pg_stat_activity.
const ListenerAppName = "keyhub-changefeed"

// ChangeFeed listens on one dedicated connection for the notices the
// database's triggers send when a change commits, and publishes them on
// the store's change bus: the bus this process's own writes are published
// on, so a change made on another process, or by an operator in SQL,
// takes the same path to the subscribers.
//
// Notices sent while the connection is down are lost, so the feed tells
// the subscribers when it goes down (bound what you serve from memory) and
// when it is back (drop what you cached).
type ChangeFeed struct {
	store      *Store
	connString string
	log        *slog.Logger
	// OnNotice, when set, hears every notice with its propagation lag
	// (commit-time clock of the sender to now); for metrics.
	OnNotice func(kind string, lag time.Duration)
	// OnReconnect, when set, hears every lost connection; for metrics.
	OnReconnect func()
	// OnEventsRead, when set, hears every read of announced events with
	// the number of events it read; for metrics.
	OnEventsRead func(events int)
	// Heartbeat is how long the connection may stay quiet before the feed
	// checks that it still answers (and, as long again, how long the check
	// may take). A connection that died silently (a partition, a failover
	// that kept the TCP session) would otherwise be noticed only by TCP
	// keepalive, minutes later, with the caches trusting it all along.
	// Zero means 2.5s.
	Heartbeat time.Duration

	events    chan int64 // ids of announced events, for deliverEvents
	listening atomic.Bool
}

// NewChangeFeed returns a feed that listens on connString (a direct
// PostgreSQL URL: LISTEN does not work through a transaction-pooling
// proxy) and publishes on s's bus. It does nothing until Run.
func (s *Store) NewChangeFeed(connString string, log *slog.Logger) *ChangeFeed {
	if log == nil {
		log = slog.Default()
	}
	return &ChangeFeed{store: s, connString: connString, log: log, events: make(chan int64, eventQueue)}
}

// eventQueue is how many announced events may wait to be read; an event
// announced while it is full is not delivered live (it stays in the audit
// trail). eventBatch is the most one read fetches.
const (
	eventQueue = 1024
	eventBatch = 256
)

// Listening reports whether the feed's connection is up and listening.
func (f *ChangeFeed) Listening() bool { return f.listening.Load() }

// Backoff bounds of the reconnect loop. The first retry is quick (a
// restarted server or a killed backend is usually back at once); later
// ones spread out so that many processes do not hammer a database that is
// down.
const (
	feedMinBackoff = 50 * time.Millisecond
	feedMaxBackoff = 5 * time.Second
	// feedStableAfter is how long a connection must have lasted for the
	// next failure to start again from feedMinBackoff.
	feedStableAfter = 30 * time.Second
)

// Run listens until ctx ends, reconnecting with backoff and full jitter.
func (f *ChangeFeed) Run(ctx context.Context) {
	go f.deliverEvents(ctx)
	f.store.bus.FeedDown()
	backoff := feedMinBackoff
	for {
		started := time.Now()
		err := f.listen(ctx)
		if f.listening.Swap(false) {
			f.store.bus.FeedDown()
		}
		if ctx.Err() != nil {
			return
		}
		if f.OnReconnect != nil {
			f.OnReconnect()
		}
		if time.Since(started) > feedStableAfter {
			backoff = feedMinBackoff
		}
		wait := time.Duration(rand.Int64N(int64(backoff))) + time.Millisecond
		f.log.Warn("change feed: connection lost; cached credentials are re-read after the stale bound until it is back",
			"err", err, "retry_in_ms", wait.Milliseconds())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, feedMaxBackoff)
	}
}

// listen runs one connection: connect, LISTEN, announce FeedUp, then
// deliver notices until the connection fails or ctx ends.
func (f *ChangeFeed) listen(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(f.connString)
	if err != nil {
		return errors.New("the change feed's database URL is not a valid PostgreSQL URL")
	}
	cfg.RuntimeParams["application_name"] = ListenerAppName
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+ChangeChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Only now is every later change certain to be heard; what changed
	// before may not have been.
	f.listening.Store(true)
	f.store.bus.FeedUp()
	f.log.Info("change feed: listening", "channel", ChangeChannel)
	heartbeat := f.Heartbeat
	if heartbeat <= 0 {
		heartbeat = 2500 * time.Millisecond
	}
	for {
		waitCtx, cancel := context.WithTimeout(ctx, heartbeat)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			f.handle(n.Payload)
			continue
		case ctx.Err() != nil || waitCtx.Err() == nil:
			return err
		}
		// Quiet for a heartbeat: the connection must prove it still
		// answers. (A deadline does not close a pgx connection.)
		pingCtx, cancel := context.WithTimeout(ctx, heartbeat)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("heartbeat: the listening connection did not answer within %s: %w", heartbeat, err)
		}
	}
}

// handle publishes one notice. Key and principal changes are published on
// the listening goroutine, in commit order; events need a read and go to
// a worker so that they never delay a revocation. An event this process
// wrote was published by its writer already and is not read again.
func (f *ChangeFeed) handle(payload string) {
	n, err := ParseNotice(payload)
	if err != nil {
		f.log.Error("change feed: unreadable notice", "err", err)
		return
	}
	if f.OnNotice != nil {
		f.OnNotice(n.Kind, n.Lag(time.Now()))
	}
	switch n.Kind {
	case NoticeKey:
		f.store.bus.Publish(changes.Commit{Keys: []keyhub.KeyChange{n.KeyChange(f.store.scopes)}})
	case NoticeOwner, NoticeUser:
		f.store.bus.PublishPrincipal(keyhub.PrincipalChange{OwnerID: n.OwnerID, UserID: n.UserID})
	case NoticeDelivery:
		f.store.bus.PublishDeliveries([]keyhub.KeyDelivery{n.Delivery()})
	case NoticeEvent:
		if f.store.bus.Delivered(n.EventID) {
			return
		}
		select {
		case f.events <- n.EventID:
		default:
			f.log.Warn("change feed: event queue full; a live event subscriber misses an event", "event_id", n.EventID)
		}
	}
}

// deliverEvents reads the announced events in batches (whatever queued
// while the previous batch was read, up to eventBatch: one query however
// many events a bulk change wrote) and publishes them.
func (f *ChangeFeed) deliverEvents(ctx context.Context) {
	ids := make([]int64, 0, eventBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-f.events:
			ids = append(ids[:0], id)
		}
	queued:
		for len(ids) < eventBatch {
			select {
			case id := <-f.events:
				ids = append(ids, id)
			default:
				break queued
			}
		}
		events, err := f.readEvents(ctx, ids)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("change feed: read announced events", "events", len(ids), "err", err)
			}
			continue
		}
		f.store.bus.Publish(changes.Commit{Events: events})
	}
}

// readEvents reads the events with these ids, skipping those the bus
// delivered since they were announced.
func (f *ChangeFeed) readEvents(ctx context.Context, ids []int64) ([]keyhub.Event, error) {
	ids = slices.DeleteFunc(ids, f.store.bus.Delivered)
	if len(ids) == 0 {
		return nil, nil
	}
	readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := f.store.q.GetEventsByIDs(readCtx, f.store.pool, ids)
	if err != nil {
		return nil, err
	}
	if f.OnEventsRead != nil {
		f.OnEventsRead(len(rows))
	}
	events := make([]keyhub.Event, 0, len(rows))
	for _, row := range rows {
		events = append(events, eventFromRow(row.ApiKeyEvent, row.ActorEmail))
	}
	return events, nil
}

// Kinds of notices.
const (
	NoticeKey   = "key"
	NoticeOwner = "owner"
	NoticeUser  = "user"
	NoticeEvent = "event"
	// NoticeDelivery carries a new secret sealed to one connection (sent
	// by the refresh itself, not by a trigger; see rotation.go).
	NoticeDelivery = "delivery"
)

// Notice is one change-feed payload, as the triggers write it.
type Notice struct {
	Kind      string    `json:"kind"`
	KeyID     uuid.UUID `json:"key_id"`
	OwnerID   uuid.UUID `json:"owner_id"`
	UserID    uuid.UUID `json:"user_id"`
	KeyHash   string    `json:"key_hash"`
	Ended     bool      `json:"ended"`
	Disabled  bool      `json:"disabled"`
	ExpiresAt *float64  `json:"expires_at"` // unix seconds; null: never (a delivery: the grace's end)
	// AllowedCIDRs are a key's networks (empty: any).
	AllowedCIDRs []netip.Prefix `json:"allowed_cidrs,omitempty"`
	// Scopes are a key's scope names, as stored.
	Scopes  []string `json:"scopes,omitempty"`
	EventID int64    `json:"event_id"`
	SentAt  float64  `json:"sent_at"` // unix seconds, the sender's clock

	// A delivery's: the connection, the new key, the secret sealed to
	// the connection (base64 in JSON), and who refreshed (none: keyhub).
	ConnectionID uuid.UUID `json:"connection_id,omitzero"`
	NewKeyID     uuid.UUID `json:"new_key_id,omitzero"`
	Sealed       []byte    `json:"sealed,omitempty"`
	ActorUserID  uuid.UUID `json:"actor_user_id,omitzero"`
	ActorKeyID   uuid.UUID `json:"actor_key_id,omitzero"`
}

// ParseNotice reads a payload, refusing kinds it does not know and notices
// without the ids their kind needs.
func ParseNotice(payload string) (Notice, error) {
	var n Notice
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		return Notice{}, fmt.Errorf("change notice is not JSON: %w", err)
	}
	ok := false
	switch n.Kind {
	case NoticeKey:
		ok = n.KeyID != uuid.Nil && n.OwnerID != uuid.Nil && len(n.KeyHash) == 64
	case NoticeOwner:
		ok = n.OwnerID != uuid.Nil
	case NoticeUser:
		ok = n.UserID != uuid.Nil
	case NoticeEvent:
		ok = n.EventID > 0 && n.OwnerID != uuid.Nil
	case NoticeDelivery:
		ok = n.ConnectionID != uuid.Nil && n.OwnerID != uuid.Nil && n.KeyID != uuid.Nil && n.NewKeyID != uuid.Nil &&
			n.ExpiresAt != nil && len(n.Sealed) > 0 && len(n.Sealed) <= handover.MaxSealed
	}
	if !ok {
		return Notice{}, fmt.Errorf("change notice of kind %q lacks its ids", n.Kind)
	}
	if n.ExpiresAt != nil && (math.IsNaN(*n.ExpiresAt) || math.IsInf(*n.ExpiresAt, 0)) {
		return Notice{}, errors.New("change notice has an invalid expires_at")
	}
	return n, nil
}

// KeyChange is the domain form of a key notice, its scope names read with
// catalog (this process's bits; nil: keyhub's own scopes).
func (n Notice) KeyChange(catalog *keyhub.ScopeCatalog) keyhub.KeyChange {
	change := keyhub.KeyChange{KeyID: n.KeyID, OwnerID: n.OwnerID, UserID: n.UserID, KeyHash: n.KeyHash, Ended: n.Ended, Disabled: n.Disabled,
		AllowedNets: n.AllowedCIDRs, Scopes: catalog.FromStored(n.Scopes)}
	if n.ExpiresAt != nil {
		at := unixSeconds(*n.ExpiresAt)
		change.ExpiresAt = &at
	}
	return change
}

// Lag is how long the notice took from its sender's commit to now.
func (n Notice) Lag(now time.Time) time.Duration {
	if n.SentAt <= 0 {
		return 0
	}
	return max(now.Sub(unixSeconds(n.SentAt)), 0)
}

func unixSeconds(sec float64) time.Time {
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(frac*1e9))
}
