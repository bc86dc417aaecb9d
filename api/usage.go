package api

import (
	"time"

	"github.com/google/uuid"
)

// UsageCounts are requests made with a key, by how they ended.
type UsageCounts struct {
	// OK were admitted.
	OK int64 `json:"ok"`
	// Refused were refused by an admission rule (expired key, a scope it
	// lacks, a user-session route).
	Refused int64 `json:"refused"`
	// RateLimited were refused by a rate limit (429).
	RateLimited int64 `json:"rate_limited"`
}

// UsageHour is one hour of a key's usage.
type UsageHour struct {
	// Hour is the hour's start (UTC).
	Hour time.Time `json:"hour"`
	UsageCounts
}

// KeyUsage answers GET /v1/keys/{id}/usage: every hour from From
// (inclusive) to To (exclusive), those without requests included.
type KeyUsage struct {
	KeyID  uuid.UUID   `json:"key_id"`
	From   time.Time   `json:"from"`
	To     time.Time   `json:"to"`
	Totals UsageCounts `json:"totals"`
	Hours  []UsageHour `json:"hours"`
}
