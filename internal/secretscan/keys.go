// Package secretscan speaks GitHub's secret scanning partner protocol: it
// verifies that a report of leaked tokens was signed by GitHub, with the
// public keys GitHub publishes, and parses the report. What a leaked key
// means for keyhub is the store's business, not this package's.
package secretscan

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// DefaultKeysURL is where GitHub publishes the keys that sign secret
// scanning reports.
const DefaultKeysURL = "https://api.github.com/meta/public_keys/secret_scanning"

// The headers of a signed report.
const (
	HeaderKeyIdentifier = "Github-Public-Key-Identifier"
	HeaderSignature     = "Github-Public-Key-Signature"
)

// RefreshInterval is the least time between two fetches of the key list
// that an unknown key identifier triggers: anyone can send one, and each
// must not cost a request to GitHub.
const RefreshInterval = time.Minute

// maxKeyListBytes caps the key list read from the keys URL.
const maxKeyListBytes = 1 << 20

// errBadSignature is the one answer to a report that GitHub did not sign:
// unsigned, signed by a key GitHub does not publish, or signed wrongly.
// The message does not say which: a forger learns nothing from it.
var errBadSignature = keyhub.Errorf(keyhub.CodeInvalidSignature, "the report is not signed by a published GitHub secret scanning key")

// Verifier checks the signatures of reports against GitHub's published
// keys, fetched when first needed and again (at most once per
// RefreshInterval) when a report names a key it does not know.
type Verifier struct {
	url    string
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	// fetchMu serialises fetches: callers that wait for one use its keys.
	fetchMu sync.Mutex

	mu        sync.Mutex
	keys      map[string]*ecdsa.PublicKey
	fetchedAt time.Time // the last attempt, successful or not
	fetchErr  error     // the last attempt's failure, nil after a success
}

// Config assembles a Verifier.
type Config struct {
	// KeysURL serves GitHub's key list (DefaultKeysURL when empty).
	KeysURL string
	// Client fetches it (default: a client with a 10 s timeout).
	Client *http.Client
	// Now is the clock of the refresh budget (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// NewVerifier returns a Verifier; it fetches nothing until the first report.
func NewVerifier(cfg Config) *Verifier {
	if cfg.KeysURL == "" {
		cfg.KeysURL = DefaultKeysURL
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{url: cfg.KeysURL, client: cfg.Client, now: cfg.Now, log: cfg.Log, keys: map[string]*ecdsa.PublicKey{}}
}

// Verify checks that signature (base64 of an ASN.1 ECDSA P-256 signature
// of body's SHA-256) was made by the published key keyID. It answers
// INVALID_SIGNATURE when it was not, and UNAVAILABLE when the key is
// unknown and the key list could not be fetched (the sender retries).
func (v *Verifier) Verify(ctx context.Context, keyID, signature string, body []byte) error {
	if keyID == "" || signature == "" || len(keyID) > 256 || len(signature) > 512 {
		return errBadSignature
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return errBadSignature
	}
	key, err := v.key(ctx, keyID)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(key, digest[:], sig) {
		return errBadSignature
	}
	return nil
}

// key returns the published key keyID, fetching the list when keyID is
// unknown and the budget allows.
func (v *Verifier) key(ctx context.Context, keyID string) (*ecdsa.PublicKey, error) {
	if k := v.known(keyID); k != nil {
		return k, nil
	}
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	if k := v.known(keyID); k != nil { // fetched while this caller waited
		return k, nil
	}
	v.mu.Lock()
	recent := !v.fetchedAt.IsZero() && v.now().Sub(v.fetchedAt) < RefreshInterval
	lastErr := v.fetchErr
	v.mu.Unlock()
	if recent {
		if lastErr != nil {
			return nil, keyhub.Unavailable(fmt.Errorf("GitHub's secret scanning keys: %w", lastErr))
		}
		return nil, errBadSignature
	}
	keys, err := v.fetch(ctx)
	v.mu.Lock()
	v.fetchedAt, v.fetchErr = v.now(), err
	if err == nil {
		v.keys = keys
	}
	v.mu.Unlock()
	if err != nil {
		v.log.Warn("fetching GitHub's secret scanning keys failed; keeping the last ones", "url", v.url, "err", err)
		return nil, keyhub.Unavailable(fmt.Errorf("GitHub's secret scanning keys: %w", err))
	}
	if k := keys[keyID]; k != nil {
		return k, nil
	}
	return nil, errBadSignature
}

func (v *Verifier) known(keyID string) *ecdsa.PublicKey {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys[keyID]
}

// keyList is GitHub's answer at the keys URL.
type keyList struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// fetch reads the key list. Every listed key is accepted, current or not:
// GitHub keeps a retired key listed while reports signed with it may
// still arrive.
func (v *Verifier) fetch(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", v.url, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyListBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxKeyListBytes {
		return nil, fmt.Errorf("GET %s: the key list is over %d bytes", v.url, maxKeyListBytes)
	}
	var list keyList
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("GET %s: %w", v.url, err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(list.PublicKeys))
	for _, k := range list.PublicKeys {
		pub, err := parsePublicKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.KeyIdentifier, err)
		}
		keys[k.KeyIdentifier] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("GET %s: no keys listed", v.url)
	}
	return keys, nil
}

// parsePublicKey reads a PEM "PUBLIC KEY" (PKIX) that must be ECDSA P-256.
func parsePublicKey(pemText string) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return ec, nil
}
