package ws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/api"
)

// TestMessagesAreTheAPITypes: every message the server sends decodes into
// the api type the client uses, with no field the client's type lacks, and
// keeps what the protocol promises (a whoami is GET /v1/me beside the type).
func TestMessagesAreTheAPITypes(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)
	c := mustDial(t, env, "/v1/ws", bearer(key.Secret))

	var welcome api.WSWelcome
	strictRead(t, c, &welcome)
	if welcome.Type != "welcome" || welcome.Limits.MessagesPerMinute == 0 || welcome.Tier == "" {
		t.Fatalf("welcome: %+v", welcome)
	}

	exchange := func(out any) api.WSMessage {
		t.Helper()
		send(t, c, out)
		var msg api.WSMessage
		strictRead(t, c, &msg)
		return msg
	}
	if msg := exchange(api.WSClientMessage{Type: "ping", ID: json.RawMessage(`7`)}); msg.Type != "pong" || string(msg.ID) != "7" {
		t.Errorf("pong: %+v", msg)
	}
	if msg := exchange(api.WSClientMessage{Type: "whoami"}); msg.Type != "whoami" || msg.Me == nil || msg.Me.KeyID == nil || *msg.Me.KeyID != key.ID || msg.Me.Limits.RequestsPerMinute == 0 {
		t.Errorf("whoami: %+v", msg)
	}
	if msg := exchange(api.WSClientMessage{Type: "subscribe", Topic: "nothing"}); msg.Type != "error" || msg.Code != "UNKNOWN_TOPIC" || msg.Message == "" {
		t.Errorf("unknown topic: %+v", msg)
	}
	if msg := exchange(api.WSClientMessage{Type: "subscribe", Topic: "events"}); msg.Type != "subscribed" || msg.Topic != "events" || msg.Me != nil {
		t.Errorf("subscribe: %+v", msg)
	}
	// A refresh with a grace period writes events and keeps the socket.
	env.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", jwt, map[string]any{"grace_period": 600}).Want(t, http.StatusCreated, "")
	var msg api.WSMessage
	strictRead(t, c, &msg)
	if msg.Type != "event" || msg.Event == nil || msg.Event.CreatedAt.IsZero() || msg.Event.Type == "" {
		t.Errorf("event: %+v", msg)
	}
}

// strictRead reads one message into v, refusing a field v does not have.
func strictRead(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s does not decode into %T: %v", data, v, err)
	}
}
