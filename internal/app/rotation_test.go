package app_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/postgres"
)

// daemon is a connector (api/client) running against a keyhub with its
// key in a file, as a real daemon would; it records what it went through.
type daemon struct {
	client  *client.Client
	keyFile string
	done    chan error // Run's result

	mu       sync.Mutex
	welcomes []api.WSWelcome
	rotated  []api.WSKeyRotated
	stored   []error
}

func startDaemon(t *testing.T, env *apitest.Env, secret string) *daemon {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "daemon.key")
	if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.URL, client.WithAPIKey(secret))
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{client: c, keyFile: keyFile, done: make(chan error, 1)}
	conn := c.Connector(client.ConnectorOptions{
		MachineID: "rotating-daemon", KeyFile: keyFile, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnWelcome: func(w api.WSWelcome) { d.mu.Lock(); d.welcomes = append(d.welcomes, w); d.mu.Unlock() },
		OnKeyRotated: func(r api.WSKeyRotated, stored error) {
			d.mu.Lock()
			d.rotated, d.stored = append(d.rotated, r), append(d.stored, stored)
			d.mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { d.done <- conn.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-d.done
	})
	eventually(t, 10*time.Second, func() string {
		if d.sessions() == 0 {
			return "the daemon never connected"
		}
		return ""
	})
	return d
}

func (d *daemon) sessions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.welcomes)
}

// stillRunning fails if the connector gave up.
func (d *daemon) stillRunning(t *testing.T) {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err
		t.Fatalf("the connector stopped: %v", err)
	default:
	}
}

// fileKey is the key in the daemon's key file, checking its mode.
func (d *daemon) fileKey(t *testing.T) string {
	t.Helper()
	info, err := os.Stat(d.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	raw, err := os.ReadFile(d.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// whoKey is the key id the daemon's client authenticates with now (REST).
func (d *daemon) whoKey(t *testing.T) (uuid.UUID, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	me, err := d.client.Me(ctx)
	if err != nil {
		return uuid.Nil, err
	}
	return *me.KeyID, nil
}

// notices collects every payload on the change feed's channel.
func notices(t *testing.T, env *apitest.Env) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, env.Config.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.ChangeChannel); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, n.Payload)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close(context.Background())
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// The socket is on B; the refresh arrives at A. The new secret reaches the
// daemon on B (sealed to its connection, through the change feed), never
// the caller, never PostgreSQL in the clear; the daemon stores it in its
// key file and reconnects with it, with no restart.
func TestDeliveredRotationReachesTheDaemonOnTheOtherProcess(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, nil)
	a.WaitListening(t)
	b.WaitListening(t)
	key := createKey(t, a, jwt, map[string]any{"name": "daemon", "expires_in": 3600})
	d := startDaemon(t, b, key.Secret)
	heard := notices(t, a)

	var out map[string]any
	resp := a.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", jwt, map[string]any{"grace_period": 60, "deliver": "connections"}).
		Want(t, http.StatusCreated, "")
	resp.JSON(t, &out)
	newKey := out["new_key"].(map[string]any)
	if _, ok := newKey["key"]; ok {
		t.Fatalf("the answer to the caller holds the secret: %s", resp.Body)
	}
	if out["delivered_to"] != float64(1) {
		t.Fatalf("delivered_to = %v, want 1", out["delivered_to"])
	}
	newID := uuid.MustParse(newKey["id"].(string))

	eventually(t, 10*time.Second, func() string {
		if got := d.fileKey(t); got == key.Secret {
			return "the key file still holds the old key"
		}
		if d.sessions() < 2 {
			return "the daemon has not reconnected"
		}
		return ""
	})
	d.stillRunning(t)
	secret := d.fileKey(t)
	if id, err := d.whoKey(t); err != nil || id != newID {
		t.Fatalf("the daemon's client is key %v (%v), want the new key %v", id, err, newID)
	}
	d.mu.Lock()
	rotated, stored, welcomes := d.rotated[0], d.stored[0], d.welcomes
	d.mu.Unlock()
	if rotated.Key != secret || rotated.KeyID != newID || stored != nil {
		t.Fatalf("key_rotated = {key_id %v, grace_until %v}, stored %v; want the new key", rotated.KeyID, rotated.GraceUntil, stored)
	}
	// Who rotated it, as the refreshed event records it: the user of jwt.
	var me api.Me
	a.Get(t, "/v1/me", jwt).Want(t, http.StatusOK, "").JSON(t, &me)
	if rotated.Reason != api.RotationRefresh || rotated.ActorUserID == nil || *rotated.ActorUserID != me.UserID || rotated.ActorKeyID != nil {
		t.Fatalf("key_rotated by %v (user %v, key %v), want a refresh by user %v", rotated.Reason, rotated.ActorUserID, rotated.ActorKeyID, me.UserID)
	}
	// Each welcome names the key the connection authenticated with.
	if first, last := welcomes[0], welcomes[len(welcomes)-1]; first.KeyID == nil || *first.KeyID != key.ID || last.KeyID == nil || *last.KeyID != newID {
		t.Fatalf("welcomes' keys %v then %v, want %v then %v", first.KeyID, last.KeyID, key.ID, newID)
	}
	if want := time.Now().Add(60 * time.Second); rotated.GraceUntil.Before(want.Add(-10*time.Second)) || rotated.GraceUntil.After(want) {
		t.Fatalf("grace_until %v, want about %v", rotated.GraceUntil, want)
	}
	// The new session on B is the new key's: the daemon holds a slot of it.
	eventually(t, 5*time.Second, func() string {
		var conns api.WSConnectionList
		b.Get(t, "/v1/ws/connections", jwt).Want(t, http.StatusOK, "").JSON(t, &conns)
		if len(conns.Data) != 1 || conns.Data[0].KeyPrefix != secret[:11] {
			return "connections on B: " + string(b.Get(t, "/v1/ws/connections", jwt).Body)
		}
		return ""
	})

	// What went through PostgreSQL: a sealed delivery, never the secret.
	var sawDelivery bool
	for _, payload := range heard() {
		if strings.Contains(payload, secret) || strings.Contains(payload, secret[3:]) {
			t.Fatalf("a notice holds the secret: %s", payload)
		}
		sawDelivery = sawDelivery || strings.Contains(payload, `"kind":"delivery"`)
	}
	if !sawDelivery {
		t.Fatal("no delivery notice went through the change feed")
	}
	var leaks int
	if err := a.Pool.QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM api_key_events WHERE details::text LIKE '%' || $1 || '%')
		      + (SELECT count(*) FROM ws_connections WHERE encode(handover_key, 'escape') LIKE '%' || $1 || '%')`,
		secret[3:]).Scan(&leaks); err != nil || leaks != 0 {
		t.Fatalf("rows holding the secret: %d (%v)", leaks, err)
	}
	if strings.Contains(a.Logs.String()+b.Logs.String(), secret[3:]) {
		t.Fatal("a log line holds the secret")
	}
}

// With no open connection the secret would reach nobody: the refresh is
// refused and nothing changes.
func TestDeliveredRotationWithoutAConnectionIsRefused(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, nil)
	key := createKey(t, a, jwt, map[string]any{"name": "daemon", "expires_in": 3600})
	// A relayed or dashboard socket is not the key's daemon: a JWT socket
	// on B does not count.
	connect(t, b, jwt)
	a.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", jwt, map[string]any{"grace_period": 60, "deliver": "connections"}).
		Want(t, http.StatusConflict, "NO_OPEN_CONNECTIONS")
	a.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", jwt, map[string]any{"deliver": "connections"}).
		Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	a.Post(t, "/v1/keys/"+key.ID.String()+"/refresh", jwt, map[string]any{"grace_period": 60, "deliver": "email"}).
		Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	var got api.Key
	a.Get(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.Status != "active" || got.ReplacedBy != nil {
		t.Fatalf("after the refused refresh the key is %s, replaced by %v", got.Status, got.ReplacedBy)
	}
	a.Get(t, "/v1/me", key.Secret).Want(t, http.StatusOK, "")
}

// The whole loop with no human step: a key with a short life, marked
// auto_rotate_before, used by a connector, is rotated by the sweeper (on
// whichever process sweeps) before it expires, again and again; the
// connector keeps working past the first key's expiry on the keys it was
// handed, stored in its key file.
func TestAutoRotationKeepsAConnectorWorkingPastItsKeysExpiry(t *testing.T) {
	t.Parallel()
	a, b, jwt := cluster(t, map[string]string{"KEY_MIN_LIFETIME": "1s", "EXPIRY_SWEEP_INTERVAL": "100ms"})
	a.WaitListening(t)
	b.WaitListening(t)
	key := createKey(t, a, jwt, map[string]any{"name": "short-lived", "expires_in": 5, "auto_rotate_before": 3})
	if key.AutoRotateBefore == nil || *key.AutoRotateBefore != 3 {
		t.Fatalf("auto_rotate_before = %v, want 3", key.AutoRotateBefore)
	}
	d := startDaemon(t, b, key.Secret)

	firstExpiry := *key.ExpiresAt
	eventually(t, 20*time.Second, func() string {
		if time.Now().Before(firstExpiry.Add(time.Second)) {
			return "the first key has not expired yet"
		}
		return ""
	})
	d.stillRunning(t)
	id, err := d.whoKey(t)
	if err != nil || id == key.ID {
		t.Fatalf("after the first key's expiry the daemon's client is key %v (%v)", id, err)
	}
	if got := d.fileKey(t); got == key.Secret {
		t.Fatal("the key file still holds the first key")
	}
	var first api.Key
	a.Get(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &first)
	if first.Status == "active" || first.ReplacedBy == nil {
		t.Fatalf("the first key is %s, replaced by %v", first.Status, first.ReplacedBy)
	}
	var events api.EventList
	a.Get(t, "/v1/keys/"+key.ID.String()+"/events?type=refreshed", jwt).Want(t, http.StatusOK, "").JSON(t, &events)
	if len(events.Data) != 1 || events.Data[0].ActorUserID != nil || !strings.Contains(string(events.Data[0].Details), `"reason":"auto_rotate"`) {
		t.Fatalf("refreshed events of the first key: %+v", events.Data)
	}
	d.mu.Lock()
	rotated := d.rotated[0]
	d.mu.Unlock()
	if rotated.Reason != api.RotationAutomatic || rotated.ActorUserID != nil || rotated.ActorKeyID != nil {
		t.Fatalf("key_rotated by %q (user %v, key %v), want keyhub's auto_rotate", rotated.Reason, rotated.ActorUserID, rotated.ActorKeyID)
	}
	var current api.Key
	a.Get(t, "/v1/keys/"+id.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &current)
	if current.AutoRotateBefore == nil || *current.AutoRotateBefore != 3 || current.Status != "active" {
		t.Fatalf("the daemon's current key: %+v", current)
	}
}

// The sweeper's step rotates a due key only while it has an open
// connection to hand the secret to; a socket that is not the key's (a
// dashboard session) does not count.
func TestAutoRotationNeedsAConnection(t *testing.T) {
	t.Parallel()
	// The background sweep is slow here: the test runs the step itself.
	a := apitest.New(t, map[string]string{"KEY_MIN_LIFETIME": "1s"})
	jwt := a.Token(t, "alice@example.com")
	for _, bad := range []map[string]any{
		{"name": "too long", "expires_in": 3, "auto_rotate_before": 3},
		{"name": "never expires", "auto_rotate_before": 3},
		{"name": "zero", "expires_in": 3, "auto_rotate_before": 0},
	} {
		a.Post(t, "/v1/keys", jwt, bad).Want(t, http.StatusBadRequest, "VALIDATION_FAILED")
	}
	key := createKey(t, a, jwt, map[string]any{"name": "idle", "expires_in": 30, "auto_rotate_before": 29})
	connect(t, a, jwt)
	rotate := func() int {
		n, err := a.App.Store.RotateDueKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, 10*time.Second, func() string { // due one second after its creation
		if time.Now().Before(key.CreatedAt.Add(1100 * time.Millisecond)) {
			return "not due yet"
		}
		return ""
	})
	if n := rotate(); n != 0 {
		t.Fatalf("rotated %d keys with no connection of theirs", n)
	}
	var got api.Key
	a.Get(t, "/v1/keys/"+key.ID.String(), jwt).Want(t, http.StatusOK, "").JSON(t, &got)
	if got.ReplacedBy != nil {
		t.Fatalf("a key with no connection was rotated: %+v", got)
	}

	sock := connect(t, a, key.Secret)
	if n := rotate(); n != 1 {
		t.Fatalf("rotated %d keys, want the connected one", n)
	}
	if n := rotate(); n != 0 {
		t.Fatalf("rotated %d keys again", n)
	}
	eventually(t, 5*time.Second, func() string {
		sock.mu.Lock()
		defer sock.mu.Unlock()
		for _, m := range sock.msgs {
			if m["type"] == "key_rotated" && strings.HasPrefix(m["key"].(string), "mk_") {
				return ""
			}
		}
		return "no key_rotated on the key's socket"
	})
}
