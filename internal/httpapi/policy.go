package httpapi

import (
	"net/http"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// handlePolicyGet answers the owner's policy (dashboard users only).
func (s *server) handlePolicyGet(w http.ResponseWriter, r *http.Request) {
	policy, err := s.deps.Policies.OwnerPolicy(r.Context(), principal(r).OwnerID)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, policyOf(policy))
}

// handlePolicyUpdate changes the owner's policy (dashboard users only).
func (s *server) handlePolicyUpdate(w http.ResponseWriter, r *http.Request) {
	var req api.OwnerPolicyUpdate
	if err := httpjson.Decode(w, r, &req, false); err != nil {
		httpjson.Error(w, r, err)
		return
	}
	in, err := validatePolicyUpdate(req, s.deps.KeyMinLifetime)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	policy, err := s.deps.Policies.UpdateOwnerPolicy(r.Context(), principal(r), in)
	if err != nil {
		httpjson.Error(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, policyOf(policy))
}

// validatePolicyUpdate checks an update; minLifetime is the server's
// shortest key lifetime (KEY_MIN_LIFETIME): a bound below it would refuse
// every expiry a create may ask for.
func validatePolicyUpdate(req api.OwnerPolicyUpdate, minLifetime time.Duration) (keyhub.OwnerPolicyUpdate, error) {
	var in keyhub.OwnerPolicyUpdate
	if m := req.MaxKeyLifetime; m.Set {
		var lifetime time.Duration // null: no bound
		if !m.Null {
			// Compared in seconds, before multiplying: a huge value would overflow.
			minSecs, maxSecs := int64(max(minLifetime, keyhub.MinKeyLifetime)/time.Second), int64(keyhub.MaxKeyLifetime/time.Second)
			if m.Value < minSecs || m.Value > maxSecs {
				return in, keyhub.Errorf(keyhub.CodeValidation, "max_key_lifetime must be between %d and %d seconds, or null for no bound", minSecs, maxSecs)
			}
			lifetime = time.Duration(m.Value) * time.Second
		}
		in.MaxKeyLifetime = &lifetime
	}
	if req.LeakPolicy.Set {
		leak := keyhub.LeakPolicy(req.LeakPolicy.Value)
		if req.LeakPolicy.Null || !leak.Valid() {
			return in, keyhub.Errorf(keyhub.CodeValidation, "leak_policy must be %q or %q", keyhub.LeakRevoke, keyhub.LeakNotify)
		}
		in.LeakPolicy = &leak
	}
	return in, nil
}

// policyOf is the wire shape of a policy.
func policyOf(p keyhub.OwnerPolicy) api.OwnerPolicy {
	out := api.OwnerPolicy{LeakPolicy: string(p.LeakPolicy)}
	if p.MaxKeyLifetime > 0 {
		secs := int64(p.MaxKeyLifetime / time.Second)
		out.MaxKeyLifetime = &secs
	}
	return out
}
