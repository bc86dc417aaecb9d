package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
)

// TestConnectorReportsEachExpiryWarningOnce: keyhub repeats a key's expiry
// warning after the welcome of every connection (a new daemon process must
// learn it), and the connector hands each warning to OnKeyExpiring once
// however often it reconnects; the 1-day warning after the 7-day one (same
// key, same expiry) and a rotated key's own warning are new, and reported.
func TestConnectorReportsEachExpiryWarningOnce(t *testing.T) {
	const day = 24 * time.Hour
	ctx := context.Background()
	env := newEnv(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	hc := &http.Client{Transport: tr}
	user, err := client.New(env.URL, client.WithHTTPClient(hc), client.WithToken(env.Token(t, "warned@example.com")))
	if err != nil {
		t.Fatal(err)
	}
	lifetime := int64(10 * day / time.Second)
	key, err := user.CreateKey(ctx, api.CreateKeyRequest{Name: "daemon", Scopes: []string{"ws:connect"}, ExpiresIn: &lifetime})
	if err != nil {
		t.Fatal(err)
	}
	// Made 4 days ago: 6 days from its expiry by the clock the sockets go
	// by too (keyhub looks up the warnings of a key that near its expiry).
	if err := env.Pool.QueryRow(ctx, `UPDATE api_keys SET created_at = created_at - interval '4 days', expires_at = expires_at - interval '4 days'
		WHERE id = $1 RETURNING expires_at`, key.ID).Scan(key.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.URL, client.WithHTTPClient(hc), client.WithAPIKey(key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	noLeaks(t, tr)
	reported := make(chan api.WSKeyExpiring, 16)
	d := startDaemon(t, c, client.ConnectorOptions{OnKeyExpiring: func(w api.WSKeyExpiring) { reported <- w }})
	d.welcome(t)

	// sweep warns as the sweeper would, its clock ahead by this much.
	sweep := func(ahead time.Duration) {
		t.Helper()
		if _, err := env.App.Store.RecordExpiryWarnings(ctx, time.Now().Add(ahead)); err != nil {
			t.Fatal(err)
		}
	}
	wantReport := func(warned api.CreatedKey, window time.Duration) {
		t.Helper()
		select {
		case w := <-reported:
			if w.KeyID != warned.ID || !w.ExpiresAt.Equal(*warned.ExpiresAt) || w.WindowSeconds != int64(window/time.Second) {
				t.Fatalf("reported %+v, want key %v expiring at %v, window %v", w, warned.ID, warned.ExpiresAt, window)
			}
		case <-time.After(waitLimit):
			t.Fatalf("no warning of key %v's %v window reported", warned.ID, window)
		}
		d.message(t, api.WSTypeKeyExpiring) // the same message, as OnMessage heard it
	}
	// reconnect restarts keyhub (a deploy: close 1001); the new connection
	// is told the warning again, and the connector does not report it.
	reconnect := func() {
		t.Helper()
		env.Restart(t)
		d.welcome(t)
		d.message(t, api.WSTypeKeyExpiring)
		// Messages are handled one at a time, in order: once the pong of a
		// later ping is heard, OnKeyExpiring had its turn for the warning.
		if err := d.Send(ctx, api.WSClientMessage{Type: "ping", ID: json.RawMessage(`7`)}); err != nil {
			t.Fatal(err)
		}
		d.message(t, "pong")
		select {
		case w := <-reported:
			t.Fatalf("a reconnect reported a warning again: %+v", w)
		default:
		}
	}

	sweep(0) // 6 days left: the 7-day window
	wantReport(key, 7*day)
	reconnect()
	reconnect()

	sweep(5*day + 12*time.Hour) // half a day left: the 1-day window of the same expiry
	wantReport(key, day)
	reconnect()

	// A rotated key is another key, with warnings of its own (the same
	// window, another key and expiry).
	grace := int64(3600)
	refreshed, err := user.RefreshKey(ctx, key.ID, api.RefreshKeyRequest{GracePeriod: &grace, Deliver: "connections"})
	if err != nil {
		t.Fatal(err)
	}
	d.welcome(t) // reconnected with the new key (10 days to live)
	sweep(9*day + 12*time.Hour)
	wantReport(refreshed.NewKey, day)
}
