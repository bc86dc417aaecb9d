package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// The invariants on keys (README, "Invariants"), each tested through the
// real API on a real database.

// setTier provisions the user of jwt and gives its owner tier.
func setTier(t *testing.T, env *apitest.Env, jwt, tier string) api.Me {
	t.Helper()
	var me api.Me
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if _, err := env.Pool.Exec(context.Background(), "UPDATE owners SET tier = $1 WHERE id = $2", tier, me.OwnerID); err != nil {
		t.Fatal(err)
	}
	return me
}

// changeBehindCachesBack runs sql as an operator would, but with triggers
// off for the transaction (session_replication_role = replica), so no
// change notice goes out: the caches of the running process keep what they
// knew, as they do while a notice is lost or not yet delivered.
func changeBehindCachesBack(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(context.Background(), "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(context.Background(), sql, args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func countKeys(t *testing.T, pool *pgxpool.Pool, ownerID uuid.UUID) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM api_keys WHERE owner_id = $1", ownerID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// §2: a key that is revoked, expired or gone in the database cannot write,
// even while a process's cache still lets it read.
func TestStaleCacheCannotWrite(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "stale@example.com")
	me := setTier(t, env, jwt, "pro")
	var writer, target api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "writer"}).Want(t, http.StatusCreated, "").JSON(t, &writer)
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "target", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "").JSON(t, &target)

	cases := []struct {
		name, sql, code string
	}{
		{"revoked", "UPDATE api_keys SET revoked_at = now() WHERE id = $1", "KEY_REVOKED"},
		{"expired", "UPDATE api_keys SET expires_at = created_at + interval '1 microsecond' WHERE id = $1", "KEY_EXPIRED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var actor api.CreatedKey
			env.Post(t, "/v1/keys", jwt, map[string]any{"name": tc.name}).Want(t, http.StatusCreated, "").JSON(t, &actor)
			env.Get(t, "/v1/me", actor.Secret).Want(t, http.StatusOK, "") // now cached
			changeBehindCachesBack(t, env.Pool, tc.sql, actor.ID)
			// The stale cache still lets a read through: what makes this test
			// one of writes, not of the cache.
			env.Get(t, "/v1/me", actor.Secret).Want(t, http.StatusOK, "")
			before := countKeys(t, env.Pool, me.OwnerID)
			env.Post(t, "/v1/keys", actor.Secret, map[string]any{"name": "minted"}).Want(t, http.StatusUnauthorized, tc.code)
			env.Post(t, "/v1/keys/"+target.ID.String()+"/refresh", actor.Secret, nil).Want(t, http.StatusUnauthorized, tc.code)
			env.Delete(t, "/v1/keys/"+target.ID.String(), actor.Secret).Want(t, http.StatusUnauthorized, tc.code)
			env.Post(t, "/api/v1/auth/api-keys/refresh", actor.Secret, nil).Want(t, http.StatusUnauthorized, tc.code)
			if after := countKeys(t, env.Pool, me.OwnerID); after != before {
				t.Fatalf("a %s key created %d key(s)", tc.name, after-before)
			}
			var got api.Key
			env.Get(t, "/v1/keys/"+target.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
			if got.Status != "active" || got.ReplacedBy != nil {
				t.Fatalf("a %s key changed the target: %+v", tc.name, got)
			}
		})
	}

	t.Run("user gone", func(t *testing.T) {
		gone := env.Token(t, "gone@example.com")
		var goneMe api.Me
		env.Get(t, "/v1/me", gone).Want(t, http.StatusOK, "").JSON(t, &goneMe) // provisioned and cached
		changeBehindCachesBack(t, env.Pool, "DELETE FROM users WHERE id = $1", goneMe.UserID)
		env.Post(t, "/v1/keys", gone, map[string]any{"name": "orphan"}).Want(t, http.StatusUnauthorized, "INVALID_TOKEN")
		if n := countKeys(t, env.Pool, goneMe.OwnerID); n != 0 {
			t.Fatalf("a deleted user created %d key(s)", n)
		}
	})
	t.Run("user moved to another owner", func(t *testing.T) {
		moved := env.Token(t, "moved@example.com")
		var movedMe api.Me
		env.Get(t, "/v1/me", moved).Want(t, http.StatusOK, "").JSON(t, &movedMe)
		var newOwner uuid.UUID
		if err := env.Pool.QueryRow(context.Background(), "INSERT INTO owners (name) VALUES ('elsewhere') RETURNING id").Scan(&newOwner); err != nil {
			t.Fatal(err)
		}
		changeBehindCachesBack(t, env.Pool, "UPDATE users SET default_owner_id = $2 WHERE id = $1", movedMe.UserID, newOwner)
		env.Post(t, "/v1/keys", moved, map[string]any{"name": "astray"}).Want(t, http.StatusUnauthorized, "INVALID_TOKEN")
		if n := countKeys(t, env.Pool, movedMe.OwnerID) + countKeys(t, env.Pool, newOwner); n != 0 {
			t.Fatalf("a moved user created %d key(s)", n)
		}
	})
	// The writer, untouched, still writes.
	env.Post(t, "/v1/keys", writer.Secret, map[string]any{"name": "fine"}).Want(t, http.StatusCreated, "")
}

// invariantViolations checks the tier-limit invariant on the owner's keys
// in one snapshot: at most limit usable keys (working and not replaced),
// and every working predecessor (working, replaced) is the predecessor of
// a usable key. A key has at most one predecessor by a unique index.
func invariantViolations(ctx context.Context, pool *pgxpool.Pool, ownerID uuid.UUID, limit int) (string, error) {
	var usable, orphans int
	err := pool.QueryRow(ctx, `
		WITH working AS (
			SELECT id, replaced_by FROM api_keys
			WHERE owner_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
		SELECT (SELECT count(*) FROM working WHERE replaced_by IS NULL),
		       (SELECT count(*) FROM working p
		        WHERE p.replaced_by IS NOT NULL
		          AND NOT EXISTS (SELECT 1 FROM working s WHERE s.id = p.replaced_by AND s.replaced_by IS NULL))`,
		ownerID).Scan(&usable, &orphans)
	switch {
	case err != nil:
		return "", err
	case usable > limit:
		return fmt.Sprintf("%d usable keys, over the limit of %d", usable, limit), nil
	case orphans > 0:
		return fmt.Sprintf("%d working predecessor(s) without a usable successor", orphans), nil
	}
	return "", nil
}

// auditEvent is the part of an event these tests read.
type auditEvent struct {
	KeyID       uuid.UUID       `json:"key_id"`
	Type        string          `json:"type"`
	ActorUserID *uuid.UUID      `json:"actor_user_id"`
	ActorKeyID  *uuid.UUID      `json:"actor_key_id"`
	Details     json.RawMessage `json:"details"`
}

func auditEvents(t *testing.T, env *apitest.Env, path, cred string) []auditEvent {
	t.Helper()
	var page struct{ Data []auditEvent }
	env.Get(t, path, cred).Want(t, http.StatusOK, "").JSON(t, &page)
	return page.Data
}

func wantInvariant(t *testing.T, env *apitest.Env, ownerID uuid.UUID, limit int) {
	t.Helper()
	v, err := invariantViolations(context.Background(), env.Pool, ownerID, limit)
	if err != nil {
		t.Fatal(err)
	}
	if v != "" {
		t.Fatal(v)
	}
}

// The report: a free user refreshed its newest key with a grace
// period five times and held six working keys. Each refresh now ends the
// grace of the key's own predecessor.
func TestChainedRefreshKeepsTierLimit(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "chain@example.com")
	me := setTier(t, env, jwt, "free")
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &k)
	first := k
	var prev api.CreatedKey
	for i := 0; i < 5; i++ {
		var out api.Refreshed
		env.Post(t, "/v1/keys/"+k.ID.String()+"/refresh", k.Secret, map[string]any{"grace_period": 86400}).Want(t, http.StatusCreated, "").JSON(t, &out)
		wantInvariant(t, env, me.OwnerID, 1)
		env.Get(t, "/v1/me", k.Secret).Want(t, http.StatusOK, "") // in its grace period
		if i > 0 {
			env.Get(t, "/v1/me", prev.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
		}
		prev, k = k, out.NewKey
	}
	var working int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM api_keys
		WHERE owner_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, me.OwnerID).Scan(&working); err != nil {
		t.Fatal(err)
	}
	if working != 2 {
		t.Fatalf("%d working keys after five chained refreshes, want 2 (the newest and its predecessor)", working)
	}
	// The ended grace is in the audit trail, with its reason and actor.
	events := auditEvents(t, env, "/v1/keys/"+first.ID.String()+"/events?type=revoked", jwt)
	if len(events) != 1 {
		t.Fatalf("revoked events of the first key: %d", len(events))
	}
	var details struct{ Reason string }
	if err := json.Unmarshal(events[0].Details, &details); err != nil || details.Reason != "successor_refreshed" {
		t.Fatalf("details %s (%v)", events[0].Details, err)
	}
	if events[0].ActorKeyID == nil {
		t.Fatal("the ended grace does not name the key that acted")
	}

	// Revoking the newest key ends its predecessor's grace too.
	env.Delete(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/me", prev.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
	wantInvariant(t, env, me.OwnerID, 1)
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "fresh"}).Want(t, http.StatusCreated, "")
	wantInvariant(t, env, me.OwnerID, 1)
}

// Concurrent creates, refreshes (with grace) and revokes by one user
// never break the tier-limit invariant, checked by a sampler while they
// run and once after.
func TestConcurrentWritesKeepTierLimit(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"KEY_CREATE_BURST": "100"}) // many creates at once: the tier's limit is under test, not the creation budget
	jwt := env.Token(t, "busy@example.com")
	const limit = 5 // pro
	me := setTier(t, env, jwt, "pro")

	// The keys the workers know to be usable: a refresh replaces its key
	// here and a revoke removes it, so most refreshes chain (the case that
	// broke the limit) rather than hit KEY_ALREADY_REFRESHED.
	var mu sync.Mutex
	live := map[uuid.UUID]bool{}
	pick := func(r *rand.Rand) (uuid.UUID, bool) {
		mu.Lock()
		defer mu.Unlock()
		n := r.IntN(len(live) + 1)
		for id := range live {
			if n--; n < 0 {
				return id, true
			}
		}
		return uuid.UUID{}, false
	}
	replace := func(old, new uuid.UUID) {
		mu.Lock()
		defer mu.Unlock()
		delete(live, old)
		if new != uuid.Nil {
			live[new] = true
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	var samples atomic.Int64
	var violation atomic.Value
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			v, err := invariantViolations(ctx, env.Pool, me.OwnerID, limit)
			if err == nil && v != "" {
				violation.CompareAndSwap(nil, v)
			}
			samples.Add(1)
		}
	}()

	var wg sync.WaitGroup
	var created, refreshed atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 8))
			for i := 0; i < 25; i++ {
				id, ok := pick(r)
				switch op := r.IntN(10); {
				case !ok || op < 3:
					res := env.Post(t, "/v1/keys", jwt, map[string]any{"name": "c"})
					switch {
					case res.Status == http.StatusCreated:
						var k api.CreatedKey
						res.JSON(t, &k)
						replace(uuid.Nil, k.ID)
						created.Add(1)
					case res.ErrorCode() != "KEY_LIMIT_REACHED":
						t.Errorf("create: %d %s", res.Status, res.Body)
					}
				case op < 8:
					res := env.Post(t, "/v1/keys/"+id.String()+"/refresh", jwt, map[string]any{"grace_period": 3600})
					switch {
					case res.Status == http.StatusCreated:
						var out api.Refreshed
						res.JSON(t, &out)
						replace(id, out.NewKey.ID)
						refreshed.Add(1)
					case res.ErrorCode() == "KEY_ALREADY_REFRESHED" || res.ErrorCode() == "KEY_NOT_ACTIVE":
						replace(id, uuid.Nil)
					default:
						t.Errorf("refresh: %d %s", res.Status, res.Body)
					}
				default:
					if res := env.Delete(t, "/v1/keys/"+id.String(), jwt); res.Status != http.StatusOK {
						t.Errorf("revoke: %d %s", res.Status, res.Body)
					}
					replace(id, uuid.Nil)
				}
			}
		}()
	}
	wg.Wait()
	stop()
	<-sampled
	if v := violation.Load(); v != nil {
		t.Fatalf("invariant broken while writes ran: %s", v)
	}
	wantInvariant(t, env, me.OwnerID, limit)
	t.Logf("%d creates, %d refreshes, %d samples", created.Load(), refreshed.Load(), samples.Load())
	if created.Load() < limit || refreshed.Load() == 0 {
		t.Fatalf("too few writes succeeded to test anything: %d creates, %d refreshes", created.Load(), refreshed.Load())
	}
}

// A key made by a key never outlives it: create and refresh cap the new
// key's expiry at the acting key's (README, "Invariants").
func TestKeyLifetimeNeverOutlivesCreator(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "short@example.com")
	setTier(t, env, jwt, "team")
	var short, permanent api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "short", "expires_in": 600}).Want(t, http.StatusCreated, "").JSON(t, &short)
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "permanent"}).Want(t, http.StatusCreated, "").JSON(t, &permanent)
	if short.ExpiresAt == nil || permanent.ExpiresAt != nil {
		t.Fatalf("setup: %v %v", short.ExpiresAt, permanent.ExpiresAt)
	}
	limit := *short.ExpiresAt

	for _, body := range []map[string]any{
		{"name": "no expiry"},
		{"name": "ten years", "expires_in": 10 * 365 * 24 * 3600},
		{"name": "later", "expires_at": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)},
	} {
		var child api.CreatedKey
		env.Post(t, "/v1/keys", short.Secret, body).Want(t, http.StatusCreated, "").JSON(t, &child)
		if child.ExpiresAt == nil || !child.ExpiresAt.Equal(limit) {
			t.Fatalf("%s: child expires %v, creator %v", body["name"], child.ExpiresAt, limit)
		}
	}
	// An earlier expiry than the creator's is kept.
	var sooner api.CreatedKey
	env.Post(t, "/v1/keys", short.Secret, map[string]any{"name": "sooner", "expires_in": 120}).Want(t, http.StatusCreated, "").JSON(t, &sooner)
	if sooner.ExpiresAt == nil || !sooner.ExpiresAt.Before(limit) {
		t.Fatalf("sooner: %v", sooner.ExpiresAt)
	}

	// Refresh keeps the rule: the short key refreshing a permanent key
	// gets a replacement that dies with it, and the old key's grace ends
	// no later than its replacement.
	var out api.Refreshed
	env.Post(t, "/v1/keys/"+permanent.ID.String()+"/refresh", short.Secret, map[string]any{"grace_period": 86400}).Want(t, http.StatusCreated, "").JSON(t, &out)
	if out.NewKey.ExpiresAt == nil || !out.NewKey.ExpiresAt.Equal(limit) {
		t.Fatalf("replacement expires %v, acting key %v", out.NewKey.ExpiresAt, limit)
	}
	if out.OldKey.ExpiresAt == nil || out.OldKey.ExpiresAt.After(*out.NewKey.ExpiresAt) {
		t.Fatalf("old key's grace ends %v, after its replacement %v", out.OldKey.ExpiresAt, out.NewKey.ExpiresAt)
	}
	// A key refreshing itself cannot extend its life.
	env.Post(t, "/v1/keys/"+short.ID.String()+"/refresh", short.Secret, nil).Want(t, http.StatusCreated, "").JSON(t, &out)
	if out.NewKey.ExpiresAt == nil || out.NewKey.ExpiresAt.After(limit) {
		t.Fatalf("self-refresh expires %v, after %v", out.NewKey.ExpiresAt, limit)
	}
	// The bound is the acting key's expiry in the database, not in a cache:
	// an expiry moved earlier behind the caches' back still caps.
	var cached api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "cached"}).Want(t, http.StatusCreated, "").JSON(t, &cached)
	env.Get(t, "/v1/me", cached.Secret).Want(t, http.StatusOK, "")
	changeBehindCachesBack(t, env.Pool, "UPDATE api_keys SET expires_at = now() + interval '1 hour' WHERE id = $1", cached.ID)
	var dbExpiry time.Time
	if err := env.Pool.QueryRow(context.Background(), "SELECT expires_at FROM api_keys WHERE id = $1", cached.ID).Scan(&dbExpiry); err != nil {
		t.Fatal(err)
	}
	var fromCached api.CreatedKey
	env.Post(t, "/v1/keys", cached.Secret, map[string]any{"name": "from cached"}).Want(t, http.StatusCreated, "").JSON(t, &fromCached)
	if fromCached.ExpiresAt == nil || !fromCached.ExpiresAt.Equal(dbExpiry) {
		t.Fatalf("made by a key expiring %v: expires %v", dbExpiry, fromCached.ExpiresAt)
	}

	// A dashboard user is not bound: its refresh keeps the key's lifetime.
	env.Post(t, "/v1/keys/"+out.NewKey.ID.String()+"/refresh", jwt, nil).Want(t, http.StatusCreated, "").JSON(t, &out)
	if out.NewKey.ExpiresAt == nil || !out.NewKey.ExpiresAt.After(limit) {
		t.Fatalf("a user's refresh expires %v, not after %v", out.NewKey.ExpiresAt, limit)
	}
}

// A key may refresh or revoke only keys whose scopes it holds.
func TestRefreshAndRevokeNeedTheTargetsScopes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "scoped@example.com")
	setTier(t, env, jwt, "pro")
	var admin, writer, reader api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "admin"}).Want(t, http.StatusCreated, "").JSON(t, &admin)
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "writer", "scopes": []string{"keys:read", "keys:write"}}).Want(t, http.StatusCreated, "").JSON(t, &writer)
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "reader", "scopes": []string{"keys:read"}}).Want(t, http.StatusCreated, "").JSON(t, &reader)

	env.Delete(t, "/v1/keys/"+admin.ID.String(), writer.Secret).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	env.Post(t, "/v1/keys/"+admin.ID.String()+"/refresh", writer.Secret, nil).Want(t, http.StatusForbidden, "INSUFFICIENT_SCOPE")
	var got api.Key
	env.Get(t, "/v1/keys/"+admin.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.Status != "active" || got.ReplacedBy != nil {
		t.Fatalf("admin key changed: %+v", got)
	}
	// A subset is fine, and so is an equal set (the writer itself).
	env.Post(t, "/v1/keys/"+reader.ID.String()+"/refresh", writer.Secret, nil).Want(t, http.StatusCreated, "")
	env.Delete(t, "/v1/keys/"+writer.ID.String(), writer.Secret).Want(t, http.StatusOK, "")
	// The admin key may end anything of its owner.
	env.Delete(t, "/v1/keys/"+reader.ID.String(), admin.Secret).Want(t, http.StatusOK, "")
}

// Every event names the acting user and, when a key acted, the key.
func TestEventsRecordTheActingKey(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "audit@example.com")
	me := setTier(t, env, jwt, "pro")
	var parent api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "parent"}).Want(t, http.StatusCreated, "").JSON(t, &parent)
	var child api.CreatedKey
	env.Post(t, "/v1/keys", parent.Secret, map[string]any{"name": "child"}).Want(t, http.StatusCreated, "").JSON(t, &child)
	var out api.Refreshed
	env.Post(t, "/v1/keys/"+child.ID.String()+"/refresh", parent.Secret, nil).Want(t, http.StatusCreated, "").JSON(t, &out)
	env.Delete(t, "/v1/keys/"+out.NewKey.ID.String(), parent.Secret).Want(t, http.StatusOK, "")

	events := auditEvents(t, env, "/v1/events", jwt)
	if len(events) != 5 {
		t.Fatalf("%d events, want 5", len(events))
	}
	for _, e := range events {
		if e.ActorUserID == nil || *e.ActorUserID != me.UserID {
			t.Errorf("%s event of %s: actor user %v", e.Type, e.KeyID, e.ActorUserID)
		}
		wantKey := &parent.ID
		if e.KeyID == parent.ID { // created by the dashboard user
			wantKey = nil
		}
		if (e.ActorKeyID == nil) != (wantKey == nil) || (wantKey != nil && *e.ActorKeyID != *wantKey) {
			t.Errorf("%s event of %s: actor key %v, want %v", e.Type, e.KeyID, e.ActorKeyID, wantKey)
		}
	}
}

// A key revoked while it is writing: every write it made is in the audit
// trail before its revocation, none after, and every answer is a success
// or KEY_REVOKED.
func TestRevokeRacesTheRevokedKeysWrites(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"KEY_CREATE_BURST": "1000"}) // eight loops create children until the revocation
	jwt := env.Token(t, "race@example.com")
	setTier(t, env, jwt, "enterprise")
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "busy"}).Want(t, http.StatusCreated, "").JSON(t, &k)
	env.Get(t, "/v1/me", k.Secret).Want(t, http.StatusOK, "") // cached

	var created atomic.Int64
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				res := env.Post(t, "/v1/keys", k.Secret, map[string]any{"name": "child"})
				switch {
				case res.Status == http.StatusCreated:
					if created.Add(1) >= 4 {
						once.Do(func() { close(started) })
					}
				case res.ErrorCode() == "KEY_REVOKED":
					return
				default:
					t.Errorf("create: %d %s", res.Status, res.Body)
					return
				}
			}
		}()
	}
	<-started
	env.Delete(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "")
	wg.Wait()

	var revokedAt, lastWrite int64
	var writes int
	err := env.Pool.QueryRow(context.Background(), `
		SELECT (SELECT id FROM api_key_events WHERE api_key_id = $1 AND event_type = 'revoked'),
		       (SELECT coalesce(max(id), 0) FROM api_key_events WHERE actor_key_id = $1 AND event_type = 'created'),
		       (SELECT count(*) FROM api_key_events WHERE actor_key_id = $1 AND event_type = 'created')`, k.ID).
		Scan(&revokedAt, &lastWrite, &writes)
	if err != nil {
		t.Fatal(err)
	}
	if lastWrite > revokedAt {
		t.Fatalf("the key wrote after its revocation (event %d > %d)", lastWrite, revokedAt)
	}
	if writes != int(created.Load()) {
		t.Fatalf("%d answers 201, %d created events", created.Load(), writes)
	}
}

// The report: with chained refreshes a free user held a socket per
// working key. A predecessor whose grace ends closes its sockets at once
// (4001), like any revoked key.
func TestEndedGraceClosesThePredecessorsSockets(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "sockets@example.com")
	setTier(t, env, jwt, "free")
	var first api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "daemon"}).Want(t, http.StatusCreated, "").JSON(t, &first)
	firstConn := dialWithKey(t, env, first.Secret)
	var second, third api.Refreshed
	env.Post(t, "/v1/keys/"+first.ID.String()+"/refresh", first.Secret, map[string]any{"grace_period": 3600}).Want(t, http.StatusCreated, "").JSON(t, &second)
	dialWithKey(t, env, second.NewKey.Secret)
	env.Post(t, "/v1/keys/"+second.NewKey.ID.String()+"/refresh", second.NewKey.Secret, map[string]any{"grace_period": 3600}).Want(t, http.StatusCreated, "").JSON(t, &third)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := firstConn.Read(ctx); err != nil {
			if status := websocket.CloseStatus(err); status != 4001 {
				t.Fatalf("the first key's socket ended with %d (%v), want 4001", status, err)
			}
			return
		}
	}
}

func dialWithKey(t *testing.T, env *apitest.Env, secret string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(env.URL, "http")+"/v1/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + secret}},
		HTTPClient: env.Server.Client(),
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}
