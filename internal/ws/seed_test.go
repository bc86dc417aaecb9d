package ws_test

import (
	"github.com/keyhub/keyhub/api"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/apitest"
)

// The seed ws-ticket service's clients: POST /api/ws-ticket with the key in
// x-api-key, then GET /ws?ticket=.
func TestSeedTicketService(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	var issued api.WSTicket
	env.Do(t, apitest.Request{Method: http.MethodPost, Path: "/api/ws-ticket", Headers: map[string]string{"x-api-key": key.Secret}}).
		Want(t, http.StatusOK, "").JSON(t, &issued)
	if !strings.HasPrefix(issued.Ticket, "wst_") || issued.ExpiresIn != 30 {
		t.Fatalf("ticket response %+v", issued)
	}
	readWelcome(t, mustDial(t, env, "/ws?ticket="+url.QueryEscape(issued.Ticket), nil))
}

// The seed tiered service's clients send {"api_key":...,"client_info":{...}}
// with no type and expect its result message before anything else.
func TestSeedTieredFirstMessage(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)

	c := mustDial(t, env, "/ws/daemon", nil)
	send(t, c, map[string]any{"api_key": key.Secret, "client_info": map[string]any{"machine_id": "m-7", "hostname": "build-box", "version": "1.2.3"}})
	result := read(t, c)
	if result["success"] != true || result.str("connection_id") == "" || result.str("tier") != "free" ||
		result["rate_limit"] != float64(60) || result["session_timeout_secs"] != float64(1800) {
		t.Fatalf("seed result %v", result)
	}
	welcome := readWelcome(t, c)
	if welcome.str("connection_id") != result.str("connection_id") {
		t.Fatalf("welcome %v names another connection than %v", welcome, result)
	}
	list := waitConnections(t, env, jwt, 1)
	if list[0].MachineID != "m-7" || list[0].Hostname != "build-box" {
		t.Fatalf("connection %+v", list[0])
	}
	c.Close(websocket.StatusNormalClosure, "")
	waitConnections(t, env, jwt, 0)

	// A refusal answers in the same shape, then closes with 1008.
	bad := mustDial(t, env, "/ws/daemon", nil)
	send(t, bad, map[string]any{"api_key": "mk_notarealkeyatallnotarealkeyatallnotarealk", "client_info": map[string]any{}})
	if m := read(t, bad); m["success"] != false || m.str("error") == "" {
		t.Fatalf("refusal %v", m)
	}
	expectClose(t, bad, websocket.StatusPolicyViolation, waitLimit)
}
