package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/dbgen"
)

// A key whose expiry falls after the database read the page but before
// the server answers is listed by ?status=active and must be answered as
// active: the filter and the status come from one clock, the database's.
// The test puts the expiry there deliberately: it holds a lock on api_keys
// so that the listing's statement starts (its now() is fixed) and waits,
// then sets the key's expiry to clock_timestamp(), which is after that
// now() and before anything the server does once the lock is released.
// The statement must already be prepared on every connection of the pool:
// a first prepare would wait on the lock in a transaction of its own, and
// the listing would then start after the expiry.
func TestListStatusUsesOneClock(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "clock@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "edge", "expires_in": 3600}).Want(t, http.StatusCreated, "").JSON(t, &key)

	ctx := context.Background()
	var held []*pgxpool.Conn
	for range env.Pool.Config().MaxConns {
		conn, err := env.Pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
		if _, err := dbgen.New().ListKeys(ctx, conn, dbgen.ListKeysParams{OwnerID: uuid.New(), MaxRows: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, conn := range held {
		conn.Release()
	}
	tx, err := env.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/v1/keys?status=active", nil)
		req.Header.Set("Authorization", "Bearer "+jwt)
		resp, err := env.Server.Client().Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&raw)
		answered <- answer{status: resp.StatusCode, body: raw, err: err}
	}()

	// The listing has started (its clock is read) once it waits on the lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := env.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%name: ListKeys%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listing never waited on the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := tx.Exec(ctx, "UPDATE api_keys SET expires_at = clock_timestamp() WHERE id = $1", key.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	got := <-answered
	if got.err != nil || got.status != http.StatusOK {
		t.Fatalf("listing: %d %v", got.status, got.err)
	}
	var page api.KeyList
	if err := json.Unmarshal(got.body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != key.ID {
		t.Fatalf("want the key listed as active as of the database's clock, got %s", got.body)
	}
	if page.Data[0].Status != "active" {
		t.Fatalf("?status=active answered a key with status %q", page.Data[0].Status)
	}
	// Read again, the key has expired: filtered out, and listed as expired.
	env.Get(t, "/v1/keys?status=active", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
	if len(page.Data) != 0 {
		t.Fatalf("an expired key is still listed as active: %+v", page.Data)
	}
	env.Get(t, "/v1/keys?status=expired", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0].Status != "expired" {
		t.Fatalf("want the key listed as expired, got %+v", page.Data)
	}
}
