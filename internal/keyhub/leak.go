package keyhub

import (
	"context"

	"github.com/google/uuid"
)

// Leak is a key a secret scanner found in public.
type Leak struct {
	// KeyHash is the SHA-256 of the key, hex, as stored.
	KeyHash string
	// URL is where the key was found; Source and Type are the scanner's
	// words for the place (e.g. "content") and the token (ours).
	URL    string
	Source string
	Type   string
}

// LeakOutcome is what a leak report did.
type LeakOutcome struct {
	// Known is false when no key has the hash: a false positive.
	Known bool
	KeyID uuid.UUID
	// Revoked is true when the report revoked the key (the owner's policy
	// is LeakRevoke and the key was working).
	Revoked bool
}

// LeakRecorder records reported leaks: a `leaked` event for a known key
// and, under the owner's LeakRevoke policy, its revocation with every key
// obtained through it, by the same path as DELETE /v1/keys/{id}.
type LeakRecorder interface {
	RecordLeak(ctx context.Context, leak Leak) (LeakOutcome, error)
}
