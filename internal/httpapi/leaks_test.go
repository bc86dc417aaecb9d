package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/secretscan"
	"github.com/keyhub/keyhub/internal/secretscan/githubtest"
)

// POST /v1/leaks/github answers as openapi.yaml says (the conformance
// check of TestMain sees both answers), and its event type filters.
func TestGitHubLeakReportAnswers(t *testing.T) {
	t.Parallel()
	gh := githubtest.New(t, "k1")
	env := apitest.New(t, map[string]string{"GITHUB_SECRET_SCANNING_KEYS_URL": gh.URL})
	jwt := env.Token(t, "leak@example.com")
	var key api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "pushed"}).Want(t, http.StatusCreated, "").JSON(t, &key)
	body := []byte(`[{"token":"` + key.Secret + `","type":"keyhub_api_key","url":"https://github.com/o/r/blob/x/.env","source":"content"}]`)
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/leaks/github", Body: body}).Want(t, http.StatusUnauthorized, "INVALID_SIGNATURE")
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/leaks/github", Body: body, Headers: map[string]string{
		secretscan.HeaderKeyIdentifier: "k1", secretscan.HeaderSignature: gh.Sign(t, "k1", body),
	}}).Want(t, http.StatusOK, "")
	var page api.EventList
	env.Get(t, "/v1/events?type=leaked,revoked", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
	if len(page.Data) != 2 || page.Data[0].Type != "revoked" || page.Data[1].Type != "leaked" {
		t.Fatalf("events %+v", page.Data)
	}
	env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusUnauthorized, "KEY_REVOKED")
}
