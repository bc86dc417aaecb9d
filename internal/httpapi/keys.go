package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/wire"
)

// principal returns the request's principal; routes that call it are
// behind a middleware that guarantees one.
func principal(r *http.Request) *keyhub.Principal { return auth.FromContext(r.Context()) }

func (s *server) handleKeyCreate(w http.ResponseWriter, r *http.Request) {
	var req api.CreateKeyRequest
	if err := httpjson.Decode(w, r, &req, false); err != nil {
		httpjson.Error(w, r, err)
		return
	}
	p := principal(r)
	in, err := validateCreate(req, p, s.deps.Scopes, s.deps.KeyMinLifetime, time.Now())
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	if !s.allowCreation(w, r, p) {
		return
	}
	created, err := s.deps.Keys.CreateKey(r.Context(), p, in, s.requestMeta(r))
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, api.CreatedKey{Key: wire.KeyFrom(created.Key, time.Now(), s.deps.Scopes), Secret: created.Secret})
}

// keyScopes reads the scopes a client asks a key to have (create, PATCH):
// at least one, each known (else INVALID_SCOPE). Whether the caller may
// grant them is the store's rule, judged on the acting credential.
func keyScopes(catalog *keyhub.ScopeCatalog, names []string, whenEmpty string) (keyhub.Scopes, error) {
	if len(names) == 0 {
		return 0, keyhub.Errorf(keyhub.CodeValidation, "scopes must not be empty: %s", whenEmpty)
	}
	return catalog.Parse(names)
}

func validateCreate(req api.CreateKeyRequest, p *keyhub.Principal, scopes *keyhub.ScopeCatalog, minLifetime time.Duration, now time.Time) (keyhub.CreateKeyInput, error) {
	name, err := keyhub.KeyName(req.Name)
	if err != nil {
		return keyhub.CreateKeyInput{}, err
	}
	in := keyhub.CreateKeyInput{Name: name, Scopes: p.Scopes}
	// null is absent here, as for create's other nullable fields (the
	// document says so); PATCH, whose fields may not be null, refuses it.
	if req.Metadata != nil && string(bytes.TrimSpace(req.Metadata)) != "null" {
		if in.Metadata, err = keyhub.KeyMetadata(req.Metadata); err != nil {
			return in, err
		}
	}
	if in.AllowedCIDRs, err = keyhub.AllowedCIDRs(req.AllowedCIDRs); err != nil {
		return in, err
	}
	if req.Scopes != nil {
		if in.Scopes, err = keyScopes(scopes, req.Scopes, "omit it to get all of your scopes"); err != nil {
			return in, err
		}
	}
	switch {
	case req.ExpiresAt != nil && req.ExpiresIn != nil:
		return in, keyhub.Errorf(keyhub.CodeValidation, "give expires_at or expires_in, not both")
	case req.ExpiresIn != nil:
		// Compared in seconds, before any multiplication: a huge value
		// times time.Second overflows into a small (or negative) lifetime.
		minSeconds := int64((minLifetime + time.Second - 1) / time.Second)
		if *req.ExpiresIn < minSeconds || *req.ExpiresIn > int64(keyhub.MaxKeyLifetime/time.Second) {
			return in, keyhub.Errorf(keyhub.CodeValidation, "expires_in must be between %d and %d seconds", minSeconds, int64(keyhub.MaxKeyLifetime/time.Second))
		}
		t := now.Add(time.Duration(*req.ExpiresIn) * time.Second)
		in.ExpiresAt = &t
	case req.ExpiresAt != nil:
		if !req.ExpiresAt.After(now.Add(minLifetime)) || req.ExpiresAt.Sub(now) > keyhub.MaxKeyLifetime {
			return in, keyhub.Errorf(keyhub.CodeValidation, "expires_at must be at least %s and at most ten years in the future", minLifetime)
		}
		in.ExpiresAt = req.ExpiresAt
	}
	if req.AutoRotateBefore != nil {
		if *req.AutoRotateBefore <= 0 {
			return in, keyhub.Errorf(keyhub.CodeValidation, "auto_rotate_before must be a positive number of seconds")
		}
		if in.AutoRotateBefore, err = autoRotateBefore(*req.AutoRotateBefore); err != nil {
			return in, err
		}
	}
	return in, nil
}

// autoRotateBefore reads auto_rotate_before (seconds), range-checked before
// any multiplication; whether it fits the key's lifetime is the store's
// check, which knows the lifetime.
func autoRotateBefore(secs int64) (time.Duration, error) {
	if secs < 0 || secs > int64(keyhub.MaxKeyLifetime/time.Second) {
		return 0, keyhub.Errorf(keyhub.CodeValidation, "auto_rotate_before must be between 1 and %d seconds", int64(keyhub.MaxKeyLifetime/time.Second))
	}
	return time.Duration(secs) * time.Second, nil
}

func (s *server) handleKeyList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var filter keyhub.KeyFilter
	switch status := q.Get("status"); {
	case status == "all" || !q.Has("status"):
	case keyhub.KeyStatus(status).Valid():
		filter.Status = keyhub.KeyStatus(status)
	default:
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "status must be active, revoked, expired or all"))
		return
	}
	page, err := pageOf(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	keys, next, err := s.deps.Keys.ListKeys(r.Context(), principal(r).OwnerID, filter, page)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	now := time.Now()
	out := api.KeyList{Data: make([]api.Key, 0, len(keys)), NextCursor: cursorOrNil(next)}
	for _, k := range keys {
		out.Data = append(out.Data, wire.KeyFrom(k, now, s.deps.Scopes))
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (s *server) handleKeyGet(w http.ResponseWriter, r *http.Request) {
	id, err := keyID(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	key, err := s.deps.Keys.GetKey(r.Context(), principal(r).OwnerID, id)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, wire.KeyFrom(key, time.Now(), s.deps.Scopes))
}

func (s *server) handleKeyRevoke(w http.ResponseWriter, r *http.Request) {
	id, err := keyID(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	key, already, err := s.deps.Keys.RevokeKey(r.Context(), principal(r), id, s.requestMeta(r))
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, api.RevokedKey{Key: wire.KeyFrom(key, time.Now(), s.deps.Scopes), AlreadyRevoked: already})
}

func (s *server) handleKeyRefresh(w http.ResponseWriter, r *http.Request) {
	id, err := keyID(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	var req api.RefreshKeyRequest
	if err := httpjson.Decode(w, r, &req, true); err != nil {
		httpjson.Error(w, r, err)
		return
	}
	var in keyhub.RefreshInput
	if req.Name != nil {
		if in.Name, err = keyhub.KeyName(*req.Name); err != nil {
			httpjson.Error(w, r, err)
			return
		}
	}
	if req.GracePeriod != nil {
		if *req.GracePeriod < 0 || *req.GracePeriod > int64(keyhub.MaxRefreshGrace/time.Second) {
			httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "grace_period must be between 0 and %d seconds", int64(keyhub.MaxRefreshGrace/time.Second)))
			return
		}
		in.Grace = time.Duration(*req.GracePeriod) * time.Second
	}
	switch req.Deliver {
	case "", "response":
	case "connections":
		in.Deliver = true
	default:
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, `deliver must be "response" or "connections"`))
		return
	}
	if req.AutoRotateBefore.Null {
		// "Keep the old key's" (absent) or "remove it" (0)? Say which.
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "auto_rotate_before must be a number of seconds (0 removes it), or left out to keep the old key's; not null"))
		return
	}
	if req.AutoRotateBefore.Set {
		before, err := autoRotateBefore(req.AutoRotateBefore.Value)
		if err != nil {
			httpjson.Error(w, r, err)
			return
		}
		in.AutoRotateBefore = &before
	}
	out, err := s.deps.Keys.RefreshKey(r.Context(), principal(r), id, in, s.requestMeta(r))
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	now := time.Now()
	answer := api.Refreshed{
		NewKey: api.CreatedKey{Key: wire.KeyFrom(out.New.Key, now, s.deps.Scopes), Secret: out.New.Secret},
		OldKey: wire.KeyFrom(out.Old, now, s.deps.Scopes),
	}
	if in.Deliver {
		// The secret went, sealed, to the old key's connections only.
		answer.NewKey.Secret = ""
		answer.DeliveredTo = &out.DeliveredTo
	}
	httpjson.Write(w, http.StatusCreated, answer)
}

// keyID parses the {id} of a key route; a malformed id is NOT_FOUND, as
// an id that names nothing.
func keyID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		return uuid.UUID{}, keyhub.Errorf(keyhub.CodeNotFound, "key not found")
	}
	return id, nil
}

// pageOf reads limit and cursor.
func pageOf(r *http.Request) (keyhub.Page, error) {
	q := r.URL.Query()
	page := keyhub.Page{Cursor: q.Get("cursor")}
	// Present but empty (?limit=) is refused like any other value that is
	// not a number: the documents promise an integer.
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > keyhub.MaxPageLimit {
			return page, keyhub.Errorf(keyhub.CodeValidation, "limit must be an integer from 1 to %d", keyhub.MaxPageLimit)
		}
		page.Limit = n
	}
	return page, nil
}

func cursorOrNil(c string) *string {
	if c == "" {
		return nil
	}
	return &c
}
