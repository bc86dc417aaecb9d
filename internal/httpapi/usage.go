package httpapi

import (
	"net/http"
	"time"

	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/wire"
)

// defaultUsageRange is the span of a usage read that names no from.
const defaultUsageRange = 24 * time.Hour

// handleKeyUsage answers the hourly series of a key's requests in
// [from, to): from is taken down to its hour, to up to its own (the
// current hour is part of a series that ends now).
func (s *server) handleKeyUsage(w http.ResponseWriter, r *http.Request) {
	id, err := keyID(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	from, to, err := usageRange(r, time.Now())
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	counts, err := s.deps.Usage.KeyUsage(r.Context(), principal(r).OwnerID, id, from, to)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, wire.UsageFrom(id, from, to, counts))
}

// usageRange reads from and to (RFC 3339; to defaults to now, from to a
// day before to) and returns them on the hour.
func usageRange(r *http.Request, now time.Time) (from, to time.Time, err error) {
	q := r.URL.Query()
	to = now
	for _, bound := range []struct {
		name string
		dst  *time.Time
	}{{"to", &to}, {"from", &from}} {
		if !q.Has(bound.name) { // ?from= is not a time either
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, q.Get(bound.name))
		if err != nil {
			return from, to, keyhub.Errorf(keyhub.CodeValidation, "%s must be an RFC 3339 time such as 2026-01-02T15:00:00Z", bound.name)
		}
		*bound.dst = t
	}
	if !q.Has("from") {
		from = to.Add(-defaultUsageRange)
	}
	from = from.UTC().Truncate(time.Hour)
	if t := to.UTC().Truncate(time.Hour); t.Before(to) {
		to = t.Add(time.Hour)
	} else {
		to = t
	}
	switch {
	case !from.Before(to):
		return from, to, keyhub.Errorf(keyhub.CodeValidation, "from must be before to")
	case to.Sub(from) > keyhub.MaxUsageRange:
		return from, to, keyhub.Errorf(keyhub.CodeValidation, "from and to may be at most %d days apart", keyhub.MaxUsageRange/(24*time.Hour))
	}
	return from, to, nil
}
