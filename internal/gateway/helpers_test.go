package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// received is what an upstream saw of one request.
type received struct {
	Method, Path, RawPath, RawQuery, Host string
	Header                                http.Header
	Body                                  string
}

// recorder is an upstream test server that records every request it
// receives and answers through its handler (200 "ok" by default).
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []received
	// answer, when set, answers after the request is recorded.
	answer http.HandlerFunc
}

func newRecorder(t *testing.T, answer http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{answer: answer}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := received{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone()}
		if rec.answer == nil {
			body, _ := io.ReadAll(r.Body)
			got.Body = string(body)
		}
		rec.mu.Lock()
		rec.seen = append(rec.seen, got)
		rec.mu.Unlock()
		if rec.answer != nil {
			rec.answer(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(rec.Close)
	return rec
}

// requests returns what the upstream has received so far.
func (rec *recorder) requests() []received {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]received(nil), rec.seen...)
}

// last is the last request the upstream received; the test fails if none.
func (rec *recorder) last(t *testing.T) received {
	t.Helper()
	seen := rec.requests()
	if len(seen) == 0 {
		t.Fatal("the upstream received nothing")
	}
	return seen[len(seen)-1]
}

// uniqueEmail names a user no other run has (the Redis tests share
// outlives each test).
func uniqueEmail(name string) string {
	return fmt.Sprintf("%s-%d@example.com", name, rand.Int64())
}

// newKey creates an API key with scopes (all of its creator's when nil)
// for a new user, and returns it with the user's access token.
func newKey(t testing.TB, env *apitest.Env, scopes []string) (key, jwt string) {
	t.Helper()
	body := map[string]any{"name": "gateway"}
	if scopes != nil {
		body["scopes"] = scopes
	}
	jwt = env.Token(t, uniqueEmail("gw"))
	var created api.CreatedKey
	env.Post(t, "/v1/keys", jwt, body).Want(t, http.StatusCreated, "").JSON(t, &created)
	return created.Secret, jwt
}

// rawRequest sends text as one HTTP/1.1 request on a new connection to
// env (header names exactly as written, duplicates kept) and returns the
// answer.
func rawRequest(t *testing.T, env *apitest.Env, text string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", env.Server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, strings.ReplaceAll(text, "\n", "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// do sends req through env's client and returns the answer with its body.
func do(t *testing.T, env *apitest.Env, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := env.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

func get(t *testing.T, env *apitest.Env, path string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(t, env, req)
}
