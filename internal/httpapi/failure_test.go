package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
)

// With the database unreachable, every path that needs it answers 503
// UNAVAILABLE with Retry-After (never 500); keys already in the cache keep
// working; when the database comes back, everything works again without a
// restart.
func TestDatabaseOutageIs503AndRecovers(t *testing.T) {
	t.Parallel()
	env, proxy := apitest.NewBehindProxy(t, map[string]string{"LAST_USED_FLUSH_INTERVAL": "1s"})
	alice, bob := env.Token(t, "alice@example.com"), env.Token(t, "bob@example.com")
	var cached, uncached api.CreatedKey
	env.Post(t, "/v1/keys", alice, map[string]any{"name": "cached"}).Want(t, http.StatusCreated, "").JSON(t, &cached)
	env.Get(t, "/v1/me", cached.Secret).Want(t, http.StatusOK, "") // now in the key cache
	env.Post(t, "/v1/keys", bob, map[string]any{"name": "never used"}).Want(t, http.StatusCreated, "").JSON(t, &uncached)
	unknown, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	newUser := env.Token(t, "carol@example.com")

	var ticket struct {
		Ticket string `json:"ticket"`
	}
	env.Post(t, "/v1/ws/tickets", alice, nil).Want(t, http.StatusCreated, "").JSON(t, &ticket)

	proxy.Block()
	env.Get(t, "/v1/me", cached.Secret).Want(t, http.StatusOK, "")

	// WebSockets: a ticket cannot be redeemed (503 before the upgrade); a
	// first-message key that needs the database is closed with 1013.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(env.URL, "http") + "/v1/ws"
	if _, resp, err := websocket.Dial(ctx, wsURL+"?ticket="+ticket.Ticket, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ticket during the outage: %v %v", resp, err)
	}
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := wsjson.Write(ctx, ws, map[string]any{"type": "auth", "api_key": uncached.Secret}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusTryAgainLater {
		t.Errorf("first-message auth during the outage ended with %v", err)
	}
	unavailable := []apitest.Request{
		{Method: http.MethodGet, Path: "/v1/me", Cred: uncached.Secret},
		{Method: http.MethodGet, Path: "/v1/me", Cred: unknown},
		{Method: http.MethodGet, Path: "/v1/me", Cred: newUser},
		{Method: http.MethodGet, Path: "/v1/keys", Cred: alice},
		{Method: http.MethodGet, Path: "/v1/keys", Cred: cached.Secret},
		{Method: http.MethodGet, Path: "/v1/keys/" + cached.ID.String(), Cred: alice},
		{Method: http.MethodPost, Path: "/v1/keys", Cred: alice, Body: map[string]any{"name": "during outage"}},
		{Method: http.MethodPost, Path: "/v1/keys/" + cached.ID.String() + "/refresh", Cred: alice},
		{Method: http.MethodDelete, Path: "/v1/keys/" + uncached.ID.String(), Cred: bob},
		{Method: http.MethodGet, Path: "/v1/events", Cred: alice},
		{Method: http.MethodGet, Path: "/api/v1/auth/api-keys", Cred: bob},
		{Method: http.MethodPost, Path: "/api/v1/auth/api-keys", Cred: alice},
	}
	for _, req := range unavailable {
		resp := env.Do(t, req)
		if resp.Status != http.StatusServiceUnavailable || resp.ErrorCode() != "UNAVAILABLE" || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s during the outage: %d %s (Retry-After %q)", req.Method, req.Path, resp.Status, resp.Body, resp.Header.Get("Retry-After"))
		}
	}
	// Nothing else answers 500 either.
	for _, req := range []apitest.Request{
		{Method: http.MethodGet, Path: "/v1/keys/" + cached.ID.String() + "/events", Cred: alice},
		{Method: http.MethodPost, Path: "/v1/ws/tickets", Cred: alice},
		{Method: http.MethodGet, Path: "/v1/ws/connections", Cred: alice},
		{Method: http.MethodDelete, Path: "/v1/ws/connections/" + uuid.NewString(), Cred: alice},
		{Method: http.MethodPost, Path: "/api/v1/auth/api-keys/refresh", Cred: bob},
		{Method: http.MethodDelete, Path: "/api/v1/auth/api-keys", Cred: bob},
		{Method: http.MethodGet, Path: "/healthz"},
	} {
		if resp := env.Do(t, req); resp.Status >= 500 && resp.Status != http.StatusServiceUnavailable {
			t.Errorf("%s %s during the outage: %d %s", req.Method, req.Path, resp.Status, resp.Body)
		}
	}
	if resp := env.Get(t, "/readyz", ""); resp.Status != http.StatusServiceUnavailable {
		t.Errorf("readyz during the outage: %d", resp.Status)
	}
	// The cached key's last use cannot be written: counted, kept, retried.
	// (A failure-only bound: 10 s was once too short at load 15.)
	deadline := time.Now().Add(30 * time.Second)
	flushFailed := regexp.MustCompile(`keyhub_last_used_flush_failures_total\{table="api_keys"\} [1-9]`)
	for !flushFailed.MatchString(scrapeMetrics(t, env)) {
		if time.Now().After(deadline) {
			t.Fatal("the failed last_used flush was not counted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The check below is only worth something if the outage's requests
	// reached the log at all.
	logged503 := 0
	for _, line := range env.Logs.Lines(t) {
		if line["msg"] == "request" && line["status"] == float64(http.StatusServiceUnavailable) {
			logged503++
		}
	}
	if logged503 < len(unavailable) {
		t.Fatalf("%d requests answered 503 during the outage, %d logged: the log is not captured", len(unavailable), logged503)
	}
	for _, line := range env.Logs.Lines(t) {
		if line["level"] == "ERROR" {
			t.Errorf("an outage is not a server error, yet logged: %v", line)
		}
	}

	proxy.Unblock()
	deadline = time.Now().Add(20 * time.Second)
	for env.Get(t, "/v1/me", uncached.Secret).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the database came back but keyhub did not recover")
		}
		time.Sleep(100 * time.Millisecond)
	}
	env.Get(t, "/v1/me", newUser).Want(t, http.StatusOK, "")
	env.Get(t, "/v1/me", unknown).Want(t, http.StatusUnauthorized, "UNKNOWN_API_KEY")
	env.Delete(t, "/v1/keys/"+uncached.ID.String(), bob).Want(t, http.StatusOK, "")
	env.Get(t, "/readyz", "").Want(t, http.StatusOK, "")
}

// Lifetimes are range-checked before any arithmetic: a value that would
// overflow time.Duration is refused, not turned into a CHECK violation
// (500) or a key that expires in 30 seconds.
func TestHugeLifetimesAreRefused(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "alice@example.com")
	for _, n := range []string{"9223372036854775807", "36028797018963998", "-9223372036854775808", "315360001", "59"} {
		env.Post(t, "/v1/keys", jwt, `{"name":"k","expires_in":`+n+`}`).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	var list api.KeyList
	env.Get(t, "/v1/keys", jwt).Want(t, http.StatusOK, "").JSON(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("a key was created from an out-of-range lifetime: %+v", list.Data)
	}
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, `{"name":"k","expires_in":315360000}`).Want(t, http.StatusCreated, "").JSON(t, &k)
	if k.ExpiresAt == nil || time.Until(*k.ExpiresAt) < 9*365*24*time.Hour {
		t.Fatalf("the longest lifetime was not kept: %+v", k.ExpiresAt)
	}
	for _, n := range []string{"9223372036854775807", "36028797018963998", "-9223372036854775808", "86401", "-1"} {
		env.Post(t, "/v1/keys/"+k.ID.String()+"/refresh", jwt, `{"grace_period":`+n+`}`).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	env.Get(t, "/v1/keys/"+k.ID.String(), jwt).Want(t, http.StatusOK, "")
}

// A body over the limit is 413; a value of the wrong JSON type is named in
// JSON's terms, never Go's.
func TestBodyErrors(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "alice@example.com")
	big := `{"name":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, path := range []string{"/v1/keys", "/api/v1/auth/api-keys"} {
		env.Post(t, path, jwt, big).Want(t, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE")
	}
	goNames := []string{"int64", "int", "string", "time.Time", "Time", "UnmarshalJSON", "[]", "*", "api.", "struct", "bool", "float", "2006"}
	for _, body := range []string{`{"name":5}`, `{"name":"k","expires_in":"soon"}`, `{"name":"k","expires_in":1e30}`, `{"name":"k","expires_in":1.5}`, `{"name":"k","scopes":"keys:read"}`, `{"name":"k","scopes":[1]}`, `[]`, `"k"`, `{"name":"k","expires_at":5}`, `{"name":"k","expires_at":"tomorrow"}`} {
		resp := env.Post(t, "/v1/keys", jwt, body).Want(t, http.StatusBadRequest, "INVALID_JSON")
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		resp.JSON(t, &e)
		for _, name := range goNames {
			// "a string" and "an integer" are JSON's words; Go's are bare.
			msg := strings.NewReplacer("a string", "", "an integer", "", "not string", "", "RFC 3339 strings", "").Replace(e.Error.Message)
			if strings.Contains(msg, name) {
				t.Errorf("%s: message names Go's %q: %s", body, name, e.Error.Message)
			}
		}
	}
}

// Whatever a validly signed token says in its email claim, its user can be
// provisioned: the email is made storable, never a 500.
func TestHostileEmailClaimsProvision(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	for i, email := range []string{
		strings.Repeat("a", 400) + "@example.com",
		"nul\x00byte@example.com",
		"bad\xff\xfeutf8@example.com",
		"bell\x07and\ttab@example.com",
		strings.Repeat("é", 330) + "@example.com",
	} {
		jwt := env.Token(t, email)
		var me api.Me
		env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
		if n := utf8.RuneCountInString(me.Email); n > 320 || !utf8.ValidString(me.Email) || strings.ContainsAny(me.Email, "\x00\x07\t") {
			t.Errorf("case %d: email shown as %q (%d characters)", i, me.Email, n)
		}
		env.Post(t, "/v1/keys", jwt, map[string]any{"name": fmt.Sprint("k", i)}).Want(t, http.StatusCreated, "")
	}
	var stored int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users u JOIN owners o ON o.id = u.default_owner_id").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 5 {
		t.Fatalf("%d users provisioned, want 5", stored)
	}
}

// A client that goes away while its request waits on the database is not
// a server error: the request is logged at INFO as 499, and nothing is
// logged at ERROR or as INTERNAL. Durations are in milliseconds.
func TestClientGoneIsLogged499(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, nil)
	jwt := env.Token(t, "alice@example.com")
	env.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "") // provisioned and cached

	// Hold the user's row so that creating a key waits on the database.
	ctx := context.Background()
	tx, err := env.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM users FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	reqCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, env.URL+"/v1/keys", strings.NewReader(`{"name":"k"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+jwt)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the request was answered (%d) while the row was locked", resp.StatusCode)
	}

	var logged map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for logged == nil && time.Now().Before(deadline) {
		for _, line := range env.Logs.Lines(t) {
			if line["msg"] == "request" && line["path"] == "/v1/keys" {
				logged = line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if logged == nil {
		t.Fatal("the abandoned request was never logged")
	}
	if logged["status"] != float64(499) || logged["level"] != "INFO" {
		t.Errorf("abandoned request logged as %v", logged)
	}
	if _, ok := logged["duration_ms"].(float64); !ok {
		t.Errorf("request log line lacks duration_ms: %v", logged)
	}
	for _, line := range env.Logs.Lines(t) {
		if line["level"] == "ERROR" || line["code"] == "INTERNAL" {
			t.Errorf("a client going away was logged as a server error: %v", line)
		}
	}
}

// The request deadline holds for every request until it is actually
// upgraded: claiming "Upgrade: websocket" on a request that never upgrades
// does not let a slow-drip body hold the connection open.
func TestRequestDeadlineHoldsUntilUpgrade(t *testing.T) {
	t.Parallel()
	// Long enough for a key to be created on a loaded machine (at 300 ms
	// the key creation below failed with load ≈ 45 on 2 cores), short
	// enough to tell a closed connection from one held open for 10 s.
	const timeout = 1500 * time.Millisecond
	env := apitest.New(t, map[string]string{"REQUEST_TIMEOUT": timeout.String()})
	for _, path := range []string{"/v1/keys", "/healthz", "/v1/ws"} {
		conn, err := net.Dial("tcp", env.Server.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: keyhub\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", path)
		stop := make(chan struct{})
		go func() { // one byte now and then, as the slow-drip client did
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(10 * time.Second))
		_, err = io.Copy(io.Discard, conn) // until the server closes
		close(stop)
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			t.Errorf("POST %s: the connection was still open after 10s", path)
		}
	}
	// A real upgrade outlives the deadline.
	jwt := env.Token(t, "alice@example.com")
	var k api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "ws"}).Want(t, http.StatusCreated, "").JSON(t, &k)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(env.URL, "http")+"/v1/ws", &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {k.Secret}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil { // welcome
		t.Fatal(err)
	}
	time.Sleep(2 * timeout) // the socket must outlive the request deadline
	if err := wsjson.Write(ctx, ws, map[string]any{"type": "ping", "id": 1}); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), "pong") {
		t.Fatalf("after the request deadline: %s %v", msg, err)
	}
}

// scrapeMetrics reads what GET /metrics would serve on METRICS_ADDR.
func scrapeMetrics(t *testing.T, env *apitest.Env) string {
	t.Helper()
	rec := httptest.NewRecorder()
	env.App.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}
