package httpapi

import (
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// devTokenTTL is the lifetime of a token from POST /dev/token, as
// `keyhub dev token` defaults to.
const devTokenTTL = time.Hour

// maxEmailLen is RFC 5321's limit on a forward path.
const maxEmailLen = 254

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
	// The length is checked as sent, in characters, as openapi.yaml's
	// maxLength counts; and again in bytes, RFC 5321's unit.
	email := strings.TrimSpace(req.Email)
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email || len(email) > maxEmailLen || utf8.RuneCountInString(req.Email) > maxEmailLen {
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeValidation, "email must be a plain address such as you@example.com"))
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
