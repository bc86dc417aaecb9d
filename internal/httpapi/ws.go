package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/auth"
	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// WebSocketRoutes is the WebSocket endpoint as the REST API sees it: the
// upgrade handler (which admits through the same gate) and the registry
// of open connections behind the REST companions.
type WebSocketRoutes interface {
	// Upgrade serves GET /v1/ws and the seed's GET /ws/daemon and GET /ws.
	Upgrade() http.Handler
	// IssueTicket signs a single-use ticket for p.
	IssueTicket(p *keyhub.Principal) api.WSTicket
	// Connections lists the owner's open connections, oldest first.
	Connections(ownerID uuid.UUID) []api.WSConnection
	// ConnectionKey is the key connection id of the owner authenticated
	// with (uuid.Nil for a user session), and false when the owner has no
	// such connection.
	ConnectionKey(ownerID, id uuid.UUID) (keyID uuid.UUID, ok bool)
	// CloseConnection closes one of the owner's connections with 4002,
	// reporting false when the owner has no such connection.
	CloseConnection(ownerID, id uuid.UUID) bool
}

// handleTicketCreate serves POST /v1/ws/tickets (201) and the seed's POST
// /api/ws-ticket (200, as that service answered).
func (s *server) handleTicketCreate(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, status, s.deps.WebSocket.IssueTicket(auth.FromContext(r.Context())))
	}
}

// handleConnectionList serves GET /v1/ws/connections: the open
// connections of the caller's owner, oldest first.
func (s *server) handleConnectionList(w http.ResponseWriter, r *http.Request) {
	p := auth.FromContext(r.Context())
	httpjson.Write(w, http.StatusOK, api.WSConnectionList{Data: s.deps.WebSocket.Connections(p.OwnerID)})
}

// handleConnectionClose serves DELETE /v1/ws/connections/{id}: closes one
// of the owner's connections with 4002. Another owner's connection is
// NOT_FOUND, as if it did not exist.
func (s *server) handleConnectionClose(w http.ResponseWriter, r *http.Request) {
	p := auth.FromContext(r.Context())
	notFound := keyhub.Errorf(keyhub.CodeNotFound, "connection not found")
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		httpjson.Error(w, r, notFound)
		return
	}
	keyID, ok := s.deps.WebSocket.ConnectionKey(p.OwnerID, id)
	if !ok {
		httpjson.Error(w, r, notFound)
		return
	}
	// The audit event first: a close the trail cannot record does not
	// happen (the caller gets the error and may retry). A session's
	// connection has no key to file an event under.
	if keyID != uuid.Nil {
		if err := s.deps.Keys.RecordConnectionClosed(r.Context(), p, keyID, id, s.requestMeta(r)); err != nil {
			httpjson.Error(w, r, err)
			return
		}
	}
	if !s.deps.WebSocket.CloseConnection(p.OwnerID, id) {
		httpjson.Error(w, r, notFound) // it ended meanwhile
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
