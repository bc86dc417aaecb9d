package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/secretscan"
	"github.com/keyhub/keyhub/internal/secretscan/githubtest"
)

type feedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// reportLeaks posts GitHub's report of tokens, signed by gh's key "k1".
func reportLeaks(t *testing.T, env *apitest.Env, gh *githubtest.GitHub, url string, tokens ...string) apitest.Response {
	t.Helper()
	matches := make([]map[string]string, 0, len(tokens))
	for _, tok := range tokens {
		matches = append(matches, map[string]string{"token": tok, "type": "keyhub_api_key", "url": url, "source": "content"})
	}
	body, err := json.Marshal(matches)
	if err != nil {
		t.Fatal(err)
	}
	return env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/leaks/github", Body: body, Headers: map[string]string{
		secretscan.HeaderKeyIdentifier: "k1", secretscan.HeaderSignature: gh.Sign(t, "k1", body),
	}})
}

func hashOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// leakedEvents are the key's `leaked` events.
func leakedEvents(t *testing.T, env *apitest.Env, jwt string, keyID string) []api.Event {
	t.Helper()
	var page api.EventList
	env.Get(t, "/v1/keys/"+keyID+"/events?type=leaked", jwt).Want(t, http.StatusOK, "").JSON(t, &page)
	return page.Data
}

// A signed report of a live key, on process A, revokes it (the owner's
// policy is the default, revoke) with the key it made; their sockets on
// process B close with 4001; the answer labels the key a true positive and
// the rest false; the trail says where it leaked.
func TestLeakReportRevokesKeyAcrossReplicas(t *testing.T) {
	t.Parallel()
	gh := githubtest.New(t, "k1")
	a, b, jwt := cluster(t, map[string]string{"GITHUB_SECRET_SCANNING_KEYS_URL": gh.URL})
	parent := createKey(t, a, jwt, map[string]any{"name": "pushed"})
	upgrade(t, parent.Secret, a, b)
	child := createKey(t, a, parent.Secret, map[string]any{"name": "made by it"})
	parentSocket := connect(t, b, parent.Secret)
	childSocket := connect(t, b, child.Secret)

	unknown, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	const where = "https://github.com/octo/app/blob/abc123/.env"
	resp := reportLeaks(t, a, gh, where, parent.Secret, unknown, "ghp_notours").Want(t, http.StatusOK, "")
	var got []feedback
	resp.JSON(t, &got)
	want := []feedback{
		{hashOf(parent.Secret), "keyhub_api_key", "true_positive"},
		{hashOf(unknown), "keyhub_api_key", "false_positive"},
		{hashOf("ghp_notours"), "keyhub_api_key", "false_positive"},
	}
	if len(got) != len(want) {
		t.Fatalf("feedback %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("feedback %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if strings.Contains(string(resp.Body), parent.Secret) {
		t.Fatal("the answer holds the key")
	}

	parentSocket.expectClose(t, 4001, 5*time.Second)
	childSocket.expectClose(t, 4001, 5*time.Second)
	for _, env := range []*apitest.Env{a, b} {
		eventually(t, 5*time.Second, refusedWith(t, env, parent.Secret, "KEY_REVOKED"))
		eventually(t, 5*time.Second, refusedWith(t, env, child.Secret, "KEY_REVOKED"))
	}
	leaked := leakedEvents(t, b, jwt, parent.ID.String())
	if len(leaked) != 1 || leaked[0].ActorUserID != nil {
		t.Fatalf("leaked events %+v, want one with no actor", leaked)
	}
	var details struct{ URL, Source, Action, TokenType string }
	if err := json.Unmarshal(leaked[0].Details, &details); err != nil || details.URL != where || details.Action != "revoked" || details.Source != "content" {
		t.Fatalf("details %s (%v)", leaked[0].Details, err)
	}
	var revoked api.EventList
	b.Get(t, "/v1/keys/"+parent.ID.String()+"/events?type=revoked", jwt).Want(t, http.StatusOK, "").JSON(t, &revoked)
	if len(revoked.Data) != 1 || !strings.Contains(string(revoked.Data[0].Details), `"reason": "leaked"`) && !strings.Contains(string(revoked.Data[0].Details), `"reason":"leaked"`) {
		t.Fatalf("revoked events %+v", revoked.Data)
	}

	// Reported again (GitHub may): the event, nothing more to revoke.
	reportLeaks(t, b, gh, where, parent.Secret).Want(t, http.StatusOK, "")
	if n := len(leakedEvents(t, a, jwt, parent.ID.String())); n != 2 {
		t.Fatalf("%d leaked events after a second report, want 2", n)
	}
}

// Under the notify policy the key keeps working; the report is recorded.
func TestLeakReportUnderNotifyPolicyKeepsKey(t *testing.T) {
	t.Parallel()
	gh := githubtest.New(t, "k1")
	env := apitest.New(t, map[string]string{"GITHUB_SECRET_SCANNING_KEYS_URL": gh.URL})
	jwt := env.Token(t, "notify@example.com")
	env.Do(t, apitest.Request{Method: http.MethodPatch, Path: "/v1/owner/policy", Cred: jwt, Body: map[string]any{"leak_policy": "notify"}}).Want(t, http.StatusOK, "")
	key := createKey(t, env, jwt, nil)
	var got []feedback
	reportLeaks(t, env, gh, "https://gist.github.com/x/1", key.Secret).Want(t, http.StatusOK, "").JSON(t, &got)
	if len(got) != 1 || got[0].Label != "true_positive" {
		t.Fatalf("feedback %+v", got)
	}
	env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
	leaked := leakedEvents(t, env, jwt, key.ID.String())
	if len(leaked) != 1 || !strings.Contains(string(leaked[0].Details), "notified") {
		t.Fatalf("leaked events %+v", leaked)
	}
}

// Nothing unsigned, signed by another key or over other bytes is read:
// 401 INVALID_SIGNATURE, and the key named inside stays untouched.
func TestLeakReportRefusesWhatGitHubDidNotSign(t *testing.T) {
	t.Parallel()
	gh := githubtest.New(t, "k1")
	env := apitest.New(t, map[string]string{"GITHUB_SECRET_SCANNING_KEYS_URL": gh.URL})
	jwt := env.Token(t, "unsigned@example.com")
	key := createKey(t, env, jwt, nil)
	body := []byte(`[{"token":"` + key.Secret + `","type":"keyhub_api_key","url":"https://x","source":"content"}]`)
	other := []byte(`[]`)
	forger := githubtest.New(t, "k1")
	post := func(headers map[string]string, body []byte) apitest.Response {
		return env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/v1/leaks/github", Body: body, Headers: headers})
	}
	for name, headers := range map[string]map[string]string{
		"unsigned":         nil,
		"no identifier":    {secretscan.HeaderSignature: gh.Sign(t, "k1", body)},
		"unknown key":      {secretscan.HeaderKeyIdentifier: "k2", secretscan.HeaderSignature: gh.Sign(t, "k1", body)},
		"other bytes":      {secretscan.HeaderKeyIdentifier: "k1", secretscan.HeaderSignature: gh.Sign(t, "k1", other)},
		"another's key":    {secretscan.HeaderKeyIdentifier: "k1", secretscan.HeaderSignature: forger.Sign(t, "k1", body)},
		"garbage":          {secretscan.HeaderKeyIdentifier: "k1", secretscan.HeaderSignature: "%%%"},
		"credential added": {secretscan.HeaderKeyIdentifier: "k1", "Authorization": "Bearer " + jwt},
	} {
		if r := post(headers, body); r.Status != http.StatusUnauthorized || r.ErrorCode() != "INVALID_SIGNATURE" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	env.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
	if n := len(leakedEvents(t, env, jwt, key.ID.String())); n != 0 {
		t.Fatalf("%d leaked events from unsigned reports", n)
	}
	// Signed but not a report, and too large to read.
	notJSON := []byte(`{"token":"x"}`)
	post(map[string]string{secretscan.HeaderKeyIdentifier: "k1", secretscan.HeaderSignature: gh.Sign(t, "k1", notJSON)}, notJSON).Want(t, http.StatusBadRequest, "INVALID_JSON")
	huge := []byte(`[` + strings.Repeat(" ", secretscan.MaxReportBytes) + `]`)
	post(map[string]string{secretscan.HeaderKeyIdentifier: "k1", secretscan.HeaderSignature: gh.Sign(t, "k1", huge)}, huge).Want(t, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE")
}
