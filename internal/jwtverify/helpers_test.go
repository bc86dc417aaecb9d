package jwtverify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/keyhub/keyhub/internal/keyhub"
)

const (
	testIssuer = "https://project.supabase.co/auth/v1"
	testSub    = "2f6a1b0e-4c3d-4e5f-8a9b-0c1d2e3f4a5b"
	testSecret = "super-secret-jwt-token-with-at-least-32-characters-long"
	kidEC      = "ec-1"
	kidRSA     = "rsa-1"
)

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	ec      *ecdsa.PrivateKey // published in the JWKS as kidEC, and used as static key
	ecOther *ecdsa.PrivateKey // nobody trusts it: signs forgeries
	rsa     *rsa.PrivateKey   // published in the JWKS as kidRSA, and used as static key
}

var loadTestKeys = sync.OnceValue(func() testKeys {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	ecOther, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return testKeys{ec: ec, ecOther: ecOther, rsa: rk}
})

// jwkOf returns the JWK of key (public unless private is set).
func jwkOf(t testing.TB, key any, kid string, alg jwkset.ALG, private bool) jwkset.JWKMarshal {
	t.Helper()
	jwk, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{
		Marshal:  jwkset.JWKMarshalOptions{Private: private},
		Metadata: jwkset.JWKMetadataOptions{ALG: alg, KID: kid, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatalf("jwk: %v", err)
	}
	return jwk.Marshal()
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jwksJSON is the JWK Set the test server publishes.
func jwksJSON(t testing.TB, keys ...jwkset.JWKMarshal) []byte {
	t.Helper()
	return []byte(mustJSON(t, jwkset.JWKSMarshal{Keys: keys}))
}

func defaultJWKS(t testing.TB) []byte {
	k := loadTestKeys()
	return jwksJSON(t,
		jwkOf(t, &k.ec.PublicKey, kidEC, jwkset.AlgES256, false),
		jwkOf(t, &k.rsa.PublicKey, kidRSA, jwkset.AlgRS256, false),
	)
}

// rotatedJWKS is the default ES256 key plus next as "ec-2": what the JWKS
// publishes during a rotation.
func rotatedJWKS(t testing.TB, next *ecdsa.PrivateKey) []byte {
	return jwksJSON(t,
		jwkOf(t, &loadTestKeys().ec.PublicKey, kidEC, jwkset.AlgES256, false),
		jwkOf(t, &next.PublicKey, "ec-2", jwkset.AlgES256, false),
	)
}

func spkiDER(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemOf(blockType string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}))
}

// jwksServer is a local JWKS endpoint that counts its fetches and can be
// made to fail or to publish another set.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	fail    atomic.Bool
	body    atomic.Pointer[[]byte]
	// clock, when set, stamps each fetch in fetchTimes.
	clock      *fakeClock
	mu         sync.Mutex
	fetchTimes []time.Time
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	return newTimedJWKSServer(t, body, nil)
}

// newTimedJWKSServer is a jwksServer that notes the clock's time of each
// fetch.
func newTimedJWKSServer(t testing.TB, body []byte, clock *fakeClock) *jwksServer {
	t.Helper()
	s := &jwksServer{clock: clock}
	s.body.Store(&body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.clock != nil {
			s.mu.Lock()
			s.fetchTimes = append(s.fetchTimes, s.clock.Now())
			s.mu.Unlock()
		}
		if s.fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(body []byte) { s.body.Store(&body) }

// claims returns the payload of a valid user session, changed by kv pairs
// (a nil value deletes the claim).
func claims(kv ...any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss":          testIssuer,
		"aud":          "authenticated",
		"sub":          testSub,
		"exp":          now.Add(time.Hour).Unix(),
		"iat":          now.Unix(),
		"email":        "ada@example.com",
		"role":         "authenticated",
		"session_id":   "5e0c2a5a-9a53-4a8e-b2f6-2d4b9d8b1c10",
		"aal":          "aal1",
		"is_anonymous": false,
	}
	c = maps.Clone(c)
	for i := 0; i < len(kv); i += 2 {
		name := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, name)
			continue
		}
		c[name] = kv[i+1]
	}
	return c
}

// sign signs c with key; kid "" leaves the header without one.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// newVerifier builds a verifier that stops with the test.
func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// logBuffer is a concurrency-safe log sink for asserting on warnings.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var b64 = base64.StdEncoding.EncodeToString

// times returns the clock's time of every fetch so far.
func (s *jwksServer) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.fetchTimes)
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// reasonOf is the Reason of a *keyhub.Error ("" for any other error).
func reasonOf(err error) string {
	var kerr *keyhub.Error
	if errors.As(err, &kerr) {
		return kerr.Reason
	}
	return ""
}
