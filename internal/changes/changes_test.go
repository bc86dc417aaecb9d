package changes_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// recorder is a subscriber that writes down what it hears, in order.
type recorder struct {
	mu    sync.Mutex
	heard []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.heard = append(r.heard, s)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.heard...)
}

func (r *recorder) KeyChanged(c keyhub.KeyChange) { r.add("key " + c.KeyHash) }
func (r *recorder) PrincipalChanged(c keyhub.PrincipalChange) {
	r.add("principal " + c.OwnerID.String()[:4])
}
func (r *recorder) EventWritten(e keyhub.Event) { r.add(fmt.Sprintf("event %d", e.ID)) }
func (r *recorder) FeedDown()                   { r.add("down") }
func (r *recorder) FeedUp()                     { r.add("up") }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBusDeliversToEverySubscriberInOrder(t *testing.T) {
	t.Parallel()
	bus := changes.New()
	first, second := &recorder{}, &recorder{}
	bus.Subscribe(first)
	bus.Subscribe(second)
	owner := uuid.MustParse("abcd0000-0000-4000-8000-000000000000")

	bus.FeedDown()
	// Key changes go first, whatever order the writer listed the events in:
	// a revocation never waits behind the events that record it.
	bus.Publish(changes.Commit{
		Events: []keyhub.Event{{ID: 1}, {ID: 2}},
		Keys:   []keyhub.KeyChange{{KeyHash: "a"}, {KeyHash: "b"}},
	})
	bus.PublishPrincipal(keyhub.PrincipalChange{OwnerID: owner})
	bus.FeedUp()

	want := []string{"down", "key a", "key b", "event 1", "event 2", "principal abcd", "up"}
	for _, r := range []*recorder{first, second} {
		if got := r.list(); !equal(got, want) {
			t.Fatalf("heard %q, want %q", got, want)
		}
	}
}

// The writer and the feed both publish a commit; key changes may be heard
// twice (subscribers are idempotent), an event only once, whoever is first.
func TestBusDeliversAnEventOnce(t *testing.T) {
	t.Parallel()
	bus := changes.New()
	r := &recorder{}
	bus.Subscribe(r)
	if bus.Delivered(7) {
		t.Fatal("an event never published counts as delivered")
	}
	writer := changes.Commit{Keys: []keyhub.KeyChange{{KeyHash: "k"}}, Events: []keyhub.Event{{ID: 7}, {ID: 8}}}
	feed := changes.Commit{Keys: []keyhub.KeyChange{{KeyHash: "k"}}, Events: []keyhub.Event{{ID: 8}, {ID: 7}, {ID: 9}}}
	bus.Publish(writer)
	bus.Publish(feed)
	want := []string{"key k", "event 7", "event 8", "key k", "event 9"}
	if got := r.list(); !equal(got, want) {
		t.Fatalf("heard %q, want %q", got, want)
	}
	for _, id := range []int64{7, 8, 9} {
		if !bus.Delivered(id) {
			t.Fatalf("event %d not remembered as delivered", id)
		}
	}
}

// The bus remembers a bounded number of event ids: memory does not grow
// with the audit trail, and the oldest ids are the ones forgotten.
func TestBusForgetsTheOldestEventsFirst(t *testing.T) {
	t.Parallel()
	bus := changes.New()
	r := &recorder{}
	bus.Subscribe(r)
	const published = 20_000
	events := make([]keyhub.Event, published)
	for i := range events {
		events[i].ID = int64(i + 1)
	}
	bus.Publish(changes.Commit{Events: events})
	if !bus.Delivered(published) || !bus.Delivered(published-8191) {
		t.Fatal("the newest 8192 events are not remembered")
	}
	if bus.Delivered(1) || bus.Delivered(published-8192) {
		t.Fatal("events older than the newest 8192 are remembered: the set grows without bound")
	}
	if n := len(r.list()); n != published {
		t.Fatalf("%d events delivered, want %d", n, published)
	}
}

func TestNilBusDeliversToNobody(t *testing.T) {
	t.Parallel()
	var bus *changes.Bus
	bus.Publish(changes.Commit{Keys: []keyhub.KeyChange{{}}, Events: []keyhub.Event{{ID: 1}}})
	bus.PublishPrincipal(keyhub.PrincipalChange{})
	bus.FeedDown()
	bus.FeedUp()
	if bus.Delivered(1) {
		t.Fatal("a nil bus delivered an event")
	}
}

func TestBusIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	bus := changes.New()
	r := &recorder{}
	bus.Subscribe(r)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				// Every writer publishes every id: each is heard once.
				bus.Publish(changes.Commit{Events: []keyhub.Event{{ID: int64(i)}}})
				if i == 250 && w == 0 {
					bus.Subscribe(&recorder{})
				}
			}
		}()
	}
	wg.Wait()
	if n := len(r.list()); n != 500 {
		t.Fatalf("%d deliveries of 500 distinct events published 4 times each", n)
	}
}

func TestKeyChangeOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Minute), now.Add(-time.Minute)
	nets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	key := keyhub.Key{ID: uuid.New(), OwnerID: uuid.New(), UserID: uuid.New(), Name: "k", CreatedAt: earlier, AllowedCIDRs: nets}
	for _, tc := range []struct {
		name      string
		revoked   *time.Time
		expires   *time.Time
		wantEnded bool
	}{
		{"active, never expires", nil, nil, false},
		{"in its grace period", nil, &later, false},
		{"expires right now", nil, &now, true},
		{"expired", nil, &earlier, true},
		{"revoked", &earlier, nil, true},
		{"revoked with an expiry to come", &earlier, &later, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := key
			k.RevokedAt, k.ExpiresAt = tc.revoked, tc.expires
			got := changes.KeyChangeOf(k, "hash", now)
			want := keyhub.KeyChange{KeyID: k.ID, OwnerID: k.OwnerID, UserID: k.UserID, KeyHash: "hash", Ended: tc.wantEnded, ExpiresAt: tc.expires, AllowedNets: nets}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}
