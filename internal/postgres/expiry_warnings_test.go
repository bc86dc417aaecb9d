package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

const day = 24 * time.Hour

// warningsHeard records the `expiring` events a bus delivers.
type warningsHeard struct {
	mu   sync.Mutex
	seen []keyhub.Event
}

func (w *warningsHeard) KeyChanged(keyhub.KeyChange)             {}
func (w *warningsHeard) PrincipalChanged(keyhub.PrincipalChange) {}
func (w *warningsHeard) FeedDown()                               {}
func (w *warningsHeard) FeedUp()                                 {}
func (w *warningsHeard) EventWritten(e keyhub.Event) {
	if e.Type == keyhub.EventExpiring {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.seen = append(w.seen, e)
	}
}

// take returns the warnings heard since the last take, as "name:window".
func (w *warningsHeard) take(t *testing.T, names map[uuid.UUID]string) []string {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.seen))
	for _, e := range w.seen {
		warning, ok := keyhub.ExpiryWarningOf(e)
		if !ok {
			t.Fatalf("an expiring event without its warning: %s", e.Details)
		}
		out = append(out, fmt.Sprintf("%s:%s", names[e.KeyID], windowName(warning.Window)))
	}
	w.seen = nil
	slices.Sort(out)
	return out
}

func windowName(w time.Duration) string {
	if w%day == 0 {
		return fmt.Sprintf("%dd", w/day)
	}
	return w.String()
}

// storedWarnings is every `expiring` event in the database, as
// "name:window", checking that each one's expiry is its key's.
func storedWarnings(t *testing.T, pool *pgxpool.Pool, names map[uuid.UUID]string) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT e.api_key_id, (e.details->>'window_seconds')::bigint, (e.details->>'expires_at')::timestamptz,
		       e.actor_user_id IS NULL AND e.actor_key_id IS NULL
		FROM api_key_events e WHERE e.event_type = 'expiring' ORDER BY e.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id uuid.UUID
		var seconds int64
		var expires time.Time
		var noActor bool
		if err := rows.Scan(&id, &seconds, &expires, &noActor); err != nil {
			t.Fatal(err)
		}
		if !noActor {
			t.Fatalf("an expiring event of %s has an actor", names[id])
		}
		out = append(out, fmt.Sprintf("%s:%s", names[id], windowName(time.Duration(seconds)*time.Second)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// keyFactory provisions an owner on the team tier and makes keys that
// expire at given times, remembering their names.
type keyFactory struct {
	t     *testing.T
	store *postgres.Store
	p     keyhub.Principal
	names map[uuid.UUID]string
}

func newKeyFactory(t *testing.T, store *postgres.Store, pool *pgxpool.Pool, names map[uuid.UUID]string) *keyFactory {
	t.Helper()
	p, _, err := store.ProvisionUser(t.Context(), uuid.New(), uuid.NewString()+"@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), "UPDATE owners SET tier = 'team' WHERE id = $1", p.OwnerID); err != nil {
		t.Fatal(err)
	}
	return &keyFactory{t: t, store: store, p: p, names: names}
}

func (f *keyFactory) key(name string, expires *time.Time) keyhub.Key {
	f.t.Helper()
	k, err := f.store.CreateKey(f.t.Context(), &f.p, keyhub.CreateKeyInput{Name: name, Scopes: keyhub.BuiltinScopes, ExpiresAt: expires}, keyhub.RequestMeta{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.names[k.Key.ID] = name
	return k.Key
}

// TestExpiryWarningWindows sweeps at chosen times (the sweep's clock is a
// parameter; the keys' lifetimes are real, counted from their creation)
// and checks which warnings each sweep writes: every key entering the
// 7-day window in one sweep gets its warning, then its 1-day one, each
// once; what the sweep returns, what it publishes and what it stores
// agree.
func TestExpiryWarningWindows(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := t.Context()
	bus := changes.New()
	heard := &warningsHeard{}
	bus.Subscribe(heard)
	store := postgres.NewStore(pool, bus)
	names := map[uuid.UUID]string{}
	f := newKeyFactory(t, store, pool, names)
	base := time.Now()
	at := func(d time.Duration) *time.Time { t := base.Add(d); return &t }

	f.key("a", at(10*day))
	b := f.key("b", at(10*day+time.Hour))
	f.key("short", at(5*day)) // born inside the 7-day window: only the 1-day one
	f.key("never", nil)
	revoked := f.key("revoked", at(10*day))
	if _, _, err := store.RevokeKey(ctx, &f.p, revoked.ID, keyhub.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	disabled := f.key("disabled", at(10*day))
	if _, err := store.SetKeyDisabled(ctx, &f.p, disabled.ID, true, keyhub.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	reexpired := f.key("reexpired", at(10*day))

	sweep := func(after time.Duration, want ...string) {
		t.Helper()
		n, err := store.RecordExpiryWarnings(ctx, base.Add(after))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		if got := heard.take(t, names); n != len(want) || !slices.Equal(got, want) {
			t.Fatalf("sweep at +%v wrote %d, published %v; want %v", after, n, got, want)
		}
	}
	sweep(day)
	// a, b and reexpired enter the 7-day window in the same sweep.
	sweep(3*day+2*time.Hour, "a:7d", "b:7d", "reexpired:7d")
	sweep(3*day + 2*time.Hour)
	sweep(3*day + 3*time.Hour)
	// short is a day from its expiry.
	sweep(4*day+time.Hour, "short:1d")

	// Enabled inside the 7-day window, the disabled key is warned now.
	if _, err := store.SetKeyDisabled(ctx, &f.p, disabled.ID, false, keyhub.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	sweep(4*day+time.Hour, "disabled:7d")

	// b is refreshed: its replacement (its lifetime from now) gets its
	// own warnings; b, ending with its grace period, gets none (the
	// refresh chose that end), even made to look a month old, so that its
	// 1-day window does not start before its creation.
	r, err := store.RefreshKey(ctx, &f.p, b.ID, keyhub.RefreshInput{Grace: 23 * time.Hour}, keyhub.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	names[r.New.Key.ID] = "b2"
	if _, err := pool.Exec(ctx, "UPDATE api_keys SET created_at = created_at - interval '30 days' WHERE id = $1", b.ID); err != nil {
		t.Fatal(err)
	}
	sweep(2 * time.Hour)
	sweep(4*day+time.Hour, "b2:7d")

	// An operator moves reexpired's expiry: it is warned of the new one.
	if _, err := pool.Exec(ctx, "UPDATE api_keys SET expires_at = $2 WHERE id = $1", reexpired.ID, *at(30 * day)); err != nil {
		t.Fatal(err)
	}
	// A key that enters both windows between two sweeps (no process ran
	// for days) is warned once, of the nearer.
	f.key("late", at(10*day+30*time.Minute))
	sweep(9*day+12*time.Hour, "a:1d", "disabled:1d", "b2:1d", "late:1d")
	sweep(9*day + 13*time.Hour)
	sweep(23*day+time.Hour, "reexpired:7d")
	sweep(29*day+time.Hour, "reexpired:1d")
	sweep(40 * day)

	want := []string{"a:7d", "a:1d", "b:7d", "b2:7d", "b2:1d", "disabled:7d", "disabled:1d", "late:1d",
		"reexpired:7d", "reexpired:7d", "reexpired:1d", "short:1d"}
	slices.Sort(want)
	if got := storedWarnings(t, pool, names); !slices.Equal(got, want) {
		t.Fatalf("stored warnings %v, want %v", got, want)
	}
}

// twoProcesses is a test database and two stores on it, each with its own
// pool, as two keyhub processes; the first store uses the returned pool.
func twoProcesses(t *testing.T) (*pgxpool.Pool, []*postgres.Store) {
	t.Helper()
	pool, url := pgtest.NewDB(t)
	other, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	return pool, []*postgres.Store{postgres.NewStore(pool, nil), postgres.NewStore(other, nil)}
}

// atOnce runs step(0) … step(n-1) on n goroutines released together and
// returns the sum of what they return, failing the test on any error.
func atOnce(t *testing.T, n int, step func(i int) (int64, error)) int64 {
	t.Helper()
	var total atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			done, err := step(i)
			if err != nil {
				t.Error(err)
				return
			}
			total.Add(done)
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return total.Load()
}

// TestExpiryWarningsOnceWithConcurrentSweeps: two stores on one database,
// as two processes, each with several sweeps running at once, at the same
// and at later times: every warning is written exactly once, and the
// counts the sweeps return add up to what is stored.
func TestExpiryWarningsOnceWithConcurrentSweeps(t *testing.T) {
	t.Parallel()
	pool, stores := twoProcesses(t)
	ctx := t.Context()
	names := map[uuid.UUID]string{}
	base := time.Now()
	var want []string
	for o := range 3 {
		f := newKeyFactory(t, stores[o%2], pool, names)
		for i := range 8 {
			// Expiries from 8 to 11.5 days out, a few hours apart.
			expires := base.Add(8*day + time.Duration(o*8+i)*3*time.Hour)
			name := fmt.Sprintf("o%d-k%d", o, i)
			f.key(name, &expires)
			want = append(want, name+":7d", name+":1d")
		}
	}
	slices.Sort(want)

	// Sweep times crossing every key's two windows, each swept by eight
	// sweeps at once, four on each store.
	var total int64
	for at := 0 * time.Hour; at <= 12*day; at += 6 * time.Hour {
		total += atOnce(t, 8, func(i int) (int64, error) {
			n, err := stores[i%2].RecordExpiryWarnings(ctx, base.Add(at))
			return int64(n), err
		})
	}
	got := storedWarnings(t, pool, names)
	if !slices.Equal(got, want) {
		t.Fatalf("stored warnings %v,\nwant %v", got, want)
	}
	if total != int64(len(want)) {
		t.Fatalf("the sweeps reported %d warnings written, %d are stored", total, len(want))
	}
	var ledger int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM api_key_expiry_warnings").Scan(&ledger); err != nil || ledger != len(want) {
		t.Fatalf("ledger rows %d (%v), want %d", ledger, err, len(want))
	}
}

// TestPruneExpiryWarningsConcurrently: the ledger rows that can never
// matter again (a revoked key's; those of an expiry more than the
// retention past, thousands of them, more than one batch) are deleted by
// eight prunes at once on two stores, as two processes, each row once:
// the counts they return add up to the rows deleted. What may still
// matter stays (a live key's warning, expiries past by less than the
// retention) and still does its job: sweeping again warns no one twice.
func TestPruneExpiryWarningsConcurrently(t *testing.T) {
	t.Parallel()
	pool, stores := twoProcesses(t)
	ctx := t.Context()
	names := map[uuid.UUID]string{}
	f := newKeyFactory(t, stores[0], pool, names)
	base := time.Now()
	at := func(d time.Duration) *time.Time { t := base.Add(d); return &t }

	live := f.key("live", at(10*day))
	revoked := f.key("revoked", at(10*day))
	if n, err := stores[0].RecordExpiryWarnings(ctx, base.Add(3*day+12*time.Hour)); err != nil || n != 2 {
		t.Fatalf("the sweep wrote %d warnings (%v), want 2", n, err)
	}
	if _, _, err := stores[0].RevokeKey(ctx, &f.p, revoked.ID, keyhub.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	// Rows of a key's earlier expiries (an operator moved it), written as
	// a sweep would have: 10000 past the retention by a minute or more,
	// three past by less.
	old := f.key("old", at(30*day))
	const stale = 10000 // more than the eight prunes delete in one batch each
	if _, err := pool.Exec(ctx, `
		INSERT INTO api_key_expiry_warnings (api_key_id, expires_at, window_seconds, warned_at)
		SELECT $1, $2::timestamptz - g * interval '1 minute', 86400, $2::timestamptz - g * interval '1 minute' - interval '1 day'
		FROM generate_series(1, $3::int) g`, old.ID, base.Add(-postgres.ExpiryWarningRetention), stale); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO api_key_expiry_warnings (api_key_id, expires_at, window_seconds, warned_at)
		SELECT $1, $2::timestamptz + g * interval '1 hour', 86400, $2::timestamptz
		FROM generate_series(1, 3) g`, old.ID, base.Add(-postgres.ExpiryWarningRetention)); err != nil {
		t.Fatal(err)
	}

	total := atOnce(t, 8, func(i int) (int64, error) { return stores[i%2].PruneExpiryWarnings(ctx, base) })
	if total != stale+1 {
		t.Fatalf("the prunes reported %d rows deleted, want %d (the stale rows and the revoked key's)", total, stale+1)
	}
	rows, err := pool.Query(ctx, `SELECT api_key_id, window_seconds, expires_at > $1 FROM api_key_expiry_warnings ORDER BY 1, 3, 2`, base)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for rows.Next() {
		var id uuid.UUID
		var window int64
		var ahead bool
		if err := rows.Scan(&id, &window, &ahead); err != nil {
			t.Fatal(err)
		}
		left = append(left, fmt.Sprintf("%s:%s:ahead=%t", names[id], windowName(time.Duration(window)*time.Second), ahead))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	want := []string{"live:7d:ahead=true", "old:1d:ahead=false", "old:1d:ahead=false", "old:1d:ahead=false"}
	if !slices.Equal(left, want) {
		t.Fatalf("ledger after pruning: %v, want %v", left, want)
	}
	if n, err := stores[1].PruneExpiryWarnings(ctx, base); err != nil || n != 0 {
		t.Fatalf("pruning again deleted %d (%v), want 0", n, err)
	}
	if n, err := stores[1].RecordExpiryWarnings(ctx, base.Add(3*day+13*time.Hour)); err != nil || n != 0 {
		t.Fatalf("after pruning, a sweep wrote %d warnings (%v), want 0: %s was warned already", n, err, names[live.ID])
	}
}

// TestExpiryWarningGiven: what a daemon connecting later is told is the
// nearest warning the sweep gave of the key's current expiry, and nothing
// for a key the sweep did not warn (a window it was born inside, or an
// expiry an operator moved since).
func TestExpiryWarningGiven(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	ctx := t.Context()
	store := postgres.NewStore(pool, nil)
	names := map[uuid.UUID]string{}
	f := newKeyFactory(t, store, pool, names)
	base := time.Now()
	at := func(d time.Duration) *time.Time { t := base.Add(d); return &t }
	long := f.key("long", at(10*day))
	short := f.key("short", at(5*day)) // born inside its 7-day window

	given := func(k keyhub.Key) string {
		t.Helper()
		w, ok, err := store.ExpiryWarningGiven(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return "none"
		}
		return fmt.Sprintf("%s of %s", windowName(w.Window), w.ExpiresAt.UTC().Format(time.RFC3339Nano))
	}
	expiry := func(k keyhub.Key) string { return k.ExpiresAt.UTC().Format(time.RFC3339Nano) }
	sweep := func(after time.Duration) {
		t.Helper()
		if _, err := store.RecordExpiryWarnings(ctx, base.Add(after)); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		sweep       time.Duration
		long, short string
	}{
		{day, "none", "none"},
		{3*day + 12*time.Hour, "7d of " + expiry(long), "none"},
		{4*day + time.Hour, "7d of " + expiry(long), "1d of " + expiry(short)},
		{9*day + 12*time.Hour, "1d of " + expiry(long), "1d of " + expiry(short)},
	} {
		sweep(step.sweep)
		if got := given(long); got != step.long {
			t.Fatalf("after the sweep at +%v, long was given %q, want %q", step.sweep, got, step.long)
		}
		if got := given(short); got != step.short {
			t.Fatalf("after the sweep at +%v, short was given %q, want %q", step.sweep, got, step.short)
		}
	}
	if _, err := pool.Exec(ctx, "UPDATE api_keys SET expires_at = $2 WHERE id = $1", long.ID, *at(30 * day)); err != nil {
		t.Fatal(err)
	}
	if got := given(long); got != "none" {
		t.Fatalf("after its expiry moved, long was given %q, want none", got)
	}
}
