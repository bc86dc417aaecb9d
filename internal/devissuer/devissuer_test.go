package devissuer_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/devissuer"
	"github.com/keyhub/keyhub/internal/jwtverify"
	"github.com/keyhub/keyhub/internal/keyhub"
)

const testIssuer = "http://127.0.0.1/auth/v1"

func TestLoadOrCreateIsStable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state", "dev")
	first, err := devissuer.LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	second, err := devissuer.LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if first.KeyID() == "" || first.KeyID() != second.KeyID() {
		t.Fatalf("key ids %q and %q, want the same", first.KeyID(), second.KeyID())
	}
	if string(first.JWKS()) != string(second.JWKS()) {
		t.Error("JWKS changed between loads")
	}

	dirInfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := dirInfo.Mode().Perm(); perm != 0o700 {
		t.Errorf("dir mode %o, want 700", perm)
	}
	keyInfo, err := os.Stat(filepath.Join(dir, devissuer.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := keyInfo.Mode().Perm(); perm != 0o600 {
		t.Errorf("key mode %o, want 600", perm)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only the key", len(entries))
	}
}

// Processes starting at once must agree on one key.
func TestLoadOrCreateConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Go(func() {
			iss, err := devissuer.LoadOrCreate(dir)
			if err != nil {
				t.Errorf("LoadOrCreate: %v", err)
				return
			}
			kids[i] = iss.KeyID()
		})
	}
	wg.Wait()
	for _, kid := range kids {
		if kid != kids[0] {
			t.Fatalf("key ids differ: %q", kids)
		}
	}
}

func TestLoadOrCreateRejectsBadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, devissuer.KeyFile), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devissuer.LoadOrCreate(dir); err == nil {
		t.Fatal("LoadOrCreate accepted a corrupt key file")
	}
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	iss, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(set.Keys))
	}
	key := set.Keys[0]
	for name, want := range map[string]string{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": iss.KeyID()} {
		if key[name] != want {
			t.Errorf("%s = %q, want %q", name, key[name], want)
		}
	}
	for _, coord := range []string{"x", "y"} {
		b, err := base64.RawURLEncoding.DecodeString(key[coord])
		if err != nil || len(b) != 32 {
			t.Errorf("%s is not 32 base64url bytes: %q", coord, key[coord])
		}
	}
	if _, ok := key["d"]; ok {
		t.Error("JWKS publishes the private key")
	}
	// KID is the RFC 7638 thumbprint: 32 bytes of SHA-256, base64url.
	if b, err := base64.RawURLEncoding.DecodeString(iss.KeyID()); err != nil || len(b) != 32 {
		t.Errorf("KeyID %q is not a SHA-256 thumbprint", iss.KeyID())
	}

	rec := httptest.NewRecorder()
	iss.JWKSHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/auth/v1/.well-known/jwks.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(iss.JWKS()) {
		t.Errorf("handler: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	rec = httptest.NewRecorder()
	iss.JWKSHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

func TestUserIDForEmail(t *testing.T) {
	t.Parallel()
	a := devissuer.UserIDForEmail("Ada@Example.com")
	if a != devissuer.UserIDForEmail("ada@example.com") || a != devissuer.UserIDForEmail(" ada@example.com ") {
		t.Error("same email, different ids")
	}
	if a == devissuer.UserIDForEmail("bob@example.com") {
		t.Error("different emails, same id")
	}
	if a.Version() != 5 {
		t.Errorf("version %d, want 5", a.Version())
	}
	// Pinned: a dev user's id must not change between releases.
	if got, want := devissuer.UserIDForEmail("dev@keyhub.local").String(), "1c676d58-8e46-5777-b665-f6a984781fbc"; got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
}

func TestTokenRejectsBadInput(t *testing.T) {
	t.Parallel()
	iss, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		issuer, email string
		ttl           time.Duration
	}{
		{"", "a@example.com", time.Hour},
		{testIssuer, " ", time.Hour},
		{testIssuer, "a@example.com", 0},
	} {
		if _, err := iss.Token(tc.issuer, tc.email, tc.ttl); err == nil {
			t.Errorf("Token(%q, %q, %s) succeeded", tc.issuer, tc.email, tc.ttl)
		}
	}
}

// A dev token verifies through jwtverify reading the JWKS over HTTP from
// JWKSHandler, as in `make run`, including the verifier being built before
// the JWKS is served.
func TestTokenVerifiesThroughJWKS(t *testing.T) {
	t.Parallel()
	iss, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /auth/v1/.well-known/jwks.json", iss.JWKSHandler())

	// Reserve an address and build the verifier while nothing listens on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	issuer := "http://" + addr + "/auth/v1"
	// The verifier's fetch budget allows one JWKS fetch per 30 s, and the
	// one at start failed: its clock is moved past that.
	var later atomic.Bool
	v, err := jwtverify.New(t.Context(), jwtverify.Config{
		JWKSURL: issuer + "/.well-known/jwks.json",
		Issuer:  issuer,
		Leeway:  30 * time.Second,
		Now: func() time.Time {
			if later.Load() {
				return time.Now().Add(30 * time.Second)
			}
			return time.Now()
		},
	})
	if err != nil {
		t.Fatalf("New with JWKS not yet served: %v", err)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s taken again: %v", addr, err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	srv.Start()
	t.Cleanup(srv.Close)

	token, err := iss.Token(issuer, "Ada@Example.com", time.Hour)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	later.Store(true)
	claims, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if claims.Subject != devissuer.UserIDForEmail("ada@example.com") {
		t.Errorf("sub = %s", claims.Subject)
	}
	if claims.Email != "ada@example.com" || claims.Role != "authenticated" {
		t.Errorf("claims = %+v", claims)
	}
	if _, err := uuid.Parse(claims.SessionID); err != nil {
		t.Errorf("session_id %q is not a uuid", claims.SessionID)
	}
	if d := time.Until(claims.ExpiresAt); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("expires in %v, want 1h", d)
	}

	// The payload has Supabase's shape.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]any{"aud": "authenticated", "role": "authenticated", "aal": "aal1", "is_anonymous": false, "iss": issuer} {
		if raw[name] != want {
			t.Errorf("%s = %v, want %v", name, raw[name], want)
		}
	}
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(header), `"kid":"`+iss.KeyID()+`"`) || !strings.Contains(string(header), `"alg":"ES256"`) {
		t.Errorf("header = %s", header)
	}

	// A token from another dev key (another checkout) does not verify.
	other, err := devissuer.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Token(issuer, "ada@example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), foreign); keyhub.ErrorCode(err) != keyhub.CodeInvalidToken {
		t.Errorf("foreign dev token: %v, want INVALID_TOKEN", err)
	}

	// The handler serves exactly JWKS() over the wire.
	resp, err := http.Get(issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != string(iss.JWKS()) {
		t.Errorf("served JWKS differs")
	}
}
