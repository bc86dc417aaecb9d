// Package changes is keyhub's change bus. Whatever commits a change that a
// cache or an open socket must not outlive publishes it here: the store
// right after its own transactions commit (so the API is read-your-writes
// on this process), and the change feed for what every other process, or
// an operator in SQL, committed. Subscribers (the authenticator's caches,
// the WebSocket hub) hear both the same way and never need to know which
// process wrote a change.
//
// The package sits low in the house: it knows the domain's types and
// nothing else, so writers and subscribers of any layer can use it.
package changes

import (
	"sync"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Bus hands committed changes to its subscribers. A nil *Bus delivers to
// nobody, so a store used without subscribers (tools, tests) needs none.
//
// Key and principal changes may reach subscribers twice (once from the
// writer, once from the feed): subscribers are idempotent. Events reach
// them once: an event is shown to people (a socket's live audit trail), so
// the bus remembers the ids of the events it delivered lately and drops a
// second copy, whichever of the writer and the feed comes second.
type Bus struct {
	mu   sync.RWMutex
	subs []keyhub.ChangeObserver

	eventsMu  sync.Mutex
	delivered recentIDs
}

// New returns a bus with no subscribers.
func New() *Bus { return &Bus{delivered: newRecentIDs(recentEvents)} }

// recentEvents is how many event ids the bus remembers. The feed hears an
// event a few milliseconds after its writer published it, and its queue
// holds far fewer notices than this, so a copy never arrives after its id
// was forgotten.
const recentEvents = 8192

// Subscribe adds s to the subscribers of every change published from now on.
func (b *Bus) Subscribe(s keyhub.ChangeObserver) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = append(b.subs, s)
}

// Commit is what one committed transaction changed, as its writer or the
// feed learned it: the keys whose cached verifications it ends or re-dates,
// and the audit events it wrote.
type Commit struct {
	Keys   []keyhub.KeyChange
	Events []keyhub.Event
}

// Publish delivers a commit: its key changes first, so that a revocation
// never waits behind the events that record it, then each of its events
// not delivered before.
func (b *Bus) Publish(c Commit) {
	if b == nil {
		return
	}
	subs := b.subscribers()
	for _, change := range c.Keys {
		for _, s := range subs {
			s.KeyChanged(change)
		}
	}
	for _, event := range c.Events {
		if !b.firstDelivery(event.ID) {
			continue
		}
		for _, s := range subs {
			s.EventWritten(event)
		}
	}
}

// PublishDeliveries hands sealed secrets to the subscribers that hold
// connections (keyhub.KeyDeliveryObserver).
func (b *Bus) PublishDeliveries(deliveries []keyhub.KeyDelivery) {
	if b == nil {
		return
	}
	for _, s := range b.subscribers() {
		if observer, ok := s.(keyhub.KeyDeliveryObserver); ok {
			for _, d := range deliveries {
				observer.KeyDelivered(d)
			}
		}
	}
}

// PublishPrincipal delivers a change of what an owner's or a user's
// principals hold (a tier, a user's owner, a deletion).
func (b *Bus) PublishPrincipal(change keyhub.PrincipalChange) {
	if b == nil {
		return
	}
	for _, s := range b.subscribers() {
		s.PrincipalChanged(change)
	}
}

// FeedDown tells every subscriber that changes of other processes may go
// unheard from now on.
func (b *Bus) FeedDown() {
	if b == nil {
		return
	}
	for _, s := range b.subscribers() {
		s.FeedDown()
	}
}

// FeedUp tells every subscriber that the feed listens again: what changed
// while it was down was never heard.
func (b *Bus) FeedUp() {
	if b == nil {
		return
	}
	for _, s := range b.subscribers() {
		s.FeedUp()
	}
}

// Delivered reports whether the event with this id reached the
// subscribers lately, so that the feed need not read it from the database.
func (b *Bus) Delivered(eventID int64) bool {
	if b == nil {
		return false
	}
	b.eventsMu.Lock()
	defer b.eventsMu.Unlock()
	return b.delivered.has(eventID)
}

func (b *Bus) subscribers() []keyhub.ChangeObserver {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.subs
}

// firstDelivery records that the event is being delivered and reports
// whether it was not before.
func (b *Bus) firstDelivery(eventID int64) bool {
	b.eventsMu.Lock()
	defer b.eventsMu.Unlock()
	return b.delivered.add(eventID)
}

// recentIDs is a set of the last n ids added, oldest forgotten first.
type recentIDs struct {
	set  map[int64]struct{}
	ring []int64
	next int
}

func newRecentIDs(n int) recentIDs {
	return recentIDs{set: make(map[int64]struct{}, n), ring: make([]int64, 0, n)}
}

func (r *recentIDs) has(id int64) bool {
	_, ok := r.set[id]
	return ok
}

// add adds id and reports whether it was new.
func (r *recentIDs) add(id int64) bool {
	if r.has(id) {
		return false
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, id)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[id] = struct{}{}
	return true
}

// KeyChangeOf is the change a key's row announces at now: the one builder
// of a keyhub.KeyChange from a key, for the writer, the re-check of open
// sockets and (in SQL, compared by a test) the change feed's trigger
// keyhub_notify_key_change, field for field. keyHash is the row's hex
// key_hash, which keyhub.Key does not carry.
//
// Ended says the key stopped working at now (revoked, or its expiry
// passed); otherwise ExpiresAt tells subscribers when it will, so that a
// socket opened with a key in its grace period closes when the grace ends
// even if nothing else is heard before. Disabled (only for a key not
// ended) is k.Disabled: the writer sets it where it knows the key's
// ancestry (a disable or enable, a patch).
func KeyChangeOf(k keyhub.Key, keyHash string, now time.Time) keyhub.KeyChange {
	ended := k.StatusAt(now) != keyhub.KeyActive
	return keyhub.KeyChange{
		KeyID:       k.ID,
		OwnerID:     k.OwnerID,
		UserID:      k.UserID,
		KeyHash:     keyHash,
		Ended:       ended,
		Disabled:    !ended && k.Disabled,
		ExpiresAt:   k.ExpiresAt,
		AllowedNets: k.AllowedCIDRs,
		Scopes:      k.Scopes,
	}
}
