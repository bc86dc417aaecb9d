package httpapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/app"
)

type jwks struct {
	Keys []struct {
		KTY, CRV, KID, ALG, USE, X, Y, D string
	} `json:"keys"`
}

func getJWKS(t *testing.T, env *apitest.Env) jwks {
	t.Helper()
	var set jwks
	res := env.Get(t, "/.well-known/jwks.json", "").Want(t, http.StatusOK, "")
	if err := json.Unmarshal(res.Body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].KID == "" || set.Keys[0].ALG != "ES256" || set.Keys[0].D != "" {
		t.Fatalf("JWKS: %s", res.Body)
	}
	return set
}

// The gateway's public key is served, with the kid of the configured key,
// and the same one after a restart: GATEWAY_SIGNING_KEY is loaded, and dev
// mode keeps the key it generated in KEYHUB_DATA_DIR.
func TestIdentityJWKSIsStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := apitest.New(t, map[string]string{"KEYHUB_DATA_DIR": dir, "KEYHUB_DEV": "1", "SUPABASE_JWKS_URL": "", "LISTEN_ADDR": "127.0.0.1:1"})
	first := getJWKS(t, env)
	if first.Keys[0].KID != env.App.Identity.KeyID() {
		t.Fatalf("served kid %s, signer's %s", first.Keys[0].KID, env.App.Identity.KeyID())
	}
	keyFile := filepath.Join(app.GatewayKeyDir(env.Config), "identity-es256.pem")
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("dev mode kept no key: %v", err)
	}
	env.Restart(t)
	if again := getJWKS(t, env); again.Keys[0].KID != first.Keys[0].KID {
		t.Fatalf("a restart changed the kid: %s, then %s", first.Keys[0].KID, again.Keys[0].KID)
	}

	// Another process given the same key by GATEWAY_SIGNING_KEY publishes
	// the same kid.
	other := apitest.New(t, map[string]string{"GATEWAY_SIGNING_KEY": keyFile})
	if got := getJWKS(t, other); got.Keys[0].KID != first.Keys[0].KID {
		t.Fatalf("GATEWAY_SIGNING_KEY gave kid %s, want %s", got.Keys[0].KID, first.Keys[0].KID)
	}
}
