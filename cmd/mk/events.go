package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
)

const eventsHelp = `usage: mk events [--type T,T] [--key ID] [--since WHEN] [--until WHEN] [--limit N] [--cursor C] [--follow] [--json]

Prints the audit trail, newest first (GET /v1/events, or
GET /v1/keys/{id}/events with --key). Needs the events:read scope.

  --type    created, refreshed, revoked (comma-separated)
  --since, --until
            an RFC 3339 time, or a duration back from now (90m, 24h)
  --follow  print the page oldest first, then every new event as it
            happens, over the WebSocket (needs ws:connect too), until
            interrupted; with --json, one event object per line
`

func (m *cli) events(ctx context.Context, args []string) error {
	fs := m.flags("mk events", eventsHelp)
	types := fs.String("type", "", "event types, comma-separated")
	keyFlag := fs.String("key", "", "only this key's events")
	since := fs.String("since", "", "oldest event time")
	until := fs.String("until", "", "newest event time")
	var p client.EventParams
	fs.IntVar(&p.Limit, "limit", 0, "events per page (server default 20)")
	fs.StringVar(&p.Cursor, "cursor", "", "the next page's cursor")
	follow := fs.Bool("follow", false, "stream new events")
	if _, err := m.parse(fs, args); err != nil {
		return err
	}
	if *types != "" {
		p.Types = strings.Split(*types, ",")
	}
	var err error
	if p.Since, err = parseWhen("--since", *since); err != nil {
		return err
	}
	if p.Until, err = parseWhen("--until", *until); err != nil {
		return err
	}
	var keyID *uuid.UUID
	if *keyFlag != "" {
		id, err := uuid.Parse(*keyFlag)
		if err != nil {
			return usageErrorf("--key %q is not a key ID", *keyFlag)
		}
		keyID = &id
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	list := func(ctx context.Context) (api.EventList, error) {
		if keyID != nil {
			return c.ListKeyEvents(ctx, *keyID, p)
		}
		return c.ListEvents(ctx, p)
	}
	if !*follow {
		return call(ctx, m, list, func(page api.EventList) {
			m.eventTable(page.Data)
			if page.NextCursor != nil {
				fmt.Fprintf(m.stderr, "mk: more events: mk events --cursor %s\n", *page.NextCursor)
			}
		})
	}
	return m.followEvents(ctx, c, list, func(e api.Event) bool {
		return (keyID == nil || e.KeyID == *keyID) && (len(p.Types) == 0 || slices.Contains(p.Types, e.Type))
	})
}

// parseWhen reads an RFC 3339 time or a duration back from now.
func parseWhen(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageErrorf("%s: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (24h)", flagName)
	}
	return t, nil
}

func (m *cli) eventTable(events []api.Event) {
	rows := make([][]string, 0, len(events))
	for _, e := range events {
		rows = append(rows, m.eventRow(e))
	}
	m.table([]string{"ID", "TIME", "TYPE", "KEY", "IP", "USER AGENT"}, rows)
}

func (m *cli) eventRow(e api.Event) []string {
	ip, ua := "-", "-"
	if e.IPAddress != nil {
		ip = *e.IPAddress
	}
	if e.UserAgent != nil {
		ua = *e.UserAgent
	}
	return []string{fmt.Sprint(e.ID), when(&e.CreatedAt), e.Type, e.KeyID.String(), ip, ua}
}

// followEvents prints the first page oldest first, then live events
// from the WebSocket subscription, until ctx ends or the connection
// cannot go on.
func (m *cli) followEvents(ctx context.Context, c *client.Client, list func(context.Context) (api.EventList, error), keep func(api.Event) bool) error {
	var raw []byte
	page, err := list(client.WithRawResponse(ctx, &raw))
	if err != nil {
		return err
	}
	var rawPage struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &rawPage); err != nil {
		return fmt.Errorf("decode events: %w", err)
	}
	for i := len(page.Data) - 1; i >= 0; i-- {
		m.printEvent(page.Data[i], rawPage.Data[i])
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var refused error
	conn := c.Connector(client.ConnectorOptions{
		OnDisconnect: func(err error, retryIn time.Duration) {
			fmt.Fprintf(m.stderr, "mk: disconnected (%v); reconnecting in %v\n", err, retryIn.Round(time.Millisecond))
		},
		OnMessage: func(msg api.WSMessage) {
			switch msg.Type {
			case "event":
				var rawMsg struct {
					Event json.RawMessage `json:"event"`
				}
				if json.Unmarshal(msg.Raw, &rawMsg) == nil && msg.Event != nil && keep(*msg.Event) {
					m.printEvent(*msg.Event, rawMsg.Event)
				}
			case "error":
				if msg.Code == "INSUFFICIENT_SCOPE" {
					// The subscription was refused (events:read): nothing will come.
					refused = &client.Error{Status: http.StatusForbidden, Code: msg.Code, Message: msg.Message}
					cancel()
					return
				}
				fmt.Fprintf(m.stderr, "mk: server: %s: %s\n", msg.Code, msg.Message)
			}
		},
	})
	if err := conn.Subscribe(ctx, "events"); err != nil {
		return err
	}
	err = conn.Run(ctx)
	if refused != nil {
		return refused
	}
	return err
}

// printEvent prints one event: its API JSON on a line, or a table row.
func (m *cli) printEvent(e api.Event, raw json.RawMessage) {
	if m.json {
		m.printJSON(raw)
		return
	}
	fmt.Fprintln(m.stdout, strings.Join(m.eventRow(e), "  "))
}
