package postgres_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// insertKeys inserts n keys of one new user straight into the table (the
// flush does not care how they were made) and returns their ids.
func insertKeys(t *testing.T, pool *pgxpool.Pool, n int) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	p, _, err := postgres.NewStore(pool, nil).ProvisionUser(ctx, uuid.New(), "touch@example.com")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `
		INSERT INTO api_keys (owner_id, user_id, name, key_prefix, key_hash)
		SELECT $1, $2, 'k' || i, 'mk_AAAAAAAA', encode(sha256(($3 || i)::bytea), 'hex')
		FROM generate_series(1, $4) AS i
		RETURNING id`, p.OwnerID, p.UserID, uuid.NewString(), n)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE api_keys"); err != nil {
		t.Fatal(err)
	}
	return ids
}

// Several processes (each its own pool) flush the last use of the same
// keys at the same time, each in its own order, as replicas behind a load
// balancer do. No flush may fail (a deadlock aborts one with 40P01), and
// once the skipped rows are written again every key holds the latest use.
func TestTouchKeysFromSeveralProcessesNeverDeadlock(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.NewDB(t)
	ids := insertKeys(t, pool, 2000)[:300]
	const processes, rounds = 4, 15
	base := time.Now().Truncate(time.Microsecond)
	latest := base.Add(rounds * time.Second)

	var wg sync.WaitGroup
	errs := make(chan error, processes*rounds)
	for range processes {
		proc, err := postgres.Open(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(proc.Close)
		store := postgres.NewStore(proc, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			// flush writes pending in a random order and returns what the
			// other processes held, to be written at the next flush.
			flush := func(pending map[uuid.UUID]time.Time) (map[uuid.UUID]time.Time, error) {
				batch := make([]uuid.UUID, 0, len(pending))
				for id := range pending {
					batch = append(batch, id)
				}
				rand.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				ats := make([]time.Time, len(batch))
				for i, id := range batch {
					ats[i] = pending[id]
				}
				skipped, err := store.TouchKeys(ctx, batch, ats, make([]keyhub.RequestMeta, len(batch)))
				next := map[uuid.UUID]time.Time{}
				for _, id := range skipped {
					next[id] = pending[id]
				}
				return next, err
			}
			pending := map[uuid.UUID]time.Time{}
			var err error
			for round := 1; round <= rounds && err == nil; round++ {
				for _, id := range ids {
					pending[id] = base.Add(time.Duration(round) * time.Second)
				}
				pending, err = flush(pending)
			}
			// What the others held at the last round is written now.
			for len(pending) > 0 && err == nil {
				pending, err = flush(pending)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("flush failed: %v", err)
	}
	var stale int
	if err := pool.QueryRow(context.Background(),
		"SELECT count(*) FROM api_keys WHERE id = ANY($1) AND last_used_at IS DISTINCT FROM $2", ids, latest).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d of %d keys do not hold their latest use %v", stale, len(ids), latest)
	}
}

// A flush never waits for a row another transaction holds (a revoke, an
// operator's UPDATE): it writes the others at once and hands the held one
// back for the next flush, so it holds no pool connection while waiting
// and never makes a revoke wait behind it.
func TestTouchKeysSkipsHeldRows(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := postgres.NewStore(pool, nil)
	ids := insertKeys(t, pool, 3)
	ctx := context.Background()
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, "SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE", ids[1]); err != nil {
		t.Fatal(err)
	}
	usedAt := time.Now().Truncate(time.Microsecond)
	flushCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	skipped, err := store.TouchKeys(flushCtx, ids, []time.Time{usedAt, usedAt, usedAt}, make([]keyhub.RequestMeta, 3))
	if err != nil {
		t.Fatalf("flush waited for the held row: %v", err)
	}
	if len(skipped) != 1 || skipped[0] != ids[1] {
		t.Fatalf("skipped %v, want only the held key %v", skipped, ids[1])
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if skipped, err := store.TouchKeys(ctx, skipped, []time.Time{usedAt}, make([]keyhub.RequestMeta, 1)); err != nil || len(skipped) != 0 {
		t.Fatalf("second flush: skipped %v, %v", skipped, err)
	}
	// A use older than the one stored is no news: neither written nor skipped.
	if skipped, err := store.TouchKeys(ctx, ids, []time.Time{usedAt.Add(-time.Hour), usedAt, usedAt}, make([]keyhub.RequestMeta, 3)); err != nil || len(skipped) != 0 {
		t.Fatalf("stale flush: skipped %v, %v", skipped, err)
	}
	var written int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM api_keys WHERE id = ANY($1) AND last_used_at = $2", ids, usedAt).Scan(&written); err != nil || written != 3 {
		t.Fatalf("%d keys hold the use, want 3 (%v)", written, err)
	}
}

// A flush stores each use's address and agent as the audit trail stores
// them (an IPv4 address seen over IPv6 as IPv4; the agent without control
// characters or invalid UTF-8, cut to 512 characters; unknown parts as
// NULL), and only with the use they came with: an older use moves neither.
func TestTouchKeysRecordsWhereFrom(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := postgres.NewStore(pool, nil)
	ids := insertKeys(t, pool, 3)
	ctx := context.Background()
	usedAt := time.Now().Truncate(time.Microsecond)
	long := strings.Repeat("é", 600)
	from := []keyhub.RequestMeta{
		{IP: netip.MustParseAddr("::ffff:203.0.113.7"), UserAgent: "mk/1.0\x00\n (linux)\xff"},
		{IP: netip.MustParseAddr("2001:db8::1"), UserAgent: long},
		{},
	}
	if skipped, err := store.TouchKeys(ctx, ids, []time.Time{usedAt, usedAt, usedAt}, from); err != nil || len(skipped) != 0 {
		t.Fatalf("flush: skipped %v, %v", skipped, err)
	}
	older := []keyhub.RequestMeta{{IP: netip.MustParseAddr("198.51.100.1"), UserAgent: "old"}}
	if _, err := store.TouchKeys(ctx, ids[:1], []time.Time{usedAt.Add(-time.Second)}, older); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		ip *string
		ua *string
	}{
		{ptr("203.0.113.7"), ptr("mk/1.0 (linux)\uFFFD")},
		{ptr("2001:db8::1"), ptr(strings.Repeat("é", 512))},
		{nil, nil},
	}
	for i, id := range ids {
		var ip, ua *string
		if err := pool.QueryRow(ctx, "SELECT host(last_used_ip), last_used_user_agent FROM api_keys WHERE id = $1", id).Scan(&ip, &ua); err != nil {
			t.Fatal(err)
		}
		if !sameText(ip, want[i].ip) || !sameText(ua, want[i].ua) {
			t.Errorf("key %d: stored %v %v, want %v %v", i, deref(ip), deref(ua), deref(want[i].ip), deref(want[i].ua))
		}
	}
	// A read returns what the flush stored.
	var ownerID uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT owner_id FROM api_keys WHERE id = $1", ids[0]).Scan(&ownerID); err != nil {
		t.Fatal(err)
	}
	key, err := store.GetKey(ctx, ownerID, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if key.LastUsedFrom.IP != netip.MustParseAddr("203.0.113.7") || key.LastUsedFrom.UserAgent != *want[0].ua {
		t.Errorf("read back %+v", key.LastUsedFrom)
	}
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

func sameText(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
