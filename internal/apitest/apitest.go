// Package apitest runs a complete keyhub for end-to-end tests: the real
// wiring (app.New) on a fresh database, behind a real HTTP listener, with
// a dev issuer whose JWKS is served by a separate httptest server, as a
// Supabase project's would be.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/internal/app"
	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/devissuer"
	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// Issuer is the iss of test tokens.
const Issuer = "https://project.supabase.test/auth/v1"

// Env is a running keyhub.
type Env struct {
	URL    string
	Server *httptest.Server
	App    *app.App
	Pool   *pgxpool.Pool
	Issuer *devissuer.Issuer
	// TokenIssuer is the iss of the tokens Token mints.
	TokenIssuer string
	Config      config.Config

	vars map[string]string // the configuration New read
	// Logs is everything the server logged, at every level.
	Logs *LogBuffer

	early http.Handler // what the listener serves until the app is ready
	stop  func()       // shuts the app and its listener down, once
}

// New starts a keyhub. env overrides configuration variables.
func New(t testing.TB, env map[string]string) *Env {
	t.Helper()
	pool, dbURL := pgtest.NewDB(t)
	return newEnv(t, env, pool, dbURL)
}

// NewBehindProxy starts a keyhub whose database connections go through a
// pgtest.Proxy, so the test can take the database away and bring it back.
func NewBehindProxy(t testing.TB, env map[string]string) (*Env, *pgtest.Proxy) {
	t.Helper()
	_, directURL := pgtest.NewDB(t)
	proxy, dbURL := pgtest.NewProxy(t, directURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open database through proxy: %v", err)
	}
	t.Cleanup(pool.Close)
	return newEnv(t, env, pool, dbURL), proxy
}

func newEnv(t testing.TB, env map[string]string, pool *pgxpool.Pool, dbURL string) *Env {
	t.Helper()
	issuer, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatalf("dev issuer: %v", err)
	}
	jwks := httptest.NewServer(issuer.JWKSHandler())
	t.Cleanup(jwks.Close)

	vars := map[string]string{
		"DATABASE_URL":      dbURL,
		"SUPABASE_JWKS_URL": jwks.URL + "/auth/v1/.well-known/jwks.json",
		"JWT_ISSUER":        Issuer,
		"KEYHUB_DATA_DIR":   t.TempDir(),
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg := loadConfig(t, vars)
	srv := httptest.NewUnstartedServer(nil)
	e := start(t, cfg, pool, srv, nil)
	e.Issuer, e.TokenIssuer, e.vars = issuer, Issuer, vars
	return e
}

// NewDev starts a keyhub in dev mode, as `make run` does: it is its own
// JWT issuer, serving its JWKS and POST /dev/token on its own listener.
// env overrides configuration variables.
func NewDev(t testing.TB, env map[string]string) *Env {
	t.Helper()
	pool, dbURL := pgtest.NewDB(t)
	// The listener comes first: dev mode's JWKS URL names its address.
	srv := httptest.NewUnstartedServer(nil)
	vars := map[string]string{
		"DATABASE_URL":    dbURL,
		"KEYHUB_DEV":      "1",
		"LISTEN_ADDR":     srv.Listener.Addr().String(),
		"KEYHUB_DATA_DIR": t.TempDir(),
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg := loadConfig(t, vars)
	issuer, err := devissuer.LoadOrCreate(app.DevKeyDir(cfg)) // the key app.New loads
	if err != nil {
		t.Fatalf("dev issuer: %v", err)
	}
	e := start(t, cfg, pool, srv, issuer.JWKSHandler())
	e.Issuer, e.TokenIssuer = issuer, cfg.JWTIssuer
	return e
}

func loadConfig(t testing.TB, vars map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(func(name string) string { return vars[name] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if vars["LOG_LEVEL"] == "" {
		cfg.LogLevel = "debug" // tests see everything, unless they ask for a level
	}
	return cfg
}

// start wires keyhub on pool and serves it on srv (unstarted). srv starts
// before app.New and answers with early (503 if nil) until the app is
// ready: in dev mode the app fetches its JWKS from its own address while
// it is built, and early serves it.
func start(t testing.TB, cfg config.Config, pool *pgxpool.Pool, srv *httptest.Server, early http.Handler) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &LogBuffer{}
	var logTo io.Writer = logs
	if testing.Verbose() {
		logTo = io.MultiWriter(logs, testWriter{t})
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	log := slog.New(slog.NewJSONHandler(logTo, &slog.HandlerOptions{Level: level}))
	var ready atomic.Pointer[http.Handler]
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := ready.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		if early != nil {
			early.ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	})
	srv.Start()
	a, err := app.New(ctx, cfg, pool, log)
	if err != nil {
		cancel()
		srv.Close()
		t.Fatalf("app: %v", err)
	}
	ready.Store(&a.Handler)
	a.Start(ctx)
	stop := sync.OnceFunc(func() {
		// Close sockets first, so no connection goroutine outlives the test.
		shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		if err := a.Shutdown(shutdownCtx); err != nil {
			t.Errorf("websocket shutdown: %v", err)
		}
		srv.Close()
		cancel()
		a.Wait()
	})
	t.Cleanup(stop)
	e := &Env{URL: srv.URL, Server: srv, App: a, Pool: pool, Config: cfg, Logs: logs, early: early, stop: stop}
	// Changes made before the feed listens are never heard (by design: its
	// caches start empty), but a test that subscribes to live events must
	// not race the feed's first connection.
	e.WaitListening(t)
	return e
}

// Restart shuts keyhub down as a deploy would (open WebSockets are closed
// with 1001) and starts a new one on the same address and database: what
// a client that reconnects sees.
func (e *Env) Restart(t testing.TB) {
	t.Helper()
	e.stop()
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener.Close()
	addr := e.Server.Listener.Addr().String()
	var err error
	// The old listener is closed; the port is free at once (SO_REUSEADDR).
	if srv.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	next := start(t, e.Config, e.Pool, srv, e.early)
	e.Server, e.App, e.Logs, e.stop = next.Server, next.App, next.Logs, next.stop
}

// LogBuffer holds what the server logged (JSON lines), for tests about
// logging; safe for the server's goroutines.
type LogBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	discard bool
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.discard {
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Discard drops every line logged from now on: a benchmark's lines are
// still formatted, but a buffer growing by a line per request would
// measure its own growth.
func (b *LogBuffer) Discard() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.discard = true
	b.buf = bytes.Buffer{}
}

// String returns everything logged so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the log lines decoded, in order.
func (b *LogBuffer) Lines(t testing.TB) []map[string]any {
	t.Helper()
	raw := b.String()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// Replica starts a second keyhub process on e's database, as a second
// `keyhub serve` beside the first: its own pool, change-feed connection,
// caches and WebSocket hub, trusting the same issuer, with e's
// configuration (secrets included) and its own data folder. env overrides
// configuration variables. Only for Envs made by New.
func (e *Env) Replica(t testing.TB, env map[string]string) *Env {
	t.Helper()
	if e.vars == nil {
		t.Fatal("Replica needs an Env made by New")
	}
	vars := map[string]string{"KEYHUB_DATA_DIR": t.TempDir()}
	for k, v := range e.vars {
		if k != "KEYHUB_DATA_DIR" {
			vars[k] = v
		}
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := postgres.Open(ctx, e.Config.DatabaseURL)
	if err != nil {
		t.Fatalf("open replica pool: %v", err)
	}
	t.Cleanup(pool.Close)
	r := start(t, loadConfig(t, vars), pool, httptest.NewUnstartedServer(nil), nil)
	r.Issuer, r.TokenIssuer, r.vars = e.Issuer, e.TokenIssuer, vars
	return r
}

// WaitListening waits until the change feed of e listens, so that every
// later change is certain to reach it.
func (e *Env) WaitListening(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.App.Feed.Listening() {
		if time.Now().After(deadline) {
			t.Fatal("the change feed did not start listening within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Token returns an access token of the user with this email (the same
// email is the same user).
func (e *Env) Token(t testing.TB, email string) string {
	t.Helper()
	tok, err := e.Issuer.Token(e.TokenIssuer, email, time.Hour)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return tok
}

// AnonymousToken returns an access token of an anonymous sign-in of user
// (Supabase's is_anonymous).
func (e *Env) AnonymousToken(t testing.TB, user uuid.UUID) string {
	t.Helper()
	tok, err := e.Issuer.AnonymousToken(e.TokenIssuer, user, time.Hour)
	if err != nil {
		t.Fatalf("anonymous token: %v", err)
	}
	return tok
}

// LinkedToken returns the access token of user once it has linked email
// to its anonymous account.
func (e *Env) LinkedToken(t testing.TB, user uuid.UUID, email string) string {
	t.Helper()
	tok, err := e.Issuer.TokenFor(e.TokenIssuer, user, email, time.Hour)
	if err != nil {
		t.Fatalf("linked token: %v", err)
	}
	return tok
}

// Request describes one call.
type Request struct {
	Method  string
	Path    string
	Cred    string // sent as Authorization: Bearer, unless empty
	Body    any    // JSON-encoded unless a string or []byte
	Headers map[string]string
}

// Response is a call's answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// ErrorCode returns the error code of an error response ("" if none).
func (r Response) ErrorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// Do sends req.
func (e *Env) Do(t testing.TB, req Request) Response {
	t.Helper()
	var body io.Reader
	switch b := req.Body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequest(req.Method, e.URL+req.Path, body)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.Cred != "" {
		hr.Header.Set("Authorization", "Bearer "+req.Cred)
	}
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	// A redirect is the answer to this request, not the page it points
	// to: the observer checks it against this request's route.
	client := *e.Server.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if Observer != nil {
		Observer(t, hr, resp, raw)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Observer, when set (by a test package's TestMain), sees every request
// and response: the OpenAPI conformance check hooks in here.
var Observer func(t testing.TB, req *http.Request, resp *http.Response, body []byte)

// Get is Do with GET.
func (e *Env) Get(t testing.TB, path, cred string) Response {
	t.Helper()
	return e.Do(t, Request{Method: http.MethodGet, Path: path, Cred: cred})
}

// Post is Do with POST.
func (e *Env) Post(t testing.TB, path, cred string, body any) Response {
	t.Helper()
	return e.Do(t, Request{Method: http.MethodPost, Path: path, Cred: cred, Body: body})
}

// Delete is Do with DELETE.
func (e *Env) Delete(t testing.TB, path, cred string) Response {
	t.Helper()
	return e.Do(t, Request{Method: http.MethodDelete, Path: path, Cred: cred})
}

// Want fails the test unless r has the status (and, if code is not empty,
// the error code).
func (r Response) Want(t testing.TB, status int, code string) Response {
	t.Helper()
	if r.Status != status || (code != "" && r.ErrorCode() != code) {
		t.Fatalf("want %d %s, got %d: %s", status, code, r.Status, r.Body)
	}
	return r
}
