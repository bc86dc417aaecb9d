package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// TestDevTokenOnlyInDevMode: POST /dev/token mints a working user token in
// dev mode and does not exist otherwise.
func TestDevTokenOnlyInDevMode(t *testing.T) {
	t.Parallel()

	prod := apitest.New(t, nil)
	prod.Post(t, "/dev/token", "", map[string]string{"email": "a@example.com"}).Want(t, http.StatusNotFound, "NOT_FOUND")

	dev := apitest.NewDev(t, nil)
	var tok api.DevToken
	dev.Post(t, "/dev/token", "", map[string]string{"email": "dev-user@example.com"}).Want(t, http.StatusOK, "").JSON(t, &tok)
	if tok.TokenType != "bearer" || tok.ExpiresIn != 3600 || tok.AccessToken == "" {
		t.Fatalf("token answer %+v", tok)
	}
	var me api.Me
	dev.Get(t, "/v1/me", tok.AccessToken).Want(t, http.StatusOK, "").JSON(t, &me)
	if me.Email != "dev-user@example.com" || me.AuthMethod != "jwt" || me.Limits.MaxActiveKeys != 1 {
		t.Fatalf("me %+v", me)
	}

	for _, body := range []any{
		map[string]string{"email": "not an address"},
		map[string]string{"email": "Name <a@example.com>"},
		map[string]string{"email": strings.Repeat("a", 250) + "@example.com"},
		map[string]string{},
	} {
		dev.Post(t, "/dev/token", "", body).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	dev.Post(t, "/dev/token", "", `{"email":"a@example.com","admin":true}`).Want(t, http.StatusBadRequest, "INVALID_JSON")
}

// TestDashboardRoutes: / and /dashboard lead to the page, which is served
// with a Content-Security-Policy that allows no inline script.
func TestDashboardRoutes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	client := *env.Server.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	for _, path := range []string{"/", "/dashboard"} {
		resp, err := client.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/dashboard/" {
			t.Errorf("GET %s: %d to %q, want 302 to /dashboard/", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	page := env.Get(t, "/dashboard/", "").Want(t, http.StatusOK, "")
	if !strings.Contains(string(page.Body), `<script type="module" src="app.js">`) {
		t.Errorf("page does not load app.js")
	}
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	for _, file := range []string{"app.js", "api.js", "session.js", "style.css"} {
		resp := env.Get(t, "/dashboard/"+file, "").Want(t, http.StatusOK, "")
		if resp.Header.Get("Content-Security-Policy") == "" || len(resp.Body) == 0 {
			t.Errorf("%s: no CSP or empty", file)
		}
	}
	env.Get(t, "/dashboard/secrets.txt", "").Want(t, http.StatusNotFound, "NOT_FOUND")

	var cfg struct {
		APIURL    string `json:"api_url"`
		DevSignIn bool   `json:"dev_sign_in"`
	}
	env.Get(t, "/dashboard/config.json", "").Want(t, http.StatusOK, "").JSON(t, &cfg)
	if cfg.DevSignIn || cfg.APIURL != "" {
		t.Errorf("config %+v outside dev mode", cfg)
	}
}
