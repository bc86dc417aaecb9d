package httpapi

import (
	"net/http"
	"regexp"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// devTokenTTL is the lifetime of a token from POST /dev/token, as
// `keyhub dev token` defaults to.
const devTokenTTL = time.Hour

// maxEmailLen is RFC 5321's limit on a forward path.
const maxEmailLen = 254

// devEmailRule is the dashboard's email field's own rule (HTML's "valid
// e-mail address", which a browser checks before the form is sent), with
// the ASCII white space a browser strips from the field allowed around
// it. openapi.yaml's pattern is this expression (FuzzDevEmailSchemaIsTheServerRule),
// so a client that validates against the document is never surprised.
var devEmailRule = regexp.MustCompile(`^[\t\n\f\r ]*([a-zA-Z0-9.!#$%&'*+/=?^_` + "`" + `{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*)[\t\n\f\r ]*$`)

// devEmail returns the address raw holds, or false: raw (as sent, at most
// maxEmailLen bytes, which the rule's ASCII makes characters too) must
// match devEmailRule.
func devEmail(raw string) (string, bool) {
	if len(raw) > maxEmailLen {
		return "", false
	}
	m := devEmailRule.FindStringSubmatch(raw)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// handleDevToken serves POST /dev/token: the dashboard's "sign in as" in
// dev mode. It is mounted only when Deps.DevTokens is set (KEYHUB_DEV=1,
// which config refuses in production): anyone who can reach it can be
// anyone, exactly like `keyhub dev token`.
func (s *server) handleDevToken(w http.ResponseWriter, r *http.Request) {
	var req api.DevTokenRequest
	if err := httpjson.Decode(w, r, &req, false); err != nil {
		httpjson.Error(w, r, err)
		return
	}
	email, ok := devEmail(req.Email)
	if !ok {
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "email must be a plain address such as you@example.com, at most %d characters", maxEmailLen))
		return
	}
	token, err := s.deps.DevTokens(email, devTokenTTL)
	if err != nil {
		httpjson.Error(w, r, keyhub.Internal(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, http.StatusOK, api.DevToken{AccessToken: token, TokenType: "bearer", ExpiresIn: int64(devTokenTTL / time.Second)})
}
