package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
)

const loginHelp = `usage: mk login [--url URL]

Asks for an API key (mk_...), checks it with the server (GET /v1/me) and
stores it, with the server's URL, in $XDG_CONFIG_HOME/keyhub/credentials
(mode 0600). On a terminal the key is not echoed; otherwise the first line
of standard input is read (mk login < key.txt).

Later commands use the stored key unless KEYHUB_API_KEY or KEYHUB_TOKEN is set.
`

func (m *cli) login(ctx context.Context, args []string) error {
	if _, err := m.parse(m.flags("mk login", loginHelp), args); err != nil {
		return err
	}
	stored, err := m.loadCredentials()
	if err != nil {
		return err
	}
	key, err := m.readKey()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(key, "mk_") {
		return usageErrorf("that is not an API key: keys start with mk_")
	}
	url := m.serverURL(stored)
	c, err := m.newClient(url, client.WithAPIKey(key))
	if err != nil {
		return err
	}
	me, err := c.Me(ctx)
	if err != nil {
		return fmt.Errorf("the key was not stored: %w", err)
	}
	path, err := m.saveCredentials(credentials{URL: c.BaseURL(), APIKey: key})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.stdout, "logged in to %s as %s with key %s (scopes: %s)\n", c.BaseURL(), me.Email, me.KeyPrefix, strings.Join(me.Scopes, ", "))
	fmt.Fprintf(m.stderr, "mk: key stored in %s\n", path)
	return nil
}

// readKey asks for the key: hidden on a terminal, else the first line,
// read without a prompt (mk login < file has nobody to ask).
func (m *cli) readKey() (string, error) {
	if f, ok := m.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(m.stderr, "keyhub API key (mk_...): ")
		raw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(m.stderr)
		if err != nil {
			return "", fmt.Errorf("read the key: %w", err)
		}
		return strings.TrimSpace(string(raw)), nil
	}
	line, err := bufio.NewReader(m.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", usageErrorf("no key given on standard input")
	}
	return strings.TrimSpace(line), nil
}

const logoutHelp = `usage: mk logout

Removes the stored credentials file. The key itself stays valid: revoke
it with mk keys revoke ID.
`

func (m *cli) logout(args []string) error {
	if _, err := m.parse(m.flags("mk logout", logoutHelp), args); err != nil {
		return err
	}
	path, err := m.credentialsPath()
	if err != nil {
		return err
	}
	switch err := os.Remove(path); {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintln(m.stdout, "not logged in")
	case err != nil:
		return fmt.Errorf("logout: %w", err)
	default:
		fmt.Fprintf(m.stdout, "logged out (removed %s)\n", path)
	}
	return nil
}

const whoamiHelp = `usage: mk whoami [--json]

Prints who the credential belongs to (GET /v1/me): user, tier and its
limits, scopes, and the key.
`

func (m *cli) whoami(ctx context.Context, args []string) error {
	if _, err := m.parse(m.flags("mk whoami", whoamiHelp), args); err != nil {
		return err
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	return call(ctx, m, c.Me, func(me api.Me) {
		l := me.Limits
		m.fields(
			"user", fmt.Sprintf("%s (%s)", me.Email, me.UserID),
			"owner", me.OwnerID.String(),
			"tier", me.Tier,
			"auth", me.AuthMethod,
			"key", orDash(me.KeyPrefix),
			"scopes", strings.Join(me.Scopes, ", "),
			"expires", when(me.ExpiresAt),
			"limits", fmt.Sprintf("%d active keys, %d connections, %d messages/min, %d bytes/message, %ds sessions",
				l.MaxActiveKeys, l.MaxConnections, l.MessagesPerMinute, l.MaxMessageBytes, l.SessionSeconds),
			"server", c.BaseURL(),
		)
	})
}
