package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
)

const keysHelp = `usage: mk keys <command> [flags]

commands:
  list [--status active|revoked|expired|all] [--limit N] [--cursor C] [-q]
                         the account's keys, newest first (-q: IDs only)
  get ID                 one key
  create --name NAME [--scopes S,S] [--expires-in DURATION | --expires-at TIME] [--auto-rotate-before DURATION] [--out FILE]
                         a new key; its secret is shown once
  refresh ID [--name NAME] [--grace DURATION] [--deliver connections] [--auto-rotate-before DURATION] [--out FILE]
                         replace a key; the old one stops now or after the grace
  revoke ID              revoke a key (revoking twice is fine)
  usage ID [--from WHEN] [--to WHEN]
                         the key's requests per hour: ok, refused, rate limited
  update ID [--name NAME] [--metadata JSON] [--allowed-cidrs CIDR,CIDR] [--scopes S,S]
                         rename a key, set its metadata or the networks it may be used from
  disable ID             pause a key (and the keys made with it) until it is enabled
  enable ID              let a disabled key work again

Scopes: keys:read, keys:write, events:read, ws:connect, and the product
scopes the server defines (mk whoami lists yours; a key can only give
scopes it holds). Durations: 90s, 15m, 720h. Add --json for the API's JSON.
`

func (m *cli) keys(ctx context.Context, args []string) error {
	return m.subcommand(ctx, "keys", keysHelp, args, map[string]func(context.Context, []string) error{
		"list": m.keysList, "get": m.keysGet, "create": m.keysCreate, "refresh": m.keysRefresh, "revoke": m.keysRevoke,
		"usage":  m.keysUsage,
		"update": m.keysUpdate, "disable": m.keysDisable, "enable": m.keysEnable,
	})
}

const keysListHelp = `usage: mk keys list [--status active|revoked|expired|all] [--limit N] [--cursor C] [-q] [--json]

Lists the account's keys, newest first (GET /v1/keys). When there are
more, the command for the next page is printed on standard error.
-q prints only the IDs, one per line: mk keys get $(mk keys list -q --limit 1)
Without --status, every key is listed (all).
`

func (m *cli) keysList(ctx context.Context, args []string) error {
	fs := m.flags("mk keys list", keysListHelp)
	var p client.ListKeysParams
	fs.StringVar(&p.Status, "status", "", "active, revoked, expired or all (default)")
	fs.IntVar(&p.Limit, "limit", 0, "keys per page (server default 20)")
	fs.StringVar(&p.Cursor, "cursor", "", "the next page's cursor")
	quiet := quietFlag(fs)
	if _, err := m.parse(fs, args); err != nil {
		return err
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	return call(ctx, m, func(ctx context.Context) (api.KeyList, error) { return c.ListKeys(ctx, p) }, func(list api.KeyList) {
		if *quiet {
			for _, k := range list.Data {
				fmt.Fprintln(m.stdout, k.ID)
			}
			return
		}
		rows := make([][]string, 0, len(list.Data))
		for _, k := range list.Data {
			rows = append(rows, []string{k.ID.String(), k.Name, k.Prefix, k.Status, strings.Join(k.Scopes, ","), when(&k.CreatedAt), when(k.ExpiresAt), when(k.LastUsedAt)})
		}
		m.table([]string{"ID", "NAME", "PREFIX", "STATUS", "SCOPES", "CREATED", "EXPIRES", "LAST USED"}, rows)
		if list.NextCursor != nil {
			fmt.Fprintf(m.stderr, "mk: more keys: mk keys list --cursor %s\n", *list.NextCursor)
		}
	})
}

const keysGetHelp = `usage: mk keys get ID [--json]

Prints one key (GET /v1/keys/{id}); exit code 4 when there is no such key.
`

func (m *cli) keysGet(ctx context.Context, args []string) error {
	id, c, err := m.keyCommand(m.flags("mk keys get", keysGetHelp), args)
	if err != nil {
		return err
	}
	return call(ctx, m, func(ctx context.Context) (api.Key, error) { return c.GetKey(ctx, id) }, m.printKey)
}

func (m *cli) printKey(k api.Key) {
	replaced := "-"
	if k.ReplacedBy != nil {
		replaced = k.ReplacedBy.String()
	}
	networks := "any"
	if len(k.AllowedCIDRs) > 0 {
		networks = strings.Join(k.AllowedCIDRs, ", ")
	}
	m.fields(
		"id", k.ID.String(),
		"name", k.Name,
		"prefix", k.Prefix,
		"status", k.Status,
		"scopes", strings.Join(k.Scopes, ", "),
		"created", when(&k.CreatedAt),
		"expires", when(k.ExpiresAt),
		"last used", when(k.LastUsedAt),
		"last used from", orDash(deref(k.LastUsedIP)),
		"last used agent", orDash(deref(k.LastUsedUserAgent)),
		"revoked", when(k.RevokedAt),
		"replaced by", replaced,
		"disabled", when(k.DisabledAt),
		"networks", networks,
		"metadata", string(k.Metadata),
	)
}

const keysCreateHelp = `usage: mk keys create --name NAME [--scopes S,S] [--expires-in DURATION | --expires-at TIME] [--auto-rotate-before DURATION] [--out FILE] [--json]

Creates a key (POST /v1/keys). Its secret is shown this once: printed,
or with --out written to FILE (created with mode 0600; it must not exist).
--json prints the API's answer, secret included, and cannot be combined
with --out.

  --scopes      comma-separated, default: all the scopes of the credential
  --expires-in  a lifetime such as 720h (at least a minute)
  --expires-at  an RFC 3339 time such as 2027-01-01T00:00:00Z
  --auto-rotate-before
                such as 72h: keyhub refreshes the key that long before it
                expires and sends the new secret to its open connections
                (mk connect and api/client store it and reconnect);
                shorter than the lifetime
  --allowed-cidrs  comma-separated networks the key may be used from
                (203.0.113.0/24,2001:db8::/32); default: any
`

func (m *cli) keysCreate(ctx context.Context, args []string) error {
	fs := m.flags("mk keys create", keysCreateHelp)
	name := fs.String("name", "", "the key's name (required)")
	scopes := fs.String("scopes", "", "comma-separated scopes")
	expiresIn := fs.Duration("expires-in", 0, "lifetime")
	expiresAt := fs.String("expires-at", "", "expiry time (RFC 3339)")
	out := fs.String("out", "", "write the secret to this new file")
	autoRotate := fs.Duration("auto-rotate-before", 0, "rotate this long before the expiry")
	cidrs := fs.String("allowed-cidrs", "", "comma-separated networks the key may be used from")
	if _, err := m.parse(fs, args); err != nil {
		return err
	}
	req := api.CreateKeyRequest{Name: *name, AutoRotateBefore: seconds(*autoRotate), AllowedCIDRs: splitList(*cidrs)}
	if strings.TrimSpace(*name) == "" {
		return usageErrorf("mk keys create needs --name")
	}
	if *scopes != "" {
		req.Scopes = strings.Split(*scopes, ",")
	}
	switch {
	case *expiresIn != 0 && *expiresAt != "":
		return usageErrorf("give --expires-in or --expires-at, not both")
	case *expiresIn != 0:
		secs := int64(expiresIn.Seconds())
		req.ExpiresIn = &secs
	case *expiresAt != "":
		t, err := time.Parse(time.RFC3339, *expiresAt)
		if err != nil {
			return usageErrorf("--expires-at: want an RFC 3339 time such as 2027-01-01T00:00:00Z")
		}
		req.ExpiresAt = &t
	}
	if err := m.checkOut(*out); err != nil {
		return err
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	var secretErr error
	err = call(ctx, m, func(ctx context.Context) (api.CreatedKey, error) { return c.CreateKey(ctx, req) }, func(k api.CreatedKey) {
		m.printKey(k.Key)
		secretErr = m.deliverSecret(k.Secret, *out)
	})
	if err != nil {
		return err
	}
	return secretErr
}

// checkOut refuses --out with --json, or naming a file that exists,
// before a key is made that could not be saved.
func (m *cli) checkOut(out string) error {
	if out == "" {
		return nil
	}
	if m.json {
		return usageErrorf("--out and --json do not mix: --json prints the secret")
	}
	if _, err := os.Lstat(out); err == nil {
		return usageErrorf("--out %s: the file exists; mk never overwrites a key file", out)
	}
	return nil
}

const keysRefreshHelp = `usage: mk keys refresh ID [--name NAME] [--grace DURATION] [--deliver connections] [--auto-rotate-before DURATION] [--out FILE] [--json]

Replaces a key in one step (POST /v1/keys/{id}/refresh): the new key's
secret is shown this once (or written to --out FILE, mode 0600); the old
key stops at once, or keeps working for --grace (at most 24h).

  --deliver connections
                zero-touch rotation: the secret is not shown but sent only
                to the old key's open WebSocket connections (their daemons
                store it and reconnect); needs --grace; refused with
                NO_OPEN_CONNECTIONS when the key has none
  --auto-rotate-before
                the new key's (0 removes it; default: the old key's)
`

func (m *cli) keysRefresh(ctx context.Context, args []string) error {
	fs := m.flags("mk keys refresh", keysRefreshHelp)
	name := fs.String("name", "", "the new key's name (default: the old one's)")
	grace := fs.Duration("grace", 0, "how long the old key keeps working")
	out := fs.String("out", "", "write the secret to this new file")
	deliver := fs.String("deliver", "", `"connections": send the secret to the old key's connections`)
	autoRotate := fs.Duration("auto-rotate-before", -1, "the new key's auto-rotate-before")
	id, c, err := m.keyCommand(fs, args)
	if err != nil {
		return err
	}
	req := api.RefreshKeyRequest{Deliver: *deliver}
	if *deliver != "" && *out != "" {
		return usageErrorf("--deliver and --out do not mix: the secret goes to the connections")
	}
	if *autoRotate >= 0 {
		req.AutoRotateBefore = api.Some(int64(autoRotate.Seconds()))
	}
	if *name != "" {
		req.Name = name
	}
	if *grace != 0 {
		secs := int64(grace.Seconds())
		req.GracePeriod = &secs
	}
	if err := m.checkOut(*out); err != nil {
		return err
	}
	var secretErr error
	err = call(ctx, m, func(ctx context.Context) (api.Refreshed, error) { return c.RefreshKey(ctx, id, req) }, func(r api.Refreshed) {
		m.printKey(r.NewKey.Key)
		old := "revoked now"
		if r.OldKey.Status == "active" {
			old = "works until " + when(r.OldKey.ExpiresAt)
		}
		fmt.Fprintf(m.stdout, "old key %s (%s): %s\n", r.OldKey.ID, r.OldKey.Prefix, old)
		if r.DeliveredTo != nil {
			fmt.Fprintf(m.stdout, "key: sent to %d open connection(s) of the old key, not shown\n", *r.DeliveredTo)
			return
		}
		secretErr = m.deliverSecret(r.NewKey.Secret, *out)
	})
	if err != nil {
		return err
	}
	return secretErr
}

const keysRevokeHelp = `usage: mk keys revoke ID [--json]

Revokes a key (DELETE /v1/keys/{id}) and every key obtained through it
(the keys it created, theirs, and so on); their open WebSockets close with
4001 on every keyhub process within its revocation bound (5 s by default,
usually milliseconds). Revoking a revoked key succeeds and says so.
`

func (m *cli) keysRevoke(ctx context.Context, args []string) error {
	id, c, err := m.keyCommand(m.flags("mk keys revoke", keysRevokeHelp), args)
	if err != nil {
		return err
	}
	return call(ctx, m, func(ctx context.Context) (api.RevokedKey, error) { return c.RevokeKey(ctx, id) }, func(k api.RevokedKey) {
		if k.AlreadyRevoked {
			fmt.Fprintf(m.stdout, "key %s (%s) was already revoked at %s\n", k.ID, k.Prefix, when(k.RevokedAt))
			return
		}
		fmt.Fprintf(m.stdout, "revoked key %s (%s)\n", k.ID, k.Prefix)
	})
}

// keyCommand parses a command taking one key ID and makes the client.
func (m *cli) keyCommand(fs *flag.FlagSet, args []string) (uuid.UUID, *client.Client, error) {
	pos, err := m.parse(fs, args, "ID")
	if err != nil {
		return uuid.Nil, nil, err
	}
	id, err := uuid.Parse(pos[0])
	if err != nil {
		return uuid.Nil, nil, usageErrorf("%q is not a key ID (a UUID, as mk keys list shows)", pos[0])
	}
	c, err := m.client()
	return id, c, err
}

// seconds is a duration flag as the API's whole seconds; nil for zero
// (not given).
func seconds(d time.Duration) *int64 {
	if d <= 0 {
		return nil
	}
	secs := int64(d.Seconds())
	return &secs
}

// splitList splits a comma-separated flag value; empty is no items.
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	return strings.Split(v, ",")
}

const keysUpdateHelp = `usage: mk keys update ID [--name NAME] [--metadata JSON] [--allowed-cidrs CIDR,CIDR] [--scopes S,S] [--json]

Changes a key without replacing it (PATCH /v1/keys/{id}); only the flags
given change, and each change is an "updated" event in the audit trail.

  --name           the new name
  --metadata       a JSON object of at most 4 KiB, e.g. '{"team":"infra"}'
  --allowed-cidrs  comma-separated networks the key may be used from
                   (203.0.113.0/24,2001:db8::/32); "" allows any network.
                   A request from elsewhere is refused with IP_NOT_ALLOWED.
  --scopes         comma-separated, the key's new scopes (at least one); a
                   key can only give scopes it holds. Open WebSockets that
                   need a scope taken away close with 4001.
`

func (m *cli) keysUpdate(ctx context.Context, args []string) error {
	fs := m.flags("mk keys update", keysUpdateHelp)
	var req api.UpdateKeyRequest
	fs.Func("name", "the new name", func(v string) error { req.Name = api.Some(v); return nil })
	fs.Func("metadata", "a JSON object", func(v string) error {
		if !json.Valid([]byte(v)) {
			return errors.New("not JSON")
		}
		req.Metadata = json.RawMessage(v)
		return nil
	})
	fs.Func("allowed-cidrs", "comma-separated networks (\"\": any)", func(v string) error {
		req.AllowedCIDRs = api.Some(append([]string{}, splitList(v)...))
		return nil
	})
	fs.Func("scopes", "comma-separated scopes", func(v string) error {
		if req.Scopes.Value = splitList(v); len(req.Scopes.Value) == 0 {
			return errors.New("a key holds at least one scope")
		}
		req.Scopes.Set = true
		return nil
	})
	id, c, err := m.keyCommand(fs, args)
	if err != nil {
		return err
	}
	if !req.Name.Set && req.Metadata == nil && !req.AllowedCIDRs.Set && !req.Scopes.Set {
		return usageErrorf("mk keys update needs --name, --metadata, --allowed-cidrs or --scopes")
	}
	return call(ctx, m, func(ctx context.Context) (api.Key, error) { return c.UpdateKey(ctx, id, req) }, m.printKey)
}

const keysDisableHelp = `usage: mk keys disable ID [--json]

Pauses a key (POST /v1/keys/{id}/disable): it, and every key obtained
through it, is refused with KEY_DISABLED and their open WebSockets close
with 4001, until mk keys enable ID. Nothing is revoked or replaced.
`

func (m *cli) keysDisable(ctx context.Context, args []string) error {
	id, c, err := m.keyCommand(m.flags("mk keys disable", keysDisableHelp), args)
	if err != nil {
		return err
	}
	return call(ctx, m, func(ctx context.Context) (api.Key, error) { return c.DisableKey(ctx, id) }, func(k api.Key) {
		fmt.Fprintf(m.stdout, "disabled key %s (%s)\n", k.ID, k.Prefix)
	})
}

const keysEnableHelp = `usage: mk keys enable ID [--json]

Lets a disabled key work again (POST /v1/keys/{id}/enable), with the keys
obtained through it.
`

func (m *cli) keysEnable(ctx context.Context, args []string) error {
	id, c, err := m.keyCommand(m.flags("mk keys enable", keysEnableHelp), args)
	if err != nil {
		return err
	}
	return call(ctx, m, func(ctx context.Context) (api.Key, error) { return c.EnableKey(ctx, id) }, func(k api.Key) {
		fmt.Fprintf(m.stdout, "enabled key %s (%s)\n", k.ID, k.Prefix)
	})
}
