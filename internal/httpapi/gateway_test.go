package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/keyhub/keyhub/internal/gateway"
)

// TestKeyhubPathsAreReserved walks the router: every path keyhub serves
// itself is reserved, so no GATEWAY_ROUTES prefix can capture it (and the
// credentials sent to it).
func TestKeyhubPathsAreReserved(t *testing.T) {
	t.Parallel()
	env := devEnv(t) // dev mode mounts the most routes
	mux := env.App.Handler.(chi.Routes)
	err := chi.Walk(mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path := strings.NewReplacer("{id}", "x", "{file}", "x", "*", "x").Replace(route)
		if !gateway.Reserved(path) {
			t.Errorf("%s %s is not in gateway's reserved paths: a route could shadow it", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
