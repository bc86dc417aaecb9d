package eckey_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/MicahParks/jwkset"

	"github.com/keyhub/keyhub/internal/eckey"
)

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParse(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	sec1, _ := x509.MarshalECPrivateKey(key)
	jwk, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Marshal: jwkset.JWKMarshalOptions{Private: true}, Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.AlgES256}})
	if err != nil {
		t.Fatal(err)
	}
	privateJWK, _ := json.Marshal(jwk.Marshal())
	publicOnly, _ := json.Marshal(jwkset.JWKMarshal{KTY: jwkset.KtyEC, CRV: jwkset.CrvP256, X: jwk.Marshal().X, Y: jwk.Marshal().Y})

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)

	for name, tc := range map[string]struct {
		data []byte
		ok   bool
	}{
		"PKCS#8 PEM":           {pemOf(t, "PRIVATE KEY", pkcs8), true},
		"SEC 1 PEM":            {pemOf(t, "EC PRIVATE KEY", sec1), true},
		"private JWK":          {privateJWK, true},
		"JWK with whitespace":  {append(append([]byte("\n  "), privateJWK...), '\n'), true},
		"public JWK":           {publicOnly, false},
		"public PEM":           {pemOf(t, "PUBLIC KEY", spki), false},
		"P-384":                {pemOf(t, "PRIVATE KEY", p384DER), false},
		"RSA":                  {pemOf(t, "PRIVATE KEY", rsaDER), false},
		"two blocks":           {append(pemOf(t, "PRIVATE KEY", pkcs8), pemOf(t, "PRIVATE KEY", pkcs8)...), false},
		"garbage":              {[]byte("hello"), false},
		"corrupt PEM":          {pemOf(t, "PRIVATE KEY", []byte{1, 2, 3}), false},
		"JWK with another alg": {[]byte(strings.Replace(string(privateJWK), `"ES256"`, `"RS256"`, 1)), false},
	} {
		got, err := eckey.Parse(tc.data)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", name, err, tc.ok)
			continue
		}
		if tc.ok && !got.Equal(key) {
			t.Errorf("%s: parsed another key", name)
		}
		if err != nil && strings.Contains(err.Error(), string(tc.data)) {
			t.Errorf("%s: the error repeats the key material", name)
		}
	}
}

// Processes starting at once share one key, written once with mode 0600,
// and a restart loads the same key (so the same kid).
func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	keys := make([]*ecdsa.PrivateKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := eckey.LoadOrCreate(dir, "k.pem")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k == nil || !k.Equal(keys[0]) {
			t.Fatal("concurrent starts ended with different keys")
		}
	}
	info, err := os.Stat(filepath.Join(dir, "k.pem"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	again, err := eckey.LoadOrCreate(dir, "k.pem")
	if err != nil || !again.Equal(keys[0]) {
		t.Fatalf("reload: %v", err)
	}
	a, _ := eckey.PublicOf(keys[0])
	b, _ := eckey.PublicOf(again)
	if a.KeyID == "" || a.KeyID != b.KeyID || string(a.JWKS) != string(b.JWKS) {
		t.Fatal("the same key got another kid")
	}
}

// The JWKS publishes the public half alone, under the kid, for ES256.
func TestPublicOfPublishesThePublicKey(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, err := eckey.PublicOf(key)
	if err != nil {
		t.Fatal(err)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(pub.JWKS, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", pub.JWKS, err)
	}
	m := set.Keys[0]
	if m.D != "" || m.KID != pub.KeyID || m.ALG != jwkset.AlgES256 || m.USE != jwkset.UseSig {
		t.Fatalf("JWK: %+v", m)
	}
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !jwk.Key().(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatal("the JWKS holds another key")
	}
}
