package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// keyChanges records the key changes a bus delivers.
type keyChanges struct {
	mu   sync.Mutex
	seen []keyhub.KeyChange
}

func (k *keyChanges) KeyChanged(c keyhub.KeyChange) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seen = append(k.seen, c)
}
func (k *keyChanges) PrincipalChanged(keyhub.PrincipalChange) {}
func (k *keyChanges) EventWritten(keyhub.Event)               {}
func (k *keyChanges) FeedDown()                               {}
func (k *keyChanges) FeedUp()                                 {}

// take returns what was recorded since the last take.
func (k *keyChanges) take() []keyhub.KeyChange {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := k.seen
	k.seen = nil
	return seen
}

// describe is a change as comparable text: every field, the expiry to the
// microsecond PostgreSQL stores (the trigger sends it as float seconds).
func ptr[T any](v T) *T { return &v }

func describe(changes []keyhub.KeyChange) []string {
	out := make([]string, 0, len(changes))
	for _, c := range changes {
		exp := "never"
		if c.ExpiresAt != nil {
			exp = fmt.Sprint(c.ExpiresAt.Round(time.Microsecond).UnixMicro())
		}
		out = append(out, fmt.Sprintf("key=%s owner=%s user=%s hash=%s ended=%t disabled=%t expires=%s nets=%v scopes=%s", c.KeyID, c.OwnerID, c.UserID, c.KeyHash, c.Ended, c.Disabled, exp, c.AllowedNets, c.Scopes))
	}
	slices.Sort(out)
	return out
}

// triggerChanges reads the key notices the triggers sent since the last
// call, waiting until want of them have arrived.
func triggerChanges(t *testing.T, conn *pgx.Conn, want int) []keyhub.KeyChange {
	t.Helper()
	var got []keyhub.KeyChange
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(got) < want {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("waiting for %d key notices, have %d: %v", want, len(got), err)
		}
		notice, err := postgres.ParseNotice(n.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if notice.Kind == postgres.NoticeKey {
			got = append(got, notice.KeyChange(nil))
		}
	}
	// Nothing more is on its way: the writes are committed.
	quiet, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(quiet)
		if err != nil {
			return got
		}
		if notice, err := postgres.ParseNotice(n.Payload); err == nil && notice.Kind == postgres.NoticeKey {
			t.Fatalf("more key notices than the writer published: %s", n.Payload)
		}
	}
}

// TestWriterKeyChangesMatchTheTrigger: for every write on keys, what the
// writer publishes on its own process's bus (changes.KeyChangeOf) is what
// the change feed's trigger announces to every other process, field for
// field; so is what KeyStates reports afterwards. A refresh with a grace
// period re-dates the old key: Ended false and the grace's end, on the
// writer's own bus too.
func TestWriterKeyChangesMatchTheTrigger(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	ctx := context.Background()
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close(context.Background()) })
	if _, err := listener.Exec(ctx, "LISTEN "+postgres.ChangeChannel); err != nil {
		t.Fatal(err)
	}
	bus := changes.New()
	heard := &keyChanges{}
	bus.Subscribe(heard)
	store := postgres.NewStore(pool, bus)
	p, _, err := store.ProvisionUser(ctx, uuid.New(), "feed@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// Room for a family of keys (the free tier holds one).
	if _, err := pool.Exec(ctx, "UPDATE owners SET tier = 'team' WHERE id = $1", p.OwnerID); err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(48 * time.Hour)
	create := func() keyhub.Key {
		t.Helper()
		k, err := store.CreateKey(ctx, &p, keyhub.CreateKeyInput{Name: "k", Scopes: keyhub.BuiltinScopes, ExpiresAt: &expires}, keyhub.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		return k.Key
	}
	refresh := func(id uuid.UUID, grace time.Duration) keyhub.Key {
		t.Helper()
		out, err := store.RefreshKey(ctx, &p, id, keyhub.RefreshInput{Grace: grace}, keyhub.RequestMeta{})
		if err != nil {
			t.Fatal(err)
		}
		return out.New.Key
	}
	revoke := func(id uuid.UUID) {
		t.Helper()
		if _, _, err := store.RevokeKey(ctx, &p, id, keyhub.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
	}

	setDisabled := func(id uuid.UUID, disabled bool) {
		t.Helper()
		if _, err := store.SetKeyDisabled(ctx, &p, id, disabled, keyhub.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	update := func(id uuid.UUID, in keyhub.KeyUpdate) {
		t.Helper()
		if _, err := store.UpdateKey(ctx, &p, id, in, keyhub.RequestMeta{}); err != nil {
			t.Fatal(err)
		}
	}
	// makeFamily creates a key, a child made with it and a grandchild
	// made with the child.
	makeFamily := func() []uuid.UUID {
		t.Helper()
		ids := []uuid.UUID{create().ID}
		for range 2 {
			actor := keyhub.Principal{UserID: p.UserID, OwnerID: p.OwnerID, Tier: p.Tier, Method: keyhub.AuthAPIKey, KeyID: ids[len(ids)-1], Scopes: keyhub.BuiltinScopes}
			k, err := store.CreateKey(ctx, &actor, keyhub.CreateKeyInput{Name: "f", Scopes: keyhub.BuiltinScopes, ExpiresAt: &expires}, keyhub.RequestMeta{})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, k.Key.ID)
		}
		return ids
	}
	var family []uuid.UUID
	var touched []uuid.UUID
	var first, second keyhub.Key
	steps := []struct {
		name    string
		changes int
		write   func()
	}{
		{"create", 0, func() { first = create(); touched = append(touched, first.ID) }},
		{"refresh with grace", 1, func() { second = refresh(first.ID, time.Hour); touched = append(touched, second.ID) }},
		{"refresh the successor, ending the grace", 2, func() { touched = append(touched, refresh(second.ID, 30*time.Minute).ID) }},
		{"revoke the newest, ending its predecessor's grace", 2, func() { revoke(touched[2]) }},
		{"refresh without grace", 1, func() { touched = append(touched, refresh(create().ID, 0).ID) }},
		{"revoke", 1, func() { revoke(touched[3]) }},
		{"create another", 0, func() { touched = append(touched, create().ID) }},
		// Disabling a key announces it and every key obtained through it
		// (its child and grandchild here), disabled; enabling, not.
		{"disable a key with descendants", 3, func() { family = makeFamily(); setDisabled(family[0], true) }},
		{"patch a key its parent disabled", 1, func() { update(family[1], keyhub.KeyUpdate{Name: ptr("renamed"), Metadata: []byte(`{"a":1}`)}) }},
		{"patch the metadata only: nothing cached changes", 0, func() { update(family[1], keyhub.KeyUpdate{Metadata: []byte(`{"a":2}`)}) }},
		{"enable it", 3, func() { setDisabled(family[0], false) }},
		{"restrict the networks", 1, func() {
			update(family[2], keyhub.KeyUpdate{AllowedCIDRs: &[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		}},
		{"narrow the scopes", 1, func() {
			update(family[2], keyhub.KeyUpdate{Scopes: ptr(keyhub.ScopeKeysRead | keyhub.ScopeEventsRead)})
		}},
		{"revoke a disabled key", 6, func() { setDisabled(family[0], true); revoke(family[0]) }},
	}
	var graceEnd *time.Time
	for _, step := range steps {
		step.write()
		writer := heard.take()
		trigger := triggerChanges(t, listener, step.changes)
		if got, want := describe(writer), describe(trigger); !slices.Equal(got, want) {
			t.Fatalf("%s: the writer published\n  %s\nthe trigger announced\n  %s", step.name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		if step.name == "refresh with grace" {
			if writer[0].Ended || writer[0].ExpiresAt == nil || writer[0].UserID != p.UserID {
				t.Fatalf("refresh with grace published %+v: want the old key not ended, its user, and the grace's end", writer[0])
			}
			graceEnd = writer[0].ExpiresAt
		}
	}
	if graceEnd == nil || graceEnd.Sub(time.Now()) > time.Hour || graceEnd.Sub(time.Now()) < 50*time.Minute {
		t.Fatalf("grace end %v, want about an hour from now", graceEnd)
	}

	// What open sockets re-check from (KeyStates) agrees too, with the
	// state the keys are in now: every key ended but the last one created.
	rows, err := pool.Query(ctx, "SELECT id FROM api_keys WHERE user_id = $1", p.UserID)
	if err != nil {
		t.Fatal(err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(all) != 9 {
		t.Fatalf("keys %v %v", all, err)
	}
	states, err := store.KeyStates(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	var fromSQL []keyhub.KeyChange
	for _, id := range all {
		var oldExpiry *time.Time
		if err := pool.QueryRow(ctx, "SELECT expires_at FROM api_keys WHERE id = $1", id).Scan(&oldExpiry); err != nil {
			t.Fatal(err)
		}
		// Re-date each key to the expiry it has (a no-op write the
		// trigger still announces) to hear the trigger's view of it now.
		if _, err := pool.Exec(ctx, "UPDATE api_keys SET expires_at = NULL WHERE id = $1", id); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, "UPDATE api_keys SET expires_at = $2 WHERE id = $1", id, oldExpiry); err != nil {
			t.Fatal(err)
		}
		heard := triggerChanges(t, listener, 2)
		fromSQL = append(fromSQL, heard[1])
	}
	got, want := describe(states), describe(fromSQL)
	if !slices.Equal(got, want) {
		t.Fatalf("KeyStates\n  %s\nthe trigger\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	ended := 0
	for _, s := range states {
		if s.Ended {
			ended++
		}
	}
	if ended != len(states)-1 {
		t.Fatalf("%d of %d keys ended, want all but the newest", ended, len(states))
	}
}

// eventsHeard counts the events a bus delivers.
type eventsHeard struct {
	keyChanges
	events atomic.Int64
}

func (e *eventsHeard) EventWritten(keyhub.Event) { e.events.Add(1) }

// TestFeedReadsAnnouncedEventsInBatches: the events another process (here
// an operator's bulk INSERT) announces are read from the database in a few
// batches, not one query per event, and each is delivered once.
func TestFeedReadsAnnouncedEventsInBatches(t *testing.T) {
	t.Parallel()
	pool, url := pgtest.NewDB(t)
	ctx := t.Context()
	bus := changes.New()
	heard := &eventsHeard{}
	bus.Subscribe(heard)
	store := postgres.NewStore(pool, bus)
	feed := store.NewChangeFeed(url, slog.New(slog.DiscardHandler))
	// The first read waits until every notice of the bulk insert has been
	// heard: what queued meanwhile must then be read in batches. (Without
	// the hold the test measured the machine's load: a busy listener hands
	// the reader one notice at a time, and 501 events once took 78 reads.)
	var reads, read, noticed atomic.Int64
	var bulkStarted atomic.Bool
	const bulk = 500
	feed.OnNotice = func(kind string, _ time.Duration) {
		if kind == postgres.NoticeEvent && bulkStarted.Load() {
			noticed.Add(1)
		}
	}
	feed.OnEventsRead = func(n int) {
		if bulkStarted.Load() && reads.Load() == 0 {
			for deadline := time.Now().Add(10 * time.Second); noticed.Load() < bulk && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		reads.Add(1)
		read.Add(int64(n))
	}
	go feed.Run(ctx)
	p, _, err := store.ProvisionUser(ctx, uuid.New(), "bulk@example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, err := store.CreateKey(ctx, &p, keyhub.CreateKeyInput{Name: "k", Scopes: keyhub.BuiltinScopes}, keyhub.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !feed.Listening(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the feed does not listen")
		}
	}
	before := heard.events.Load()
	reads.Store(0)
	read.Store(0)
	bulkStarted.Store(true)
	if _, err := pool.Exec(ctx, `INSERT INTO api_key_events (api_key_id, owner_id, event_type)
		SELECT $1, $2, 'used' FROM generate_series(1, $3)`, k.Key.ID, k.Key.OwnerID, bulk); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); heard.events.Load()-before < bulk; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d announced events delivered", heard.events.Load()-before, bulk)
		}
	}
	if n := heard.events.Load() - before; n != bulk {
		t.Fatalf("%d events delivered, want %d", n, bulk)
	}
	if read.Load() < bulk || reads.Load() > 4 {
		t.Fatalf("%d events read in %d queries: want batches", read.Load(), reads.Load())
	}
	t.Logf("%d events read in %d queries", read.Load(), reads.Load())
}
