package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
)

const wsHelp = `usage: mk ws <command> [flags]

commands:
  connections [-q]       the account's open WebSocket connections (-q: IDs only)
  close ID               close one (the daemon gets close code 4002 and stops)

Both need the ws:connect scope. Add --json for the API's JSON.
`

func (m *cli) ws(ctx context.Context, args []string) error {
	return m.subcommand(ctx, "ws", wsHelp, args, map[string]func(context.Context, []string) error{
		"connections": m.wsConnections, "close": m.wsClose,
	})
}

const wsConnectionsHelp = `usage: mk ws connections [-q] [--json]

Lists the account's open WebSocket connections, oldest first
(GET /v1/ws/connections). -q prints only the IDs, one per line.
`

func (m *cli) wsConnections(ctx context.Context, args []string) error {
	fs := m.flags("mk ws connections", wsConnectionsHelp)
	quiet := quietFlag(fs)
	if _, err := m.parse(fs, args); err != nil {
		return err
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	return call(ctx, m, c.ListWSConnections, func(list api.WSConnectionList) {
		if *quiet {
			for _, w := range list.Data {
				fmt.Fprintln(m.stdout, w.ID)
			}
			return
		}
		rows := make([][]string, 0, len(list.Data))
		for _, w := range list.Data {
			rows = append(rows, []string{w.ID.String(), w.AuthMethod, orDash(w.KeyPrefix), orDash(w.MachineID), orDash(w.Hostname), w.RemoteAddr, when(&w.ConnectedAt), when(&w.LastActivityAt)})
		}
		m.table([]string{"ID", "AUTH", "KEY", "MACHINE", "HOSTNAME", "REMOTE", "CONNECTED", "LAST ACTIVITY"}, rows)
	})
}

const wsCloseHelp = `usage: mk ws close ID

Closes one of the account's WebSocket connections
(DELETE /v1/ws/connections/{id}); its daemon gets close code 4002 and,
if it uses keyhub's connector, does not reconnect. Prints nothing with --json.
`

func (m *cli) wsClose(ctx context.Context, args []string) error {
	pos, err := m.parse(m.flags("mk ws close", wsCloseHelp), args, "ID")
	if err != nil {
		return err
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	if err := c.CloseWSConnection(ctx, pos[0]); err != nil {
		return err
	}
	if !m.json {
		fmt.Fprintf(m.stdout, "closed connection %s\n", pos[0])
	}
	return nil
}

const connectHelp = `usage: mk connect [--auth header|ticket|message] [--machine-id ID] [--hostname NAME] [--key-file FILE] [--events=false] [--json]

A minimal daemon: holds a WebSocket to keyhub open with the api/client
connector and prints what happens: the welcome (tier, limits, session end),
audit events (subscribed unless --events=false; needs events:read), expiry
warnings, each once however often it reconnects ("key mk_AbCdEfGh…
expires in 6 days (2026-12-12 10:00 UTC)"),
server errors, disconnects and reconnects. It reconnects with backoff after
network errors, server restarts (1001) and session expiry (4000), and stops
on 4001 (key revoked or expired; exit code 3), 4002 (closed by the owner;
exit code 1) and policy closes (1008). Interrupt it (Ctrl-C) to close
cleanly (1000; exit code 0). The key needs the ws:connect scope.

Zero-touch rotation: when the key is refreshed with deliver "connections"
(or by its auto_rotate_before), keyhub sends the new key over this
connection; mk connect stores it where the key came from (--key-file, or
the credentials of mk login; mode 0600, replaced atomically) and
reconnects with it at once, without a restart. A key from KEYHUB_API_KEY
cannot be stored: it is used until mk connect stops, with a warning.
Each rotation is one line saying who rotated the key ("key rotated by
keyhub (auto_rotate_before): now using key ..."); the rotation's own
audit events (refreshed, created) are not printed beside it.

  --auth        header: the key in the upgrade's Authorization header (default);
                ticket: a single-use ticket from POST /v1/ws/tickets;
                message: the key in the first message (the seed daemon's)
  --machine-id, --hostname
                how GET /v1/ws/connections lists this daemon (hostname
                defaults to this machine's)
  --key-file    read the key from FILE (its first line) and store a
                rotated key back into it
  --json        print every server message as it arrives (the welcome
                too), one per line; connection changes go to standard error
`

func (m *cli) connect(ctx context.Context, args []string) error {
	fs := m.flags("mk connect", connectHelp)
	authMode := fs.String("auth", "header", "header, ticket or message")
	host, _ := os.Hostname()
	opts := client.ConnectorOptions{}
	fs.StringVar(&opts.MachineID, "machine-id", "", "this daemon's machine id")
	fs.StringVar(&opts.Hostname, "hostname", host, "this daemon's host name")
	events := fs.Bool("events", true, "subscribe to audit events")
	keyFile := fs.String("key-file", "", "read the key from FILE and store a rotated one there")
	if _, err := m.parse(fs, args); err != nil {
		return err
	}
	switch *authMode {
	case "header":
		opts.Auth = client.AuthHeader
	case "ticket":
		opts.Auth = client.AuthTicket
	case "message":
		opts.Auth = client.AuthFirstMessage
	default:
		return usageErrorf("--auth must be header, ticket or message")
	}
	c, key, storeKey, err := m.connectClient(*keyFile, &opts)
	if err != nil {
		return err
	}
	// Connection changes are the output, unless --json makes the
	// messages the output.
	status := m.stdout
	if m.json {
		status = m.stderr
	}
	// The callbacks run one at a time (the connector's Run goroutine):
	// own needs no lock.
	own := ownKeys{}
	opts.OnKeyRotated = func(rotated api.WSKeyRotated, stored error) {
		if stored == nil {
			stored = storeKey(rotated.Key)
		}
		key = rotated.Key
		own[rotated.KeyID] = true
		fmt.Fprintln(status, rotationLine(rotated))
		if stored != nil {
			fmt.Fprintf(m.stderr, "mk: warning: the rotated key is in use but was not stored: %v\n", stored)
		}
	}
	// With --json the warning's JSON is the output (OnMessage), and this
	// line goes to standard error with the connection changes.
	opts.OnKeyExpiring = func(warning api.WSKeyExpiring) {
		fmt.Fprintln(status, expiryWarningLine(key, warning, time.Now()))
	}
	opts.OnWelcome = func(w api.WSWelcome) {
		if w.KeyID != nil {
			own[*w.KeyID] = true
		}
		if m.json {
			m.printJSON(w.Raw)
		}
		fmt.Fprintf(status, "connected: connection %s, tier %s (%d connections, %d messages/min), session ends %s\n",
			w.ConnectionID, w.Tier, w.Limits.MaxConnections, w.Limits.MessagesPerMinute, when(&w.ExpiresAt))
	}
	opts.OnDisconnect = func(err error, retryIn time.Duration) {
		fmt.Fprintf(status, "disconnected: %v; reconnecting in %v\n", err, retryIn.Round(time.Millisecond))
	}
	opts.OnMessage = func(msg api.WSMessage) {
		if m.json {
			m.printJSON(msg.Raw)
			return
		}
		switch {
		case msg.Type == "event" && msg.Event != nil:
			if own.rotationEvent(msg.Event) {
				return // the rotation's own line says it
			}
			fmt.Fprintf(m.stdout, "event: %s %s key %s\n", when(&msg.Event.CreatedAt), msg.Event.Type, msg.Event.KeyID)
		case msg.Type == "subscribed" || msg.Type == "unsubscribed":
			fmt.Fprintf(m.stdout, "%s: %s\n", msg.Type, msg.Topic)
		case msg.Type == "error":
			fmt.Fprintf(m.stdout, "server error: %s: %s\n", msg.Code, msg.Message)
		case msg.Type == api.WSTypeKeyExpiring:
			// OnKeyExpiring prints it, in words.
		default:
			fmt.Fprintf(m.stdout, "%s\n", msg.Raw)
		}
	}
	conn := c.Connector(opts)
	if *events {
		if err := conn.Subscribe(ctx, "events"); err != nil {
			return err
		}
	}
	if err := conn.Run(ctx); err != nil {
		return err
	}
	fmt.Fprintln(status, "closed")
	return nil
}

// connectClient is mk connect's client, the key it authenticates with
// ("" for a token), and where it keeps a rotated key: --key-file (its key
// is used, and the connector rewrites the file itself), else the
// credentials of mk login when they are what authenticated; a key from
// the environment cannot be stored, which store reports.
func (m *cli) connectClient(keyFile string, opts *client.ConnectorOptions) (c *client.Client, key string, store func(key string) error, err error) {
	stored, err := m.loadCredentials()
	if err != nil {
		return nil, "", nil, err
	}
	if keyFile != "" {
		raw, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, "", nil, fmt.Errorf("read --key-file: %w", err)
		}
		key, _, _ := strings.Cut(string(raw), "\n")
		if key = strings.TrimSpace(key); !strings.HasPrefix(key, "mk_") {
			return nil, "", nil, usageErrorf("--key-file %s does not start with an mk_ key", keyFile)
		}
		if c, err = m.newClient(m.serverURL(stored), client.WithAPIKey(key)); err != nil {
			return nil, "", nil, err
		}
		opts.KeyFile = keyFile
		return c, key, func(string) error { return nil }, nil
	}
	if c, err = m.clientWith(stored); err != nil {
		return nil, "", nil, err
	}
	key, _ = m.credential(stored)
	if m.getenv("KEYHUB_API_KEY") != "" || m.getenv("KEYHUB_TOKEN") != "" {
		return c, key, func(string) error {
			return errors.New("the key came from the environment (KEYHUB_API_KEY); use --key-file to keep rotated keys")
		}, nil
	}
	return c, key, func(key string) error {
		stored, err := m.loadCredentials()
		if err != nil {
			return err
		}
		stored.APIKey = key
		_, err = m.saveCredentials(stored)
		return err
	}, nil
}

// ownKeys are the keys mk connect has connected with or been handed.
//
// Each zero-touch rotation is printed once, from key_rotated (rotationLine):
// the one message sure to reach the daemon, events:read or not. The audit
// events of that rotation (the old key's refreshed, the replacement's
// created) are written in the same transaction and race key_rotated to the
// socket: they arrive before it on the old connection, or after it on the
// new one when the replica holding the socket reads them late, or not at
// all (the connector leaves the old connection as soon as it has the new
// key, and the new one subscribes after they were sent). So they are not
// printed, whichever comes first; other keys' events, and a refresh of this
// key without delivery (its old key then stops at the grace's end), are.
type ownKeys map[uuid.UUID]bool

// rotationEvent reports whether e records a delivered rotation of one of
// these keys: its refreshed event, naming the replacement (then also one
// of these keys: it is or will be handed over), or the replacement's
// created event.
func (own ownKeys) rotationEvent(e *api.Event) bool {
	var details struct {
		ReplacedBy *uuid.UUID `json:"replaced_by"`
		Delivered  *int       `json:"delivered_to_connections"`
		Replaces   *uuid.UUID `json:"replaces"`
	}
	if json.Unmarshal(e.Details, &details) != nil {
		return false
	}
	switch e.Type {
	case "refreshed":
		if own[e.KeyID] && details.ReplacedBy != nil && details.Delivered != nil {
			own[*details.ReplacedBy] = true
			return true
		}
	case "created":
		return own[e.KeyID] && details.Replaces != nil && own[*details.Replaces]
	}
	return false
}

// rotationLine is a key_rotated message in words, never its secret: who
// rotated the key, the key in use now and until when the old one works.
func rotationLine(rotated api.WSKeyRotated) string {
	by := ""
	switch {
	case rotated.Reason == api.RotationAutomatic:
		by = " by keyhub (auto_rotate_before)"
	case rotated.ActorKeyID != nil && rotated.ActorUserID != nil:
		by = fmt.Sprintf(" by user %s with key %s (refresh)", rotated.ActorUserID, rotated.ActorKeyID)
	case rotated.ActorUserID != nil:
		by = fmt.Sprintf(" by user %s (refresh)", rotated.ActorUserID)
	}
	return fmt.Sprintf("key rotated%s: now using key %s; the old key works until %s", by, rotated.KeyID, when(&rotated.GraceUntil))
}

// expiryWarningLine is a key_expiring message in words, e.g.
// "key mk_AbCdEfGh… expires in 6 days (2026-12-12 10:00 UTC)": the key by
// its prefix (mk_ and 8 characters, as keyhub lists keys; by the message's
// key id when the key is not known), the time left at now, rounded down.
func expiryWarningLine(key string, warning api.WSKeyExpiring, now time.Time) string {
	const shown = len("mk_") + 8
	name := warning.KeyID.String()
	if strings.HasPrefix(key, "mk_") && len(key) > shown {
		name = key[:shown] + "…"
	}
	at := warning.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")
	left := warning.ExpiresAt.Sub(now)
	if left <= 0 {
		return fmt.Sprintf("key %s expired (%s)", name, at)
	}
	return fmt.Sprintf("key %s expires in %s (%s)", name, timeLeft(left), at)
}

// timeLeft is a positive duration in its largest whole unit, rounded
// down: "6 days", "1 hour", "less than a minute".
func timeLeft(d time.Duration) string {
	for _, unit := range []struct {
		name string
		size time.Duration
	}{{"day", 24 * time.Hour}, {"hour", time.Hour}, {"minute", time.Minute}} {
		if n := int64(d / unit.size); n == 1 {
			return "1 " + unit.name
		} else if n > 1 {
			return fmt.Sprintf("%d %ss", n, unit.name)
		}
	}
	return "less than a minute"
}
