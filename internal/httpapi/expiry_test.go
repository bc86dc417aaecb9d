package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

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
	deadline := time.Now().Add(5 * time.Second)
	for len(page.Data) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no expired event within 5s")
		}
		time.Sleep(50 * time.Millisecond)
		env.Get(t, "/v1/events?type=expired", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
	}
	time.Sleep(300 * time.Millisecond) // a few more sweeps
	env.Get(t, "/v1/events?type=expired", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0].KeyID != expiring.ID || page.Data[0].ActorUserID != nil {
		t.Fatalf("want one expired event of %s with no actor, got %+v", expiring.ID, page.Data)
	}
	env.Get(t, "/v1/events?type=used", jwt).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
}
