package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/devissuer"
	"github.com/keyhub/keyhub/internal/pgtest"
)

// After real traffic (JWT and key requests, bad keys, an unknown route,
// WebSockets by header, ticket and first message), GET /metrics on
// METRICS_ADDR shows every family, the counters have moved, and no label
// holds a key, a token, a ticket, an email or a raw path.
func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDB(t)
	// Tokens of a Supabase-like issuer whose JWKS keyhub fetches over HTTP.
	issuer, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(issuer.JWKSHandler())
	defer jwks.Close()
	metricsAddr := freeAddr(t)
	s := startServe(t, dbURL, map[string]string{
		"METRICS_ADDR":      metricsAddr,
		"KEYHUB_DEV":        "0",
		"SUPABASE_JWKS_URL": jwks.URL + "/auth/v1/.well-known/jwks.json",
		"JWT_ISSUER":        apitest.Issuer,
	})
	s.waitFor(t, "/readyz", http.StatusOK, 15*time.Second)
	base := "http://" + s.addr
	jwt, err := issuer.Token(apitest.Issuer, "alice@example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	call := func(method, path, cred, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	call("GET", "/v1/me", jwt, "")
	status, raw := call("POST", "/v1/keys", jwt, `{"name":"metrics"}`)
	var key struct {
		ID     string `json:"id"`
		Secret string `json:"key"`
		Prefix string `json:"prefix"`
	}
	if err := json.Unmarshal(raw, &key); err != nil || status != http.StatusCreated {
		t.Fatalf("create key: %d %s", status, raw)
	}
	call("GET", "/v1/me", key.Secret, "") // a cache miss
	call("GET", "/v1/me", key.Secret, "") // a hit
	call("GET", "/v1/keys/"+key.ID, jwt, "")
	unknown, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	call("GET", "/v1/me", unknown, "") // a miss, then remembered
	call("GET", "/v1/me", unknown, "") // a negative hit
	call("GET", "/v1/me", "mk_malformed", "")
	missingPath := "/v1/nothing/" + uuid.NewString()
	call("GET", missingPath, "", "")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wsURL := "ws://" + s.addr + "/v1/ws"
	session := func(ws *websocket.Conn, auth any) {
		t.Helper()
		defer ws.CloseNow()
		if auth != nil {
			if err := wsjson.Write(ctx, ws, auth); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := ws.Read(ctx); err != nil { // welcome
			t.Fatal(err)
		}
		if err := wsjson.Write(ctx, ws, map[string]any{"type": "ping", "id": 1}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ws.Read(ctx); err != nil { // pong
			t.Fatal(err)
		}
		ws.Close(websocket.StatusNormalClosure, "bye")
	}
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key.Secret}}})
	if err != nil {
		t.Fatal(err)
	}
	session(ws, nil)
	_, raw = call("POST", "/v1/ws/tickets", jwt, "")
	var ticket struct {
		Ticket string `json:"ticket"`
	}
	if err := json.Unmarshal(raw, &ticket); err != nil || ticket.Ticket == "" {
		t.Fatalf("ticket: %s", raw)
	}
	if ws, _, err = websocket.Dial(ctx, wsURL+"?ticket="+ticket.Ticket, nil); err != nil {
		t.Fatal(err)
	}
	session(ws, nil)
	// The free tier allows the key one socket: wait until the server has
	// released the first (it does so just after the close handshake).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, raw := call("GET", "/v1/ws/connections", jwt, "")
		var conns struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &conns); err != nil {
			t.Fatalf("connections: %s", raw)
		}
		if len(conns.Data) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed sockets are still listed: %s", raw)
		}
	}
	if ws, _, err = websocket.Dial(ctx, wsURL, nil); err != nil {
		t.Fatal(err)
	}
	session(ws, map[string]any{"type": "auth", "api_key": key.Secret})
	call("DELETE", "/v1/keys/"+key.ID, jwt, "") // a change-feed notice

	var text string
	samples := map[string]float64{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(body)
		samples = parseSamples(text)
		// The server counts a close when its side of the socket has ended.
		if (samples[`keyhub_ws_closes_total{code="1000"}`] >= 3 && samples[`keyhub_changefeed_notifications_total{kind="key"}`] >= 1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, family := range []string{
		"keyhub_http_request_duration_seconds", "keyhub_auth_outcomes_total", "keyhub_key_cache_lookups_total",
		"keyhub_jwks_refreshes_total", "keyhub_jwks_refresh_failures_total",
		"keyhub_db_pool_acquired_conns", "keyhub_db_pool_idle_conns", "keyhub_db_pool_total_conns", "keyhub_db_pool_acquires_total",
		"keyhub_ws_connections", "keyhub_ws_closes_total", "keyhub_ws_messages_total", "keyhub_last_used_flush_failures_total",
		"keyhub_changefeed_notifications_total", "keyhub_changefeed_lag_seconds", "keyhub_changefeed_reconnects_total",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(text, "# TYPE "+family+" ") {
			t.Errorf("family %s is missing", family)
		}
	}
	atLeast := map[string]float64{
		`keyhub_http_request_duration_seconds_count{method="GET",route="/v1/keys/{id}",status="200"}`: 1,
		`keyhub_http_request_duration_seconds_count{method="POST",route="/v1/keys",status="201"}`:     1,
		`keyhub_http_request_duration_seconds_count{method="GET",route="/v1/me",status="200"}`:        3,
		// Refused before routing: the mount's pattern, never the path.
		`keyhub_http_request_duration_seconds_count{method="GET",route="/v1/*",status="401"}`:    3,
		`keyhub_http_request_duration_seconds_count{method="GET",route="/v1/*",status="404"}`:    1,
		`keyhub_auth_outcomes_total{code="OK",method="jwt",reason=""}`:                           3,
		`keyhub_auth_outcomes_total{code="OK",method="api_key",reason=""}`:                       3,
		`keyhub_auth_outcomes_total{code="UNKNOWN_API_KEY",method="api_key",reason=""}`:          2,
		`keyhub_auth_outcomes_total{code="INVALID_API_KEY",method="api_key",reason="malformed"}`: 1,
		`keyhub_auth_outcomes_total{code="OK",method="ticket",reason=""}`:                        1,
		`keyhub_auth_outcomes_total{code="OK",method="first_message",reason=""}`:                 1,
		`keyhub_key_cache_lookups_total{result="hit"}`:                                           1,
		`keyhub_key_cache_lookups_total{result="miss"}`:                                          2,
		`keyhub_key_cache_lookups_total{result="negative_hit"}`:                                  1,
		`keyhub_jwks_refreshes_total`:                                                            1,
		`keyhub_db_pool_acquires_total`:                                                          1,
		`keyhub_ws_closes_total{code="1000"}`:                                                    3,
		`keyhub_ws_messages_total{direction="in"}`:                                               3,
		`keyhub_ws_messages_total{direction="out"}`:                                              6,
		`keyhub_changefeed_notifications_total{kind="key"}`:                                      1,
		`keyhub_changefeed_lag_seconds_count`:                                                    1,
	}
	for series, want := range atLeast {
		if got := samples[series]; got < want {
			t.Errorf("%s = %v, want at least %v", series, got, want)
		}
	}
	if got := samples[`keyhub_ws_connections{tier="free"}`]; got != 0 {
		t.Errorf("%v free-tier connections open after every socket closed", got)
	}
	for _, secret := range []string{key.Secret, key.Prefix, key.ID, jwt, unknown, ticket.Ticket, "alice", "example.com", missingPath, "mk_malformed"} {
		if strings.Contains(text, secret) {
			t.Errorf("the scrape contains %q", secret)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", keyhubLines(text))
	}
	// The API listener does not serve the metrics.
	if status, _ := call("GET", "/metrics", "", ""); status != http.StatusNotFound {
		t.Errorf("GET /metrics on the API listener: %d", status)
	}
}

// parseSamples reads the exposition format's sample lines into
// series → value.
func parseSamples(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func keyhubLines(text string) string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "keyhub_") && !strings.Contains(line, "_bucket") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
