package jwtverify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
)

// Tuning of the JWKS fetches.
const (
	// jwksRefreshInterval is the periodic fetch: a key the auth server
	// stops publishing stops being accepted within this time.
	jwksRefreshInterval = 10 * time.Minute
	// jwksMinFetchInterval is the least time between two fetches of any
	// kind (at start, periodic, unknown kid), failed ones included. It is
	// also the most a rotation waits under a flood of forged kids: each
	// forged token can spend at most this interval's one fetch, and the
	// next fetch, whoever triggers it, sees the new key.
	jwksMinFetchInterval = 30 * time.Second
	// jwksHTTPTimeout bounds one fetch, so a black-holed auth server
	// delays start-up by at most this much.
	jwksHTTPTimeout = 5 * time.Second
	// maxJWKSBytes caps the JWKS document: Supabase's is a few hundred
	// bytes; a hostile or broken endpoint must not fill the memory.
	maxJWKSBytes = 1 << 20
)

// remoteKeys is the JWKS fetched from the auth server: an immutable
// snapshot read without locks on every token, replaced by fetches.
//
// keyfunc/jwkset's own refresh was not kept: its unknown-kid limiter (one
// fetch per 5 minutes) was shared with anyone able to send a made-up kid,
// so one forged token refused a real rotation for up to 5 minutes, and its
// periodic refresh ran beside that limiter, unbudgeted. Here every fetch,
// whatever triggers it, counts against one budget of one per
// jwksMinFetchInterval; a kid that appears while the budget is spent is
// refused at once (a client retrying gets it after at most that interval),
// and concurrent tokens share the fetch in flight.
type remoteKeys struct {
	url    string
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	// base is the verifier's long-lived context: fetches run under it, not
	// under the request that triggered them, since other requests wait on
	// the same fetch.
	base    context.Context
	current atomic.Pointer[keySnapshot]

	mu        sync.Mutex // guards what follows
	lastFetch time.Time  // when the last fetch started; zero before the first
	inFlight  *fetchCall // nil when no fetch is running
	// refusedSinceWarn counts unknown kids refused for the spent budget
	// since the last warning: one warning per interval, not one per token.
	refusedSinceWarn int
	warnedAt         time.Time
}

// keySnapshot is one fetched key set; never modified once installed.
type keySnapshot struct {
	all   []jwkset.JWK
	byKID map[string]jwkset.JWK
	// fingerprint is the JSON of the keys as fetched (compared, never
	// logged); nil before the first fetch and when it cannot be built.
	fingerprint []byte
	// generation counts the key sets installed that differed from the one
	// before: it moves with the keys, in the same atomic store.
	generation uint64
}

// fetchCall is one fetch, which any number of requests may wait on.
type fetchCall struct {
	done chan struct{} // closed when the fetch has ended
	err  error         // set before done is closed
}

// Why a JWKS lookup found no key; unknownKeyError wraps them for the logs
// and reasonOf turns them into a metric label.
var (
	errKIDNotPublished = errors.New("the JWKS does not publish this kid")
	errFetchWaitOver   = errors.New("the JWKS fetch did not finish in time")
)

// refreshBudgetSpentError refuses an unknown kid without a fetch.
type refreshBudgetSpentError struct{ nextFetchIn time.Duration }

func (e *refreshBudgetSpentError) Error() string {
	return fmt.Sprintf("the JWKS was fetched less than %s ago; the next fetch is allowed in %s", jwksMinFetchInterval, e.nextFetchIn.Round(time.Second))
}

// fetchFailedError is a fetch that failed: the last good keys stay.
type fetchFailedError struct{ err error }

func (e *fetchFailedError) Error() string { return "JWKS fetch failed: " + e.err.Error() }
func (e *fetchFailedError) Unwrap() error { return e.err }

func newRemoteKeys(ctx context.Context, rawURL string, client *http.Client, log *slog.Logger, now func() time.Time) *remoteKeys {
	if client == nil {
		client = http.DefaultClient
	}
	r := &remoteKeys{url: rawURL, client: client, log: log, now: now, base: ctx}
	r.current.Store(&keySnapshot{})
	return r
}

// fetchNow runs one fetch and waits for it (start-up).
func (r *remoteKeys) fetchNow() error {
	r.mu.Lock()
	call := r.inFlight
	if call == nil {
		call = r.startFetchLocked()
	}
	r.mu.Unlock()
	<-call.done
	return call.err
}

// runPeriodic fetches every jwksRefreshInterval until ctx ends.
func (r *remoteKeys) runPeriodic(ctx context.Context) {
	ticker := time.NewTicker(jwksRefreshInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			r.periodicFetch()
		}
	}
}

// periodicFetch fetches unless another fetch ran within the budget's
// interval (it found what this one would) or is running now. It returns
// at once with the fetch it started (nil if none), which goes on in the
// background.
func (r *remoteKeys) periodicFetch() *fetchCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight != nil || r.budgetSpentLocked(r.now()) > 0 {
		return nil
	}
	return r.startFetchLocked()
}

// key returns the JWK published under kid. On a miss it fetches the JWKS
// if the budget allows, or waits for a fetch already running, at most
// wait and never past ctx.
func (r *remoteKeys) key(ctx context.Context, kid string, wait time.Duration) (jwkset.JWK, error) {
	if j, ok := r.current.Load().byKID[kid]; ok {
		return j, nil
	}
	call, err := r.fetchFor(kid)
	if err != nil {
		return jwkset.JWK{}, err
	}
	if call != nil {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-call.done:
			if call.err != nil {
				return jwkset.JWK{}, &fetchFailedError{call.err}
			}
		case <-timer.C:
			return jwkset.JWK{}, errFetchWaitOver
		case <-ctx.Done():
			return jwkset.JWK{}, ctx.Err()
		}
	}
	if j, ok := r.current.Load().byKID[kid]; ok {
		return j, nil
	}
	return jwkset.JWK{}, errKIDNotPublished
}

// fetchFor returns the fetch to wait on for an unknown kid: the one
// running, or a new one if the budget allows. It returns nil and no error
// when a fetch that ended meanwhile installed kid.
func (r *remoteKeys) fetchFor(kid string) (*fetchCall, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.current.Load().byKID[kid]; ok {
		return nil, nil
	}
	if r.inFlight != nil {
		return r.inFlight, nil
	}
	now := r.now()
	if wait := r.budgetSpentLocked(now); wait > 0 {
		r.refusedSinceWarn++
		if r.warnedAt.IsZero() || now.Sub(r.warnedAt) >= jwksMinFetchInterval {
			// The kid comes from an unverified token: clipped, and quoted
			// by the log handler. A real rotation shows up here too, once,
			// before the next fetch picks the key up.
			r.log.Warn("token with an unknown kid refused without fetching the JWKS: the refresh budget is spent (a flood of forged tokens, or a key rotation that the next fetch will pick up)",
				"kid", clip(kid), "next_fetch_in", wait.Round(time.Second).String(),
				"refused_since_last_warning", r.refusedSinceWarn, "url", r.url)
			r.warnedAt = now
			r.refusedSinceWarn = 0
		}
		return nil, &refreshBudgetSpentError{nextFetchIn: wait}
	}
	return r.startFetchLocked(), nil
}

// budgetSpentLocked is how long until the next fetch is allowed (0: now).
func (r *remoteKeys) budgetSpentLocked(now time.Time) time.Duration {
	if r.lastFetch.IsZero() {
		return 0
	}
	return max(0, r.lastFetch.Add(jwksMinFetchInterval).Sub(now))
}

// startFetchLocked spends the budget and fetches in the background.
func (r *remoteKeys) startFetchLocked() *fetchCall {
	r.lastFetch = r.now()
	call := &fetchCall{done: make(chan struct{})}
	r.inFlight = call
	go func() {
		// Bounded by jwksHTTPTimeout and the verifier's context.
		ctx, cancel := context.WithTimeout(r.base, jwksHTTPTimeout)
		defer cancel()
		call.err = r.fetch(ctx)
		r.mu.Lock()
		r.inFlight = nil
		r.mu.Unlock()
		close(call.done)
	}()
	return call
}

// fetch downloads the JWKS and installs it. A failed fetch keeps the last
// good keys: it never empties the set.
func (r *remoteKeys) fetch(ctx context.Context) error {
	keys, err := r.download(ctx)
	if err != nil {
		if r.current.Load().fingerprint == nil {
			r.log.WarnContext(ctx, "JWKS fetch failed and no keys were fetched yet: ES256 and RS256 tokens are refused until a fetch succeeds (every 10 minutes, and on a token with an unknown kid at most every 30 s)", "url", r.url, "error", err)
		} else {
			r.log.WarnContext(ctx, "JWKS refresh failed; the last good keys stay in use", "url", r.url, "error", err)
		}
		return err
	}
	r.install(keys)
	return nil
}

// download reads and parses the JWKS. Like jwkset, it skips key types it
// does not support (the verifier only uses EC P-256 and RSA anyway) and
// refuses the whole set when a key is malformed.
func (r *remoteKeys) download(ctx context.Context) ([]jwkset.JWK, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("body is larger than %d bytes", maxJWKSBytes)
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	keys := make([]jwkset.JWK, 0, len(set.Keys))
	for i, m := range set.Keys {
		// Private: a JWKS that wrongly publishes private keys still
		// parses; checkKey keeps only their public half.
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
		if errors.Is(err, jwkset.ErrUnsupportedKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, clip(m.KID), err)
		}
		keys = append(keys, j)
	}
	return keys, nil
}

// install replaces the key set if it differs from the current one, and
// says at INFO which kids came and went.
func (r *remoteKeys) install(keys []jwkset.JWK) {
	fingerprint := fingerprintOf(keys)
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.current.Load()
	if fingerprint != nil && bytes.Equal(fingerprint, old.fingerprint) {
		return // the same keys as before
	}
	next := &keySnapshot{all: keys, byKID: make(map[string]jwkset.JWK, len(keys)), fingerprint: fingerprint, generation: old.generation + 1}
	for _, j := range keys {
		kid := j.Marshal().KID
		if _, dup := next.byKID[kid]; !dup && kid != "" {
			next.byKID[kid] = j // the first of a kid wins, as in jwkset
		}
	}
	r.current.Store(next)
	if old.fingerprint == nil && len(keys) == 0 {
		return // the first fetch found an empty set: New says what that means
	}
	added, removed := kidsDiff(old, next)
	r.log.Info("JWKS keys changed", "url", r.url, "added_kids", added, "removed_kids", removed, "keys", len(keys))
}

// kidsDiff lists the kids next has that old had not, and the reverse; a
// key replaced under the same kid is in both.
func kidsDiff(old, next *keySnapshot) (added, removed []string) {
	for kid, j := range next.byKID {
		if o, ok := old.byKID[kid]; !ok || !sameKey(o, j) {
			added = append(added, kid)
		}
	}
	for kid, j := range old.byKID {
		if n, ok := next.byKID[kid]; !ok || !sameKey(n, j) {
			removed = append(removed, kid)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

func sameKey(a, b jwkset.JWK) bool {
	return bytes.Equal(fingerprintOf([]jwkset.JWK{a}), fingerprintOf([]jwkset.JWK{b}))
}

// snapshot returns the keys installed last.
func (r *remoteKeys) snapshot() *keySnapshot { return r.current.Load() }

// fingerprintOf is the JSON of the keys as fetched, in order; nil when it
// cannot be built, and then every fetch counts as a change.
func fingerprintOf(keys []jwkset.JWK) []byte {
	marshals := make([]jwkset.JWKMarshal, len(keys))
	for i, k := range keys {
		marshals[i] = k.Marshal()
	}
	b, err := json.Marshal(marshals)
	if err != nil {
		return nil
	}
	return b
}
