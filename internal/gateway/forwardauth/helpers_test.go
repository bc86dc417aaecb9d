package forwardauth_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/identity"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/gateway/forwardauth"
	"github.com/keyhub/keyhub/internal/testdep"
)

// freeAddr is a loopback address nothing listens on (the port may in
// principle be taken again before the server binds it; the server's start
// then fails loudly).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// configure replaces the addresses a configuration names with the test's,
// failing if one is missing (the configuration would then talk to
// whatever listens there).
func configure(t *testing.T, text, keyhubAddr, upstreamAddr, listenAddr string) string {
	t.Helper()
	for _, addr := range []string{forwardauth.KeyhubAddr, forwardauth.UpstreamAddr, forwardauth.ListenAddr} {
		if !strings.Contains(text, addr) {
			t.Fatalf("the configuration does not name %s", addr)
		}
	}
	return strings.NewReplacer(forwardauth.KeyhubAddr, keyhubAddr, forwardauth.UpstreamAddr, upstreamAddr, forwardauth.ListenAddr, listenAddr).Replace(text)
}

// serve runs a server as a child process of the test until it ends, and
// waits until addr accepts connections. logFile is shown when it fails.
func serve(t *testing.T, cmd *exec.Cmd, addr, logFile string) {
	t.Helper()
	out := &strings.Builder{}
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, out}, lockedWriter{&mu, out}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	show := func() string {
		mu.Lock()
		defer mu.Unlock()
		logged, _ := os.ReadFile(logFile)
		return out.String() + string(logged)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), show())
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited: %v\n%s", cmd.Path, err, show())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after a minute\n%s", cmd.Path, addr, show())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startNginx runs Debian's nginx with the README's server block, as a
// foreground process with everything it writes in a temporary prefix, and
// returns its base URL.
func startNginx(t *testing.T, keyhubAddr, upstreamAddr string) string {
	t.Helper()
	bin := testdep.Program(t, "nginx")
	dir := t.TempDir()
	listen := freeAddr(t)
	server := configure(t, forwardauth.Nginx, keyhubAddr, upstreamAddr, listen)
	main := forwardauth.NginxMain(dir)
	if err := os.WriteFile(filepath.Join(dir, "keyhub.conf"), []byte(server), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(dir, "error.log")
	serve(t, exec.Command(bin, "-p", dir, "-c", conf, "-e", errorLog), listen, errorLog)
	return "http://" + listen
}

// startCaddy runs Debian's caddy with the README's site, with its admin
// endpoint off and its state in a temporary folder, and returns its base
// URL.
func startCaddy(t *testing.T, keyhubAddr, upstreamAddr string) string {
	t.Helper()
	bin := testdep.Program(t, "caddy")
	dir := t.TempDir()
	listen := freeAddr(t)
	site := configure(t, forwardauth.Caddyfile, keyhubAddr, upstreamAddr, listen)
	global := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tstorage file_system %s\n}\n\n", filepath.Join(dir, "data"))
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(global+site), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	serve(t, cmd, listen, "")
	return "http://" + listen
}

// seen is what the product behind the gateway received of one request,
// and who keyhub's identity said was calling.
type seen struct {
	Header http.Header
	Caller *identity.Principal
}

// product is the service behind the gateway: it verifies Keyhub-Identity
// with api/identity against keyhub's JWKS, as a real upstream would
// (refusing a request without a valid one), and records what it received.
type product struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seen
}

func newProduct(t *testing.T, env *apitest.Env) *product {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ids, err := identity.New(ctx, identity.Config{JWKSURL: env.URL + identity.JWKSPath, Audience: identity.DefaultAudience, Issuer: env.Config.PublicURL})
	if err != nil {
		t.Fatal(err)
	}
	p := &product{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, err := ids.Verify(r.Context(), r.Header.Get(identity.Header))
		p.mu.Lock()
		p.seen = append(p.seen, seen{Header: r.Header.Clone(), Caller: caller})
		p.mu.Unlock()
		if err != nil {
			http.Error(w, "no valid identity: "+err.Error(), http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "product")
	}))
	t.Cleanup(p.Close)
	return p
}

// requests returns what the product has received so far.
func (p *product) requests() []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seen(nil), p.seen...)
}

// addr is the product's host:port.
func (p *product) addr() string { return p.Listener.Addr().String() }

// keyhubAddr is env's host:port.
func keyhubAddr(env *apitest.Env) string { return env.Server.Listener.Addr().String() }

// newKey creates an API key with scopes for a new user and returns it
// with the user's access token.
func newKey(t *testing.T, env *apitest.Env, scopes []string) (api.CreatedKey, string) {
	t.Helper()
	jwt := env.Token(t, fmt.Sprintf("forwardauth-%d@example.com", rand.Int64()))
	var created api.CreatedKey
	env.Post(t, "/v1/keys", jwt, map[string]any{"name": "product", "scopes": scopes}).Want(t, http.StatusCreated, "").JSON(t, &created)
	return created, jwt
}

// answer is a gateway's answer with its body read.
type answer struct {
	Status int
	Header http.Header
	Body   string
}

// call sends a request to a gateway.
func call(t *testing.T, method, url string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}
