package ws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/ws"
)

func TestRevokeClosesWithin1s(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)
	c := connectKey(t, env, key)

	env.Delete(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "")
	expectClose(t, c, ws.StatusKeyRevoked, time.Second)
}

func TestRefreshClosesOldKeysConnections(t *testing.T) {
	t.Parallel()
	env, jwt, key := setup(t, nil)
	c := connectKey(t, env, key)

	env.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", jwt, nil).Want(t, http.StatusCreated, "")
	expectClose(t, c, ws.StatusKeyRevoked, time.Second)
}

func TestSubscribeReceivesOwnEventsOnly(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	alice := env.Token(t, "alice@example.com")
	bob := env.Token(t, "bob@example.com")
	c := mustDial(t, env, "/v1/ws", bearer(alice))
	readWelcome(t, c)
	send(t, c, map[string]any{"type": "subscribe", "topic": "events"})
	if m := read(t, c); m.str("type") != "subscribed" || m.str("topic") != "events" {
		t.Fatalf("subscribe: %v", m)
	}

	// Bob's event is written first; Alice's first event must be her own.
	createKey(t, env, bob, nil)
	mine := createKey(t, env, alice, nil)
	m := read(t, c)
	event, _ := m["event"].(map[string]any)
	if m.str("type") != "event" || event["key_id"] != mine.ID.String() || event["type"] != "created" {
		t.Fatalf("want alice's created event, got %v", m)
	}

	send(t, c, map[string]any{"type": "subscribe", "topic": "gossip"})
	if m := read(t, c); m.str("type") != "error" || m.str("code") != "UNKNOWN_TOPIC" {
		t.Fatalf("unknown topic: %v", m)
	}
}

func TestConnectionsListAndClose(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	alice := env.Token(t, "alice@example.com")
	bob := env.Token(t, "bob@example.com")
	key := createKey(t, env, alice, nil)

	c := mustDial(t, env, "/ws/daemon", nil)
	send(t, c, map[string]any{"type": "authenticate", "apiKey": key.Secret, "machineId": "m-42", "hostname": "build-box", "maxConcurrentTasks": 10})
	welcome := readWelcome(t, c)

	list := listConnections(t, env, alice)
	if len(list) != 1 {
		t.Fatalf("want 1 connection, got %+v", list)
	}
	got := list[0]
	if got.ID.String() != welcome.str("connection_id") || got.AuthMethod != "api_key" || got.KeyPrefix != key.Prefix ||
		got.MachineID != "m-42" || got.Hostname != "build-box" || got.RemoteAddr == "" || got.ConnectedAt.IsZero() || got.LastActivityAt.IsZero() {
		t.Fatalf("connection: %+v", got)
	}
	// The key itself may list its owner's connections (it holds ws:connect).
	if n := len(listConnections(t, env, key.Secret)); n != 1 {
		t.Fatalf("listed with the key: %d", n)
	}
	if n := len(listConnections(t, env, bob)); n != 0 {
		t.Fatalf("bob sees %d of alice's connections", n)
	}

	path := "/v1/ws/connections/" + got.ID.String()
	env.Delete(t, path, bob).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Delete(t, "/v1/ws/connections/not-a-uuid", alice).Want(t, http.StatusNotFound, "NOT_FOUND")
	env.Do(t, apitest.Request{Method: http.MethodDelete, Path: path, Cred: alice, Headers: map[string]string{"User-Agent": "ops-console/1.0"}}).
		Want(t, http.StatusNoContent, "")
	expectClose(t, c, ws.StatusClosedByOwner, time.Second)
	waitConnections(t, env, alice, 0)
	env.Delete(t, path, alice).Want(t, http.StatusNotFound, "NOT_FOUND")

	// The close is in the key's audit trail: who, from where, which connection.
	var events api.EventList
	env.Get(t, "/v1/keys/"+key.ID.String()+"/events?type=connection_closed", alice).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) != 1 {
		t.Fatalf("%d connection_closed events, want 1: %+v", len(events.Data), events.Data)
	}
	ev := events.Data[0]
	var details struct {
		ConnectionID string `json:"connection_id"`
	}
	_ = json.Unmarshal(ev.Details, &details)
	if ev.ActorUserID == nil || ev.ActorKeyID != nil || ev.IPAddress == nil || ev.UserAgent == nil || *ev.UserAgent != "ops-console/1.0" ||
		details.ConnectionID != got.ID.String() {
		t.Fatalf("connection_closed event: %+v (details %s)", ev, ev.Details)
	}
}

func TestKeyExpiryCloses4001(t *testing.T) {
	t.Parallel()
	env, _, key := setup(t, nil)
	// The API refuses lifetimes under a minute; the database does not.
	if _, err := env.Pool.Exec(context.Background(), "UPDATE api_keys SET expires_at = now() + interval '1 second' WHERE id = $1", key.ID); err != nil {
		t.Fatalf("shorten key: %v", err)
	}
	c := mustDial(t, env, "/v1/ws", bearer(key.Secret))
	welcome := readWelcome(t, c)
	if exp, err := time.Parse(time.RFC3339Nano, welcome.str("expires_at")); err != nil || time.Until(exp) > 2*time.Second {
		t.Fatalf("welcome expires_at %q should be the key's expiry", welcome.str("expires_at"))
	}
	expectClose(t, c, ws.StatusKeyRevoked, 3*time.Second)
}

// A change the feed never delivered (here: made with triggers off, so no
// NOTIFY) is found as soon as the feed is declared down, not one stale
// bound later: open sockets are re-checked at once.
func TestFeedDownRechecksAtOnce(t *testing.T) {
	t.Parallel()
	// A stale bound of a minute: only the immediate re-check can close the
	// socket within the 5 s waited for below.
	env, _, key := setup(t, map[string]string{"CHANGE_FEED_STALE_BOUND": "1m"})
	c := connectKey(t, env, key)

	ctx := context.Background()
	tx, err := env.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1`, key.ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	env.App.WebSocket.FeedDown()
	expectClose(t, c, ws.StatusKeyRevoked, 5*time.Second)
}
