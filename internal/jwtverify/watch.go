package jwtverify

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/MicahParks/jwkset"
)

// watchedKeys is the in-memory store of the fetched JWKS. jwkset replaces
// its whole content on every refresh (periodic, or triggered by an unknown
// kid); watchedKeys compares each new set with the last one and counts the
// changes, since jwkset offers no signal of its own.
type watchedKeys struct {
	jwkset.Storage
	mu          sync.Mutex // serializes replacements, so fingerprint and generation agree
	fingerprint []byte     // the JSON of the keys installed last
	generation  atomic.Uint64
}

// KeyReplaceAll installs the new set, then moves the generation if the set
// differs: in that order, a verification that read the old set always
// started under the old generation.
func (w *watchedKeys) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.Storage.KeyReplaceAll(ctx, given); err != nil {
		// The set may be half replaced: count it as a change.
		w.fingerprint = nil
		w.generation.Add(1)
		return err
	}
	fingerprint := fingerprintOf(given)
	if fingerprint != nil && bytes.Equal(fingerprint, w.fingerprint) {
		return nil // the periodic refresh found the same keys
	}
	w.fingerprint = fingerprint
	w.generation.Add(1)
	return nil
}

// fingerprintOf is the JSON of the keys as fetched, in order (compared,
// never logged); nil when it cannot be built, and then every refresh counts
// as a change.
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
