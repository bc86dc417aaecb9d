package httpapi

import (
	"net/http"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/wire"
)

// handleKeyUpdate changes a key's name, metadata, allowed_cidrs or scopes.
func (s *server) handleKeyUpdate(w http.ResponseWriter, r *http.Request) {
	id, err := keyID(r)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	var req api.UpdateKeyRequest
	if err := httpjson.Decode(w, r, &req, false); err != nil {
		httpjson.Error(w, r, err)
		return
	}
	in, err := validateKeyUpdate(req, s.deps.Scopes)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	key, err := s.deps.Keys.UpdateKey(r.Context(), principal(r), id, in, s.requestMeta(r))
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, wire.KeyFrom(key, time.Now(), s.deps.Scopes))
}

func validateKeyUpdate(req api.UpdateKeyRequest, catalog *keyhub.ScopeCatalog) (keyhub.KeyUpdate, error) {
	var in keyhub.KeyUpdate
	if req.Name.Set {
		if req.Name.Null {
			return in, keyhub.Errorf(keyhub.CodeValidation, "name must not be null: leave it out to keep it")
		}
		name, err := keyhub.KeyName(req.Name.Value)
		if err != nil {
			return in, err
		}
		in.Name = &name
	}
	if req.Metadata != nil {
		metadata, err := keyhub.KeyMetadata(req.Metadata)
		if err != nil {
			return in, err
		}
		in.Metadata = metadata
	}
	if req.AllowedCIDRs.Set {
		if req.AllowedCIDRs.Null {
			return in, keyhub.Errorf(keyhub.CodeValidation, "allowed_cidrs must not be null: [] allows every network")
		}
		nets, err := keyhub.AllowedCIDRs(req.AllowedCIDRs.Value)
		if err != nil {
			return in, err
		}
		in.AllowedCIDRs = &nets
	}
	if req.Scopes.Set {
		if req.Scopes.Null {
			return in, keyhub.Errorf(keyhub.CodeValidation, "scopes must not be null: leave it out to keep them")
		}
		scopes, err := keyScopes(catalog, req.Scopes.Value, "a key holds at least one scope")
		if err != nil {
			return in, err
		}
		in.Scopes = &scopes
	}
	return in, nil
}

// handleKeyDisabled disables (or enables) a key.
func (s *server) handleKeyDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := keyID(r)
		if err != nil {
			httpjson.Error(w, r, err)
			return
		}
		key, err := s.deps.Keys.SetKeyDisabled(r.Context(), principal(r), id, disabled, s.requestMeta(r))
		if err != nil {
			httpjson.Error(w, r, err)
			return
		}
		httpjson.Write(w, http.StatusOK, wire.KeyFrom(key, time.Now(), s.deps.Scopes))
	}
}
