package keyhub

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// UsageOutcome is the class of an authenticated request made with a key:
// what GET /v1/keys/{id}/usage counts per hour.
type UsageOutcome uint8

// The outcome classes. A request counts once, as the class its admission
// ended in; a credential that did not resolve to a key (unknown, revoked,
// malformed) is not a use of any key and counts nowhere.
const (
	// UsageOK: admitted.
	UsageOK UsageOutcome = iota
	// UsageRefused: the key was recognised and the request refused by an
	// admission rule (expired, a scope it lacks, a user-session route).
	UsageRefused
	// UsageRateLimited: refused by a rate limit (429).
	UsageRateLimited
	// UsageOutcomes is the number of classes.
	UsageOutcomes
)

// UsageRetention is how long hourly usage is kept; older hours are pruned.
const UsageRetention = 90 * 24 * time.Hour

// MaxUsageRange bounds the hours one usage read may span.
const MaxUsageRange = 31 * 24 * time.Hour

// UsageCount is the number of requests of one key in one hour, by class.
type UsageCount struct {
	KeyID uuid.UUID
	// Hour is the start of the hour (UTC, on the hour).
	Hour time.Time
	// Counts is indexed by UsageOutcome.
	Counts [UsageOutcomes]int64
}

// UsageReader reads the hourly usage of keys.
type UsageReader interface {
	// KeyUsage returns the hours in [from, to) in which keyID of ownerID
	// was used, oldest first; NOT_FOUND for another owner's key.
	KeyUsage(ctx context.Context, ownerID, keyID uuid.UUID, from, to time.Time) ([]UsageCount, error)
}
