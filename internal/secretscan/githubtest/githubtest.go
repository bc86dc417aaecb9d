// Package githubtest is a stand-in for GitHub's side of the secret
// scanning partner protocol, for tests: it publishes key pairs at a key
// list URL as GitHub does and signs reports as GitHub signs them.
package githubtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// GitHub is the stand-in.
type GitHub struct {
	// URL serves the key list ({"public_keys":[...]}).
	URL string
	// Fetches counts the requests for the key list.
	Fetches atomic.Int32
	// Down makes the key list answer 502.
	Down atomic.Bool

	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey
}

// New starts a stand-in publishing a key under each identifier in ids.
func New(t testing.TB, ids ...string) *GitHub {
	t.Helper()
	g := &GitHub{keys: map[string]*ecdsa.PrivateKey{}}
	for _, id := range ids {
		g.AddKey(t, id)
	}
	srv := httptest.NewServer(http.HandlerFunc(g.serveKeys))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

type entry struct {
	KeyIdentifier string `json:"key_identifier"`
	Key           string `json:"key"`
	IsCurrent     bool   `json:"is_current"`
}

func (g *GitHub) serveKeys(w http.ResponseWriter, _ *http.Request) {
	g.Fetches.Add(1)
	if g.Down.Load() {
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	var list struct {
		PublicKeys []entry `json:"public_keys"`
	}
	g.mu.Lock()
	for id, k := range g.keys {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			panic(err)
		}
		list.PublicKeys = append(list.PublicKeys, entry{KeyIdentifier: id, Key: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), IsCurrent: true})
	}
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// AddKey publishes a new key pair under id (a rotation).
func (g *GitHub) AddKey(t testing.TB, id string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.keys[id] = k
	g.mu.Unlock()
}

// Sign is the Github-Public-Key-Signature of body by the key id: base64
// of the ASN.1 ECDSA P-256 signature of body's SHA-256.
func (g *GitHub) Sign(t testing.TB, id string, body []byte) string {
	t.Helper()
	g.mu.Lock()
	k := g.keys[id]
	g.mu.Unlock()
	if k == nil {
		t.Fatalf("githubtest: no key %q", id)
	}
	digest := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}
