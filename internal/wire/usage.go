package wire

import (
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// UsageFrom is the hourly series of keyID from the hour from to the hour
// to (exclusive, both on the hour), with a zero row for every hour that
// counts has none of.
func UsageFrom(keyID uuid.UUID, from, to time.Time, counts []keyhub.UsageCount) api.KeyUsage {
	out := api.KeyUsage{KeyID: keyID, From: api.Timestamp(from), To: api.Timestamp(to), Hours: make([]api.UsageHour, 0, int(to.Sub(from)/time.Hour))}
	next := 0
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		row := api.UsageHour{Hour: api.Timestamp(h)}
		if next < len(counts) && counts[next].Hour.Equal(h) {
			c := counts[next].Counts
			row.UsageCounts = api.UsageCounts{OK: c[keyhub.UsageOK], Refused: c[keyhub.UsageRefused], RateLimited: c[keyhub.UsageRateLimited]}
			next++
		}
		out.Totals.OK += row.OK
		out.Totals.Refused += row.Refused
		out.Totals.RateLimited += row.RateLimited
		out.Hours = append(out.Hours, row)
	}
	return out
}
