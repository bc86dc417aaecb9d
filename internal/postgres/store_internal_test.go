package postgres

import (
	"context"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Two transactions that take two locks in opposite orders deadlock;
// PostgreSQL aborts one, and inTx runs it again, so both succeed.
// (In-package, so it cannot use pgtest, which imports this package; it
// needs no schema: the locks are advisory.)
func TestInTxRetriesDeadlockVictim(t *testing.T) {
	t.Parallel()
	url := os.Getenv("KEYHUB_TEST_DATABASE_URL")
	if url == "" {
		t.Fatal("KEYHUB_TEST_DATABASE_URL is not set: run the tests with `make test`")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := NewStore(pool, nil)

	first, second := rand.Int64(), rand.Int64()
	var bothHoldOne sync.WaitGroup
	bothHoldOne.Add(2)
	run := func(a, b int64, attempts *int) error {
		return s.inTx(ctx, func(tx pgx.Tx) error {
			*attempts++
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", a); err != nil {
				return err
			}
			if *attempts == 1 {
				bothHoldOne.Done()
				bothHoldOne.Wait()
			}
			_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", b)
			return err
		})
	}
	var wg sync.WaitGroup
	var errs [2]error
	var attempts [2]int
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = run(first, second, &attempts[0]) }()
	go func() { defer wg.Done(); errs[1] = run(second, first, &attempts[1]) }()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors: %v, %v", errs[0], errs[1])
	}
	if attempts[0]+attempts[1] != 3 {
		t.Fatalf("attempts %v: want one transaction run twice", attempts)
	}
}
