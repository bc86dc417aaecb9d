package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/ratelimit"
	"github.com/keyhub/keyhub/internal/wire"
)

// POST /v1/keys/verify: a backend service (the product behind keyhub)
// asks whether a key its customer presented may be used now, in the
// manner of Unkey's verifyKey and RFC 7662. Only operators may ask; a
// well-formed question is always answered 200, valid or not. The key
// passes the same gate as a request made with it (auth.Gate.AdmitKey):
// resolved through the same caches, so a cached key needs no database,
// and spending its own bucket, since the product's traffic is the key's
// traffic.

var errOperatorRequired = keyhub.Errorf(keyhub.CodeOperatorRequired,
	"verifying keys needs an operator credential (the service_role key or a VERIFY_TOKENS secret), not a tenant's key or session")

var errNotOperator = keyhub.Errorf(keyhub.CodeInvalidToken, "the bearer token is not an operator credential")

func (s *server) handleKeyVerify(w http.ResponseWriter, r *http.Request) {
	if err := s.admitOperator(r); err != nil {
		auth.WriteError(w, r, err)
		return
	}
	var req verifyRequest
	if err := httpjson.Decode(w, r, &req, false); err != nil {
		httpjson.Error(w, r, err)
		return
	}
	if req.Key == "" {
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "key is required"))
		return
	}
	var need keyhub.Scopes
	if req.Scope != nil {
		var err error
		if need, err = s.deps.Scopes.Parse([]string{*req.Scope}); err != nil {
			httpjson.Error(w, r, err)
			return
		}
	}
	// Unknown unless told: a key pinned to networks is then refused, never
	// admitted from wherever its customer happens to be.
	var client netip.Addr
	if req.ClientIP != nil {
		var err error
		if client, err = netip.ParseAddr(*req.ClientIP); err != nil || client.Zone() != "" {
			httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "client_ip must be an IPv4 or IPv6 address such as 203.0.113.7"))
			return
		}
	}
	adm, err := s.deps.Gate.AdmitKey(r.Context(), req.Key, client, auth.Need{Scope: need})
	if err != nil {
		code, ok := verdictCode(err)
		if !ok {
			httpjson.Error(w, r, err) // no verdict: the database did not answer (503)
			return
		}
		httpjson.Write(w, http.StatusOK, api.KeyRefused{Valid: false, Code: string(code)})
		return
	}
	answer := wire.KeyVerificationJSON(s.keyVerification(adm))
	httpjson.Write(w, http.StatusOK, &answer)
}

// admitOperator accepts an operator's bearer credential. Anything else
// passes the gate, which tells what it is: a tenant's valid key or session
// is 403; a missing credential 401; a wrong one 401, counted against the
// client address like every failed authentication (429 once over that
// limit).
func (s *server) admitOperator(r *http.Request) error {
	gate := s.deps.Gate
	client := gate.Client(r)
	// An address over its failure limit is refused before its credential
	// is looked at: guessing an operator's secret is guessing too.
	if err := gate.RefuseBlocked(client); err != nil {
		return err
	}
	if cred, err := auth.Credential(r.Header); err == nil && s.deps.Operators.IsOperator(cred) {
		return nil
	}
	resolve := gate.HeaderResolver(r, client)
	_, err := gate.AdmitWith(r.Context(), client, auth.Need{}, func(ctx context.Context) (*keyhub.Principal, string, error) {
		p, method, err := resolve(ctx)
		if keyhub.ErrorCode(err) == keyhub.CodeAuthNotConfigured {
			// No user sign-in on this server: the token was meant as an
			// operator's and is not one, a failed authentication (never
			// the 503 of a missing configuration).
			err = errNotOperator
		}
		return p, method, err
	})
	if err != nil {
		return err
	}
	return errOperatorRequired
}

// verdictCode is what a refused key's answer says, the only thing it
// says: ok is false for a refusal that is no verdict on the key (an
// outage).
func verdictCode(err error) (code keyhub.Code, ok bool) {
	var limited *auth.Refusal
	if errors.As(err, &limited) {
		return keyhub.CodeRateLimited, true
	}
	switch code := keyhub.ErrorCode(err); code {
	case keyhub.CodeKeyRevoked, keyhub.CodeKeyExpired, keyhub.CodeKeyDisabled, keyhub.CodeInsufficientScope, keyhub.CodeIPNotAllowed:
		return code, true
	default:
		// Unknown, malformed or not a key at all: which one is nobody's
		// business but the key holder's.
		return keyhub.CodeInvalidAPIKey, ratelimit.IsAuthFailure(err)
	}
}

// keyVerification is the answer for an admitted key: what it holds and
// its bucket after this verification.
func (s *server) keyVerification(adm auth.Admission) api.KeyVerification {
	p := adm.Principal
	v := api.KeyVerification{
		Valid: true, Code: "VALID",
		KeyID: p.KeyID, OwnerID: p.OwnerID, UserID: p.UserID, Name: p.KeyName,
		Scopes: s.deps.Scopes.Names(p.Scopes), Tier: string(p.Tier),
	}
	// Without Redis's answer, nothing is known to remain: null.
	if d := adm.Decision; adm.Spent && d.Err == nil {
		v.RateLimit = &api.VerifyRateLimit{Limit: d.Limit.Rate, Remaining: d.Remaining, ResetSeconds: d.ResetSeconds()}
	}
	if !p.ExpiresAt.IsZero() {
		t := api.Timestamp(p.ExpiresAt)
		v.ExpiresAt = &t
	}
	return v
}

// verifyRequest is the verify API's body, read as an api.VerifyKeyRequest
// (same fields, same tags), which a backend service sends on every call
// of its own: DecodeQuick reads the usual shape without encoding/json.
type verifyRequest api.VerifyKeyRequest

// DecodeQuick reads an object of plain strings (printable ASCII without
// escapes, which a key, a scope and an address are) under the exact names
// key, scope and client_ip, each at most once; anything else (escapes,
// other spellings, null, duplicates, unknown names) is left to
// encoding/json.
func (v *verifyRequest) DecodeQuick(raw []byte) bool {
	var req verifyRequest
	var seen [3]bool
	i := skipJSONSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return false
	}
	for {
		name, next, ok := plainJSONString(raw, skipJSONSpace(raw, i+1))
		if !ok {
			return false
		}
		if i = skipJSONSpace(raw, next); i == len(raw) || raw[i] != ':' {
			return false
		}
		value, next, ok := plainJSONString(raw, skipJSONSpace(raw, i+1))
		if !ok {
			return false
		}
		var field int
		switch string(name) {
		case "key":
			field, req.Key = 0, string(value)
		case "scope":
			s := string(value)
			field, req.Scope = 1, &s
		case "client_ip":
			s := string(value)
			field, req.ClientIP = 2, &s
		default:
			return false
		}
		if seen[field] {
			return false
		}
		seen[field] = true
		if i = skipJSONSpace(raw, next); i == len(raw) {
			return false
		}
		if raw[i] == '}' {
			break
		}
		if raw[i] != ',' {
			return false
		}
	}
	if skipJSONSpace(raw, i+1) != len(raw) {
		return false
	}
	*v = req
	return true
}

// skipJSONSpace is the index of the first byte of raw from i on that is
// not JSON whitespace.
func skipJSONSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// plainJSONString reads the string starting at raw[i] when it holds only
// printable ASCII and no escape (its bytes are then its value), returning
// it and the index after its closing quote.
func plainJSONString(raw []byte, i int) (value []byte, next int, ok bool) {
	if i == len(raw) || raw[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(raw); j++ {
		switch c := raw[j]; {
		case c == '"':
			return raw[i+1 : j], j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}
