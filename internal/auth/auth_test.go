package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/changes"
	"github.com/keyhub/keyhub/internal/devissuer"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// countingStore counts the database lookups the cache makes.
type countingStore struct {
	*postgres.Store
	lookups atomic.Int64
}

func (c *countingStore) KeyForAuth(ctx context.Context, keyHashHex string) (keyhub.AuthKey, error) {
	c.lookups.Add(1)
	return c.Store.KeyForAuth(ctx, keyHashHex)
}

func newKey(t testing.TB, store *postgres.Store, email string) (keyhub.NewKey, keyhub.Principal) {
	t.Helper()
	p, _, err := store.ProvisionUser(context.Background(), uuid.New(), email)
	if err != nil {
		t.Fatal(err)
	}
	k, err := store.CreateKey(context.Background(), &p, keyhub.CreateKeyInput{Name: "k", Scopes: keyhub.BuiltinScopes}, keyhub.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

func TestCacheHitAvoidsDatabase(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	bus := changes.New()
	store := &countingStore{Store: postgres.NewStore(pool, bus)}
	cache := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Minute, Size: 100, NegativeTTL: time.Minute, NegativeSize: 10}, nil)
	bus.Subscribe(auth.New(auth.Config{Keys: cache}))
	k, p := newKey(t, store.Store, "c@example.com")
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		got, err := cache.Verify(ctx, k.Secret, keyhub.RequestMeta{})
		if err != nil || got.KeyID != k.Key.ID {
			t.Fatalf("verify: %v %v", got, err)
		}
	}
	if n := store.lookups.Load(); n != 1 {
		t.Fatalf("100 verifications made %d database lookups, want 1", n)
	}
	// Malformed keys and bad checksums never reach the database.
	bad := []byte(k.Secret)
	bad[20] ^= 1
	for _, key := range []string{string(bad), k.Secret[:45], "mk_short"} {
		if _, err := cache.Verify(ctx, key, keyhub.RequestMeta{}); keyhub.ErrorCode(err) != keyhub.CodeInvalidAPIKey {
			t.Fatalf("%q: %v", key, err)
		}
	}
	if n := store.lookups.Load(); n != 1 {
		t.Fatalf("malformed keys reached the database: %d lookups", n)
	}
	// Revoking invalidates at once.
	if _, _, err := store.RevokeKey(ctx, &p, k.Key.ID, keyhub.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Verify(ctx, k.Secret, keyhub.RequestMeta{}); keyhub.ErrorCode(err) != keyhub.CodeKeyRevoked {
		t.Fatalf("after revoke: %v", err)
	}
}

func TestNegativeCacheIsBounded(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := &countingStore{Store: postgres.NewStore(pool, nil)}
	cache := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Minute, Size: 100, NegativeTTL: time.Minute, NegativeSize: 50}, nil)
	ctx := context.Background()
	unknown := make([]string, 200)
	for i := range unknown {
		key, err := apikey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		unknown[i] = key
		if _, err := cache.Verify(ctx, key, keyhub.RequestMeta{}); keyhub.ErrorCode(err) != keyhub.CodeUnknownAPIKey {
			t.Fatalf("unknown key: %v", err)
		}
	}
	if _, neg := cache.Len(); neg != 50 {
		t.Fatalf("negative cache holds %d, want its bound 50", neg)
	}
	before := store.lookups.Load()
	for _, key := range unknown[150:] { // the most recent 50 are remembered
		cache.Verify(ctx, key, keyhub.RequestMeta{})
	}
	if n := store.lookups.Load() - before; n != 0 {
		t.Fatalf("remembered unknown keys made %d lookups", n)
	}
}

func TestExpiryCheckedOnCachedKey(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	store := &countingStore{Store: postgres.NewStore(pool, nil)}
	var clock atomic.Pointer[time.Time]
	now := time.Now()
	clock.Store(&now)
	cache := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Hour, Size: 10, NegativeTTL: time.Minute, NegativeSize: 10,
		Now: func() time.Time { return *clock.Load() }}, nil)
	p, _, err := store.ProvisionUser(context.Background(), uuid.New(), "e@example.com")
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour)
	k, err := store.CreateKey(context.Background(), &p, keyhub.CreateKeyInput{Name: "short", Scopes: keyhub.BuiltinScopes, ExpiresAt: &exp}, keyhub.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	exp = *k.Key.ExpiresAt // as stored: to the microsecond
	for _, at := range []time.Time{now, exp.Add(-time.Nanosecond)} {
		clock.Store(&at)
		if _, err := cache.Verify(context.Background(), k.Secret, keyhub.RequestMeta{}); err != nil {
			t.Fatalf("at %v before expiry: %v", exp.Sub(at), err)
		}
	}
	clock.Store(&exp)
	if _, err := cache.Verify(context.Background(), k.Secret, keyhub.RequestMeta{}); keyhub.ErrorCode(err) != keyhub.CodeKeyExpired {
		t.Fatalf("at expiry: %v", err)
	}
	if n := store.lookups.Load(); n != 1 {
		t.Fatalf("%d database lookups: the expiry must be found on the cached key", n)
	}
}

// 50 concurrent first requests of one new user make one user and one owner.
func TestProvisioningIsRaceFree(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	tok := env.Token(t, "new@example.com")
	var wg sync.WaitGroup
	failures := atomic.Int64{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, env.URL+"/v1/me", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := env.Server.Client().Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				failures.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	var users, owners int
	if err := env.Pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM owners)").Scan(&users, &owners); err != nil {
		t.Fatal(err)
	}
	if failures.Load() != 0 || users != 1 || owners != 1 {
		t.Fatalf("failures %d, users %d, owners %d", failures.Load(), users, owners)
	}
	var id uuid.UUID
	if err := env.Pool.QueryRow(context.Background(), "SELECT id FROM users").Scan(&id); err != nil || id != devissuer.UserIDForEmail("new@example.com") {
		t.Fatalf("user id %s %v", id, err)
	}
}

func TestCredentialExtraction(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	tok := env.Token(t, "x@example.com")
	var created struct {
		Key string `json:"key"`
	}
	env.Post(t, "/v1/keys", tok, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &created)
	key := created.Key
	bad := []byte(key)
	bad[10] = 'A' + (bad[10]-'A'+1)%26
	if bad[10] == key[10] {
		bad[10] = 'b'
	}
	other, _ := apikey.Generate()
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		code    string
	}{
		{"none", nil, 401, "MISSING_CREDENTIALS"},
		{"basic scheme", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, "INVALID_TOKEN"},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, 401, "INVALID_TOKEN"},
		{"garbage token", map[string]string{"Authorization": "Bearer not.a.jwt"}, 401, "INVALID_TOKEN"},
		{"key in bearer", map[string]string{"Authorization": "Bearer " + key}, 200, ""},
		{"lower-case bearer", map[string]string{"Authorization": "bearer " + key}, 200, ""},
		{"same key twice", map[string]string{"Authorization": "Bearer " + key, "X-API-Key": key}, 200, ""},
		{"key and token", map[string]string{"Authorization": "Bearer " + tok, "X-API-Key": key}, 400, "AMBIGUOUS_CREDENTIALS"},
		{"two keys", map[string]string{"X-API-Key": key, "X-Makima-Api-Key": other}, 400, "AMBIGUOUS_CREDENTIALS"},
		{"token in X-API-Key", map[string]string{"X-API-Key": tok}, 401, "INVALID_API_KEY"},
		{"bad checksum", map[string]string{"X-API-Key": string(bad)}, 401, "INVALID_API_KEY"},
		{"unknown key", map[string]string{"X-API-Key": other}, 401, "UNKNOWN_API_KEY"},
		{"truncated key", map[string]string{"X-API-Key": key[:30]}, 401, "INVALID_API_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Headers: tc.headers}).Want(t, tc.status, tc.code)
			for _, secret := range []string{key, tok, other} {
				if len(r.Body) > 0 && contains(r.Body, secret) && tc.status != 200 {
					t.Fatal("the response echoes a credential")
				}
			}
		})
	}
	// Invalid credentials are refused even on routes that do not need one.
	env.Do(t, apitest.Request{Method: http.MethodGet, Path: "/api/v1/auth/api-keys", Headers: map[string]string{"X-API-Key": other}}).Want(t, 401, "UNKNOWN_API_KEY")
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

func TestLastUsedIsBatched(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"LAST_USED_FLUSH_INTERVAL": "1h"})
	tok := env.Token(t, "lu@example.com")
	var created struct {
		ID  uuid.UUID `json:"id"`
		Key string    `json:"key"`
	}
	env.Post(t, "/v1/keys", tok, map[string]any{"name": "k"}).Want(t, http.StatusCreated, "").JSON(t, &created)
	for i := 0; i < 20; i++ {
		env.Get(t, "/v1/me", created.Key).Want(t, http.StatusOK, "")
	}
	var lastUsed *time.Time
	q := "SELECT last_used_at FROM api_keys WHERE id = $1"
	if err := env.Pool.QueryRow(context.Background(), q, created.ID).Scan(&lastUsed); err != nil || lastUsed != nil {
		t.Fatalf("written per request: %v %v", lastUsed, err)
	}
	if err := env.App.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := env.Pool.QueryRow(context.Background(), q, created.ID).Scan(&lastUsed); err != nil || lastUsed == nil || time.Since(*lastUsed) > time.Minute {
		t.Fatalf("after flush: %v %v", lastUsed, err)
	}
}

// A failed flush keeps its timestamps and writes them on the next flush;
// so does a flush whose writer skipped a row another process held.
func TestToucherRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var written sync.Map
	write := func(ctx context.Context, ids []uuid.UUID, at []time.Time, from []keyhub.RequestMeta) ([]uuid.UUID, error) {
		switch calls.Add(1) {
		case 1:
			return nil, fmt.Errorf("database down")
		case 2:
			return ids, nil // every row held by another transaction
		}
		for i, id := range ids {
			written.Store(id, touch{at[i], from[i]})
		}
		return nil, nil
	}
	tr := auth.NewToucher("test", write, time.Hour, discardLogger())
	id := uuid.New()
	usedAt := time.Now()
	usedFrom := keyhub.RequestMeta{IP: netip.MustParseAddr("203.0.113.9"), UserAgent: "daemon/1.0"}
	tr.MarkFrom(id, usedAt, usedFrom)
	if err := tr.Flush(context.Background()); err == nil {
		t.Fatal("first flush should fail")
	}
	for flush := 2; flush <= 3; flush++ {
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatalf("flush %d: %v", flush, err)
		}
	}
	if got, ok := written.Load(id); !ok || !got.(touch).at.Equal(usedAt) || got.(touch).from != usedFrom {
		t.Fatalf("mark lost after a failed and a skipping flush: %v %v", got, ok)
	}
}

// touch is one use as a TouchWriter received it.
type touch struct {
	at   time.Time
	from keyhub.RequestMeta
}

// TestInvalidationDuringLoadIsNotLost: a revoke that commits while a
// lookup of the same key is between its database read and its insert must
// not leave the key cached as active (it used to, for the whole TTL).
func TestInvalidationDuringLoadIsNotLost(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewDB(t)
	bus := changes.New()
	store := postgres.NewStore(pool, bus)
	cache := auth.NewApiKeyCache(store, auth.KeyCacheConfig{TTL: time.Hour, Size: 100, NegativeTTL: time.Minute, NegativeSize: 10}, nil)
	bus.Subscribe(auth.New(auth.Config{Keys: cache}))
	k, p := newKey(t, store, "race@example.com")
	ctx := context.Background()
	var once sync.Once
	auth.SetBeforeAdd(cache, func() {
		once.Do(func() {
			if _, _, err := store.RevokeKey(ctx, &p, k.Key.ID, keyhub.RequestMeta{}); err != nil {
				t.Error(err)
			}
		})
	})
	// This lookup read the key before the revoke committed: it may answer
	// with what it read, but must not keep it.
	if _, err := cache.Verify(ctx, k.Secret, keyhub.RequestMeta{}); err != nil {
		t.Fatalf("first verify: %v", err)
	}
	if _, err := cache.Verify(ctx, k.Secret, keyhub.RequestMeta{}); keyhub.ErrorCode(err) != keyhub.CodeKeyRevoked {
		t.Fatalf("after the revoke: %v, want KEY_REVOKED", err)
	}
}
