package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/wire"
)

func (s *server) handleEventList(w http.ResponseWriter, r *http.Request) {
	s.listEvents(w, r, keyhub.EventFilter{})
}

func (s *server) handleKeyEvents(w http.ResponseWriter, r *http.Request) {
	id, err := keyID(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	// The key must be the owner's: another tenant's id is NOT_FOUND, not
	// an empty list that would confirm it exists somewhere.
	if _, err := s.deps.Keys.GetKey(r.Context(), principal(r).OwnerID, id); err != nil {
		httpjson.Error(w, r, err)
		return
	}
	s.listEvents(w, r, keyhub.EventFilter{KeyID: &id})
}

// eventTypeList names the event types for an error message.
var eventTypeList = func() string {
	names := make([]string, len(keyhub.EventTypes))
	for i, t := range keyhub.EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}()

// listEvents reads the filters type (comma-separated), since and until
// (RFC 3339) and the page, and answers a page of events.
func (s *server) listEvents(w http.ResponseWriter, r *http.Request, f keyhub.EventFilter) {
	q := r.URL.Query()
	for _, t := range strings.Split(q.Get("type"), ",") {
		// Spaces only, as openapi.yaml's pattern says: TrimSpace would also
		// take U+00A0 and friends, which the document refuses.
		if t = strings.Trim(t, " "); t == "" {
			continue
		}
		if !keyhub.EventType(t).Valid() {
			httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "type must be one of %s; got %q (a key's last use is its last_used_at, not an event)", eventTypeList, t))
			return
		}
		f.Types = append(f.Types, keyhub.EventType(t))
	}
	for _, bound := range []struct {
		name string
		dst  **time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if q.Has(bound.name) { // ?since= is not a time either
			t, err := time.Parse(time.RFC3339Nano, q.Get(bound.name))
			if err != nil {
				httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", bound.name))
				return
			}
			*bound.dst = &t
		}
	}
	page, err := pageOf(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	events, next, err := s.deps.Keys.ListEvents(r.Context(), principal(r).OwnerID, f, page)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	out := api.EventList{Data: make([]api.Event, 0, len(events)), NextCursor: cursorOrNil(next)}
	for _, e := range events {
		out.Data = append(out.Data, wire.EventFrom(e))
	}
	httpjson.Write(w, http.StatusOK, out)
}
