package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/keyhub"
)

const day = 24 * time.Hour

// warnedDaemon is a connector (api/client) that records the expiry
// warnings it is handed (OnKeyExpiring) and every message's type.
type warnedDaemon struct {
	mu       sync.Mutex
	welcomed bool
	warnings []api.WSKeyExpiring
	types    []string
}

func startWarnedDaemon(t *testing.T, env *apitest.Env, secret string) *warnedDaemon {
	t.Helper()
	c, err := client.New(env.URL, client.WithAPIKey(secret))
	if err != nil {
		t.Fatal(err)
	}
	d := &warnedDaemon{}
	conn := c.Connector(client.ConnectorOptions{
		MachineID: "warned-daemon", MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnWelcome: func(api.WSWelcome) { d.mu.Lock(); d.welcomed = true; d.mu.Unlock() },
		OnMessage: func(m api.WSMessage) { d.mu.Lock(); d.types = append(d.types, m.Type); d.mu.Unlock() },
		OnKeyExpiring: func(w api.WSKeyExpiring) {
			d.mu.Lock()
			d.warnings = append(d.warnings, w)
			d.mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- conn.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually(t, 10*time.Second, func() string {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.welcomed {
			return "the daemon never connected"
		}
		return ""
	})
	return d
}

func (d *warnedDaemon) heard() ([]api.WSKeyExpiring, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]api.WSKeyExpiring(nil), d.warnings...), append([]string(nil), d.types...)
}

// The sweep runs on process A (its clock moved 3.5 days on: the key,
// made to last 10 days, is inside its 7-day window); the daemon holding
// the key is connected to process B. It hears key_expiring through B's
// change feed, once, while a daemon of another key hears nothing; a
// dashboard subscribed to events on B sees the `expiring` event live, and
// GET /v1/events on B lists it.
func TestExpiryWarningReachesTheDaemonOnTheOtherProcess(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, nil)
	a.WaitListening(t)
	b.WaitListening(t)
	// Room for two keys (the free tier holds one).
	a.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "")
	if _, err := a.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team'"); err != nil {
		t.Fatal(err)
	}
	key := createKey(t, a, jwt, map[string]any{"name": "warned", "expires_in": 10 * 86400})
	other := createKey(t, a, jwt, map[string]any{"name": "other", "expires_in": 30 * 86400})
	warned := startWarnedDaemon(t, b, key.Secret)
	bystander := startWarnedDaemon(t, b, other.Secret)

	dashboard := connect(t, b, jwt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, dashboard.conn, map[string]any{"type": "subscribe", "topic": "events"}); err != nil {
		t.Fatal(err)
	}
	dashboard.waitFor(t, "subscribed to events", func(m map[string]any) bool { return m["type"] == "subscribed" })

	n, err := a.App.Store.RecordExpiryWarnings(ctx, time.Now().Add(3*day+12*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("the sweep on A wrote %d warnings (%v), want 1", n, err)
	}
	eventually(t, 10*time.Second, func() string {
		if got, _ := warned.heard(); len(got) == 0 {
			return "the daemon on B never heard key_expiring"
		}
		return ""
	})
	got, types := warned.heard()
	if len(got) != 1 || got[0].Type != api.WSTypeKeyExpiring || got[0].KeyID != key.ID ||
		key.ExpiresAt == nil || !got[0].ExpiresAt.Equal(api.Timestamp(*key.ExpiresAt)) {
		t.Fatalf("key_expiring = %+v, want one for key %v expiring at %v", got, key.ID, key.ExpiresAt)
	}
	if len(types) != 1 || types[0] != api.WSTypeKeyExpiring {
		t.Fatalf("OnMessage heard %v, want the key_expiring only", types)
	}
	dashboard.waitFor(t, "the live expiring event", func(m map[string]any) bool {
		e, _ := m["event"].(map[string]any)
		return m["type"] == "event" && e["type"] == "expiring" && e["key_id"] == key.ID.String()
	})

	var events api.EventList
	b.Get(t, "/v1/events?type=expiring", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) != 1 || events.Data[0].KeyID != key.ID {
		t.Fatalf("GET /v1/events?type=expiring on B: %+v", events.Data)
	}
	var details struct {
		ExpiresAt     time.Time `json:"expires_at"`
		WindowSeconds int64     `json:"window_seconds"`
	}
	if err := json.Unmarshal(events.Data[0].Details, &details); err != nil || details.WindowSeconds != 7*86400 || !details.ExpiresAt.Equal(*key.ExpiresAt) {
		t.Fatalf("details %s (%v), want the 7-day window of %v", events.Data[0].Details, err, key.ExpiresAt)
	}

	// The same sweep again, now on B: nothing new, for anyone.
	if n, err := b.App.Store.RecordExpiryWarnings(ctx, time.Now().Add(3*day+13*time.Hour)); err != nil || n != 0 {
		t.Fatalf("a second sweep wrote %d warnings (%v), want 0", n, err)
	}
	// Anything sent would arrive while the 1-day warning travels.
	if n, err := a.App.Store.RecordExpiryWarnings(ctx, time.Now().Add(9*day+12*time.Hour)); err != nil || n != 1 {
		t.Fatalf("the 1-day sweep wrote %d warnings (%v), want 1", n, err)
	}
	eventually(t, 10*time.Second, func() string {
		if got, _ := warned.heard(); len(got) < 2 {
			return fmt.Sprintf("the daemon heard %d warnings, want 2", len(got))
		}
		return ""
	})
	if got, _ := warned.heard(); len(got) != 2 {
		t.Fatalf("the daemon heard %+v, want two warnings", got)
	}
	if got, types := bystander.heard(); len(got) != 0 || len(types) != 0 {
		t.Fatalf("the daemon of another key heard %+v / %v", got, types)
	}
}

// An `expiring` event is delivered, signed, to the webhooks that want it,
// and to no other.
func TestExpiryWarningIsDeliveredToWebhooks(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"WEBHOOKS_ALLOW_INSECURE": "1", "WEBHOOKS_POLL_INTERVAL": "10ms"})
	jwt := env.Token(t, "alice@example.com")
	rcv := apitest.NewWebhookReceiver(t, "")
	for path, types := range map[string][]string{"/expiring": {"expiring"}, "/revoked": {"revoked"}} {
		var w api.CreatedWebhook
		env.Post(t, "/v1/webhooks", jwt, map[string]any{"url": rcv.Server.URL + path, "event_types": types}).
			Want(t, http.StatusCreated, "").JSON(t, &w)
		rcv.Expect(path, w.Secret)
	}
	key := createKey(t, env, jwt, map[string]any{"name": "warned", "expires_in": 10 * 86400})
	if n, err := env.App.Store.RecordExpiryWarnings(context.Background(), time.Now().Add(9*day+12*time.Hour)); err != nil || n != 1 {
		t.Fatalf("the sweep wrote %d warnings (%v), want 1", n, err)
	}
	// The outbox rows were written with the event: what is there now is
	// every delivery there will be.
	var outbox int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM webhook_deliveries").Scan(&outbox); err != nil || outbox != 1 {
		t.Fatalf("%d deliveries in the outbox (%v), want 1", outbox, err)
	}
	eventually(t, 10*time.Second, func() string {
		if len(rcv.Received()) == 0 {
			return "no webhook arrived"
		}
		return ""
	})
	got := rcv.Received()
	if len(got) != 1 || got[0].Path != "/expiring" || !got[0].Valid {
		t.Fatalf("received %+v, want one signed delivery to /expiring", got)
	}
	var e api.Event
	if err := json.Unmarshal(got[0].Body, &e); err != nil {
		t.Fatal(err)
	}
	var details struct {
		WindowSeconds int64 `json:"window_seconds"`
	}
	if e.Type != "expiring" || e.KeyID != key.ID || json.Unmarshal(e.Details, &details) != nil || details.WindowSeconds != 86400 {
		t.Fatalf("delivered %s, want the key's 1-day expiring event", got[0].Body)
	}
}

// The running sweeper (EXPIRY_SWEEP_INTERVAL) prunes the expiry-warnings
// ledger: a row of an expiry two days past goes, the row of the key's
// own expiry stays.
func TestTheSweeperPrunesTheExpiryWarningsLedger(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, map[string]string{"EXPIRY_SWEEP_INTERVAL": "100ms"})
	jwt := env.Token(t, "ledger@example.com")
	key := createKey(t, env, jwt, map[string]any{"name": "warned", "expires_in": 10 * 86400})
	if _, err := env.Pool.Exec(context.Background(), `
		INSERT INTO api_key_expiry_warnings (api_key_id, expires_at, window_seconds, warned_at)
		VALUES ($1, now() - interval '2 days', 86400, now() - interval '3 days'), ($1, $2, 604800, now())`, key.ID, *key.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		var stale, kept int
		if err := env.Pool.QueryRow(context.Background(), `
			SELECT count(*) FILTER (WHERE expires_at < now()), count(*) FILTER (WHERE expires_at > now())
			FROM api_key_expiry_warnings`).Scan(&stale, &kept); err != nil {
			return err.Error()
		}
		if kept != 1 {
			return fmt.Sprintf("%d rows of the key's own expiry, want 1", kept)
		}
		if stale != 0 {
			return "the stale row is still in the ledger"
		}
		return ""
	})
}

// pingedTypes sends a ping and, once its pong has arrived, returns the
// types of every message the socket received after its welcome, in order:
// what came before the pong is all the server sent until then.
func (s *socket) pingedTypes(t *testing.T, id int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, s.conn, map[string]any{"type": "ping", "id": id}); err != nil {
		t.Fatalf("ping: %v", err)
	}
	for ctx.Err() == nil {
		s.mu.Lock()
		types := make([]string, 0, len(s.msgs))
		ponged := false
		for _, m := range s.msgs {
			types = append(types, fmt.Sprint(m["type"]))
			ponged = ponged || (m["type"] == "pong" && m["id"] == float64(id))
		}
		s.mu.Unlock()
		if ponged {
			return types
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no pong %d within 10s", id)
	return nil
}

// A daemon that connects after its key's expiry warning was written is
// told right after the welcome, once, on any process (the ledger is in
// the database); the keys the sweep did not warn (one further from its
// expiry, one born inside its 7-day window and not yet in its 1-day one)
// are told nothing. The sweep's event heard late (after the lookup) is
// not sent twice; the next window's warning is.
func TestADaemonConnectingAfterTheWarningIsTold(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, nil)
	a.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "")
	if _, err := a.Pool.Exec(context.Background(), "UPDATE owners SET tier = 'team'"); err != nil {
		t.Fatal(err)
	}
	warned := createKey(t, a, jwt, map[string]any{"name": "warned", "expires_in": 10 * 86400})
	short := createKey(t, a, jwt, map[string]any{"name": "short", "expires_in": 5 * 86400})
	far := createKey(t, a, jwt, map[string]any{"name": "far", "expires_in": 30 * 86400})
	ctx := context.Background()
	// warned was made 4 days ago: 6 days from its expiry by the clock the
	// sockets go by, as by the sweep's.
	var expiresAt time.Time
	if err := a.Pool.QueryRow(ctx, `UPDATE api_keys SET created_at = created_at - interval '4 days', expires_at = expires_at - interval '4 days'
		WHERE id = $1 RETURNING expires_at`, warned.ID).Scan(&expiresAt); err != nil {
		t.Fatal(err)
	}
	warned.ExpiresAt = &expiresAt
	if n, err := a.App.Store.RecordExpiryWarnings(ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("the sweep on A wrote %d warnings (%v), want 1", n, err)
	}

	late := connect(t, b, warned.Secret)
	if got := late.pingedTypes(t, 1); !slices.Equal(got, []string{"key_expiring", "pong"}) {
		t.Fatalf("after the welcome, the late daemon got %v, want key_expiring then the pong", got)
	}
	late.mu.Lock()
	first := late.msgs[0]
	late.mu.Unlock()
	expires, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(first["expires_at"]))
	if first["key_id"] != warned.ID.String() || !expires.Equal(api.Timestamp(*warned.ExpiresAt)) {
		t.Fatalf("key_expiring %v, want key %v expiring at %v", first, warned.ID, warned.ExpiresAt)
	}
	for name, secret := range map[string]string{"short": short.Secret, "far": far.Secret} {
		if got := connect(t, b, secret).pingedTypes(t, 1); !slices.Equal(got, []string{"pong"}) {
			t.Fatalf("the daemon of %s got %v, want only the pong", name, got)
		}
	}

	// The sweep's event, heard by B only now (the feed lagging behind the
	// lookup): nothing new for the late daemon.
	var owner uuid.UUID
	if err := a.Pool.QueryRow(ctx, "SELECT owner_id FROM api_keys WHERE id = $1", warned.ID).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	details, err := json.Marshal(map[string]any{"expires_at": warned.ExpiresAt, "window_seconds": 7 * 86400})
	if err != nil {
		t.Fatal(err)
	}
	b.App.WebSocket.EventWritten(keyhub.Event{ID: -1, Type: keyhub.EventExpiring, KeyID: warned.ID, OwnerID: owner, Details: details})
	if got := late.pingedTypes(t, 2); !slices.Equal(got, []string{"key_expiring", "pong", "pong"}) {
		t.Fatalf("after the late event, the daemon got %v, want nothing new", got)
	}
	// The 1-day window is a new warning.
	if n, err := a.App.Store.RecordExpiryWarnings(ctx, time.Now().Add(5*day+12*time.Hour)); err != nil || n != 1 {
		t.Fatalf("the 1-day sweep wrote %d warnings (%v), want 1", n, err)
	}
	eventually(t, 10*time.Second, func() string {
		late.mu.Lock()
		defer late.mu.Unlock()
		var warnings int
		for _, m := range late.msgs {
			if m["type"] == "key_expiring" {
				warnings++
			}
		}
		if warnings != 2 {
			return fmt.Sprintf("the late daemon heard %d warnings, want 2 (the 7-day one, then the 1-day one)", warnings)
		}
		return ""
	})
}
