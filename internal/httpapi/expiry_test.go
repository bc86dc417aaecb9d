package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// A key whose expiry passes gets one `expired` event, written by the
// sweeper with no actor; a revoked key gets none. (The filter used to
// accept `expired` and `used`, which nothing wrote.)
func TestExpiredKeysGetAnEvent(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"EXPIRY_SWEEP_INTERVAL": "100ms"})
	jwt := env.Token(t, "exp@example.com")
	var expiring, revoked api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "gone", "expires_in": 60}).Want(t, http.StatusCreated, "").JSON(t, &revoked)
	env.Delete(t, "/v1/keys/"+revoked.ID.String(), jwt).Want(t, http.StatusOK, "")
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "short", "expires_in": 60}).Want(t, http.StatusCreated, "").JSON(t, &expiring)
	// Both expired an hour ago.
	if _, err := env.Pool.Exec(context.Background(),
		"UPDATE api_keys SET created_at = now() - interval '2 hours', revoked_at = CASE WHEN revoked_at IS NULL THEN NULL ELSE now() - interval '90 minutes' END, expires_at = now() - interval '1 hour'"); err != nil {
		t.Fatal(err)
	}
	var page struct {
		Data []api.Event `json:"data"`
	}
	// waitExpired waits for the sweeper's event of key: a sweep writes all
	// it finds in one transaction.
	waitExpired := func(key api.CreatedKey) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			env.Get(t, "/v1/events?type=expired", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
			for _, e := range page.Data {
				if e.KeyID == key.ID {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no expired event of %s within 30s: %+v", key.Name, page.Data)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitExpired(expiring)
	// More sweeps run: proven by one that records a key expiring now. Had
	// any sweep written a second event of the first key, or one of the
	// revoked key, it is in the listing by then.
	var later api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "later", "expires_in": 60}).Want(t, http.StatusCreated, "").JSON(t, &later)
	if _, err := env.Pool.Exec(context.Background(), "UPDATE api_keys SET expires_at = now() WHERE id = $1", later.ID); err != nil {
		t.Fatal(err)
	}
	waitExpired(later)
	events := map[uuid.UUID]int{}
	for _, e := range page.Data {
		events[e.KeyID]++
		if e.ActorUserID != nil || e.ActorKeyID != nil {
			t.Errorf("expired event with an actor: %+v", e)
		}
	}
	if len(page.Data) != 2 || events[expiring.ID] != 1 || events[later.ID] != 1 {
		t.Fatalf("want one expired event each of %s and %s (none of the revoked %s), got %+v", expiring.ID, later.ID, revoked.ID, page.Data)
	}
	env.Get(t, "/v1/events?type=used", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
}
