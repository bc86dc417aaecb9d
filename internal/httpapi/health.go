package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/wire"
)

// handleHealthz says the process is alive; it touches nothing else.
func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, api.Health{Status: "ok"})
}

// handleReadyz says whether the service can do its work: it is not
// shutting down and the database answers within two seconds.
func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Ready(ctx); err != nil {
		if keyhub.ErrorCode(err) == keyhub.CodeNotReady {
			httpjson.Error(w, r, err) // says why itself (shutting down)
			return
		}
		httpjson.Logger(r.Context()).Warn("not ready", "err", err)
		httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeNotReady, "database unavailable"))
		return
	}
	httpjson.Write(w, http.StatusOK, api.Health{Status: "ready"})
}

func (s *server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(s.deps.OpenAPI)
}

func (s *server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	me := wire.MeJSON(wire.MeFrom(p, s.deps.Scopes, s.deps.RateLimits.RequestsPerMinute(p.Tier)))
	httpjson.Write(w, http.StatusOK, &me)
}
