package httpapi

import (
	"net/http"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/wire"
)

// The seed service's single-key API: thin adapters over the same store
// calls as /v1, with the same audit events, tier, tenant and scope rules.

const seedDefaultName = "default"

func (s *server) handleSeedGet(w http.ResponseWriter, r *http.Request) {
	key, err := s.deps.Keys.ActiveKeyOfUser(r.Context(), principal(r))
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, wire.SeedKeyInfoFrom(key))
}

func (s *server) handleSeedCreate(w http.ResponseWriter, r *http.Request) {
	name, err := seedName(w, r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	if name == "" {
		name = seedDefaultName
	}
	p := principal(r)
	if !s.allowCreation(w, r, p) {
		return
	}
	created, err := s.deps.Keys.CreateKey(r.Context(), p, keyhub.CreateKeyInput{Name: name, Scopes: p.Scopes, SingleKey: true}, s.requestMeta(r))
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, wire.SeedCreatedKeyFrom(created.Key, created.Secret))
}

func (s *server) handleSeedRefresh(w http.ResponseWriter, r *http.Request) {
	name, err := seedName(w, r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	p := principal(r)
	current, err := s.deps.Keys.ActiveKeyOfUser(r.Context(), p)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	out, err := s.deps.Keys.RefreshKey(r.Context(), p, current.ID, keyhub.RefreshInput{Name: name}, s.requestMeta(r))
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, api.SeedRefreshedKey{
		SeedCreatedKey:     wire.SeedCreatedKeyFrom(out.New.Key, out.New.Secret),
		PreviousKeyRevoked: out.Old.RevokedAt != nil,
	})
}

func (s *server) handleSeedRevoke(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	current, err := s.deps.Keys.ActiveKeyOfUser(r.Context(), p)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	key, _, err := s.deps.Keys.RevokeKey(r.Context(), p, current.ID, s.requestMeta(r))
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, api.SeedRevoked{Message: "API key revoked", RevokedKeyPrefix: key.Prefix})
}

// seedName reads the optional {name} body of the seed's create/refresh;
// "" when it is absent.
func seedName(w http.ResponseWriter, r *http.Request) (string, error) {
	var req api.SeedKeyRequest
	if err := httpjson.Decode(w, r, &req, true); err != nil {
		return "", err
	}
	if req.Name == nil {
		return "", nil
	}
	return keyhub.KeyName(*req.Name)
}
