package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/pgtest"
)

// `keyhub dev token` run with only KEYHUB_DATA_DIR (as the README runs it)
// mints a token that two dev servers on other addresses, sharing that
// directory and one database (a second `make run`), both accept.
func TestDevTokenIsAcceptedByEveryServerSharingTheKey(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDB(t)
	dataDir := t.TempDir()
	first := startServe(t, dbURL, map[string]string{"KEYHUB_DATA_DIR": dataDir})
	second := startServe(t, dbURL, map[string]string{"KEYHUB_DATA_DIR": dataDir})
	first.waitFor(t, "/readyz", http.StatusOK, 15*time.Second)
	second.waitFor(t, "/readyz", http.StatusOK, 15*time.Second)

	var out, errOut bytes.Buffer
	env := map[string]string{"KEYHUB_DATA_DIR": dataDir} // no LISTEN_ADDR: the default, neither server's
	if err := run(context.Background(), []string{"dev", "token", "--email", "you@example.com"}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("dev token: %v (%s)", err, errOut.String())
	}
	token := strings.TrimSpace(out.String())
	for _, s := range []*server{first, second} {
		req, err := http.NewRequest(http.MethodGet, "http://"+s.addr+"/v1/me", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/me on %s with the dev token: %d, want 200", s.addr, resp.StatusCode)
		}
	}
}

// In production the command refuses dev tokens, and says so, before any
// setting (WS_TICKET_SECRET is required there) is checked.
func TestDevTokenRefusedInProduction(t *testing.T) {
	t.Parallel()
	env := map[string]string{"KEYHUB_ENV": "production", "KEYHUB_DATA_DIR": t.TempDir()}
	var out bytes.Buffer
	err := run(context.Background(), []string{"dev", "token"}, func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "dev tokens are refused when KEYHUB_ENV=production") {
		t.Fatalf("dev token in production: %v, want the refusal", err)
	}
	if out.Len() != 0 {
		t.Fatalf("printed %q", out.String())
	}
}
