package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// Two processes adding to the same rows at once, one handing its batch
// over in the opposite order, neither deadlock nor lose a count: the
// statement inserts in (key, hour) order whatever order it is given.
func TestAddKeyUsageConcurrentFlushesDoNotDeadlock(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := postgres.NewStore(pool, nil)
	hour := time.Now().UTC().Truncate(time.Hour)
	var batch []keyhub.UsageCount
	for range 200 {
		batch = append(batch, keyhub.UsageCount{KeyID: uuid.New(), Hour: hour, Counts: [keyhub.UsageOutcomes]int64{1, 2, 3}})
	}
	reversed := slices.Clone(batch)
	slices.Reverse(reversed)
	const rounds = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for _, b := range [][]keyhub.UsageCount{batch, reversed} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				errs <- store.AddKeyUsage(context.Background(), b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var rows int
	var ok, refused, limited int64
	if err := pool.QueryRow(context.Background(), "SELECT count(*), sum(ok), sum(refused), sum(rate_limited) FROM api_key_usage").Scan(&rows, &ok, &refused, &limited); err != nil {
		t.Fatal(err)
	}
	if rows != 200 || ok != 2*rounds*200 || refused != 2*2*rounds*200 || limited != 3*2*rounds*200 {
		t.Fatalf("%d rows, %d ok, %d refused, %d rate limited", rows, ok, refused, limited)
	}
}

// The sweep deletes hours older than the retention and keeps the rest.
func TestPruneKeyUsageKeepsNinetyDays(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := postgres.NewStore(pool, nil)
	ctx := context.Background()
	now := time.Now().UTC()
	key := uuid.New()
	old := now.Add(-keyhub.UsageRetention - time.Hour).Truncate(time.Hour)
	kept := now.Add(-keyhub.UsageRetention + time.Hour).Truncate(time.Hour)
	err := store.AddKeyUsage(ctx, []keyhub.UsageCount{
		{KeyID: key, Hour: old, Counts: [keyhub.UsageOutcomes]int64{1}},
		{KeyID: key, Hour: kept, Counts: [keyhub.UsageOutcomes]int64{1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	deleted, err := store.PruneKeyUsage(ctx, now)
	if err != nil || deleted != 1 {
		t.Fatalf("pruned %d rows (%v), want 1", deleted, err)
	}
	var left time.Time
	if err := pool.QueryRow(ctx, "SELECT hour FROM api_key_usage").Scan(&left); err != nil || !left.Equal(kept) {
		t.Fatalf("left %v (%v), want the hour %v", left, err, kept)
	}
}
