package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/dbgen"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// Store runs keyhub's database work.
type Store struct {
	pool *pgxpool.Pool
	q    *dbgen.Queries
	// scopes reads the scope names of key rows (nil: keyhub's own only).
	scopes *keyhub.ScopeCatalog
	// bus hears what this process's own transactions committed, and the
	// change feed's notices of everyone's.
	bus *changes.Bus

	// beforeLock, set by tests only, runs in a key write's transaction
	// before it takes any lock: where a concurrent write can overtake it.
	beforeLock func()
}

// NewStore returns a Store on pool that publishes its committed changes on
// bus (nil: to nobody).
func NewStore(pool *pgxpool.Pool, bus *changes.Bus) *Store {
	return &Store{pool: pool, q: dbgen.New(), bus: bus}
}

// WithScopes makes the store read and write scope names with catalog
// (keyhub's own and PRODUCT_SCOPES): stored names it does not know are
// ignored, and a user session holds catalog.All(). Call it before use.
func (s *Store) WithScopes(catalog *keyhub.ScopeCatalog) *Store {
	s.scopes = catalog
	return s
}

// publish hands this process's own committed changes and events to the
// bus at once, so that the API is read-your-writes: the revoke answered
// 204 is refused by the next request to this process, and a socket
// subscribed to the audit trail hears the event without a read. The change
// feed brings the same commit a moment later; the bus makes that harmless.
func (s *Store) publish(keys []keyhub.KeyChange, events []keyhub.Event) {
	s.bus.Publish(changes.Commit{Keys: keys, Events: events})
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.pool.Ping(ctx)
}

// maxTxAttempts bounds how often inTx runs a transaction again after
// PostgreSQL aborted it to break a deadlock.
const maxTxAttempts = 3

// inTx runs fn in a transaction, committing when it returns nil. A
// transaction that PostgreSQL chose as the victim of a deadlock (40P01) is
// run again, up to maxTxAttempts times in all: key writes lock user and key
// rows in a fixed order, and the batched last-used writes (TouchKeys,
// TouchUsers) never wait for a row lock, but an operator's SQL locks rows
// in its own order, so a deadlock is rare but possible. fn must start from
// scratch each time it runs.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		var pgErr *pgconn.PgError
		if attempt == maxTxAttempts || !errors.As(err, &pgErr) || pgErr.Code != "40P01" {
			return err
		}
	}
}

// dbError maps database errors to domain errors in one place.
func dbError(err error, what string) error {
	if err == nil {
		return nil
	}
	var kerr *keyhub.Error
	if errors.As(err, &kerr) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return keyhub.Errorf(keyhub.CodeNotFound, "%s not found", what)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return &keyhub.Error{Code: keyhub.CodeKeyAlreadyExists, Message: what + " already exists", Err: err}
	}
	if Unreachable(err) {
		return keyhub.Unavailable(fmt.Errorf("%s: %w", what, err))
	}
	return keyhub.Internal(fmt.Errorf("%s: %w", what, err))
}

// Unreachable reports whether err means the database could not be reached
// or is going away, rather than that it refused the statement: the request
// may succeed when retried, so it is 503 UNAVAILABLE, never 500.
func Unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true // any failed connection attempt, whatever the server said
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", // admin shutdown, crash shutdown, cannot connect now
			"53300", // too many connections
			"3D000": // the database does not exist (yet, or any more)
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exception
	}
	var netErr net.Error
	return errors.As(err, &netErr) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// Store is the database side of the key lifecycle.
var _ keyhub.KeyService = (*Store)(nil)
