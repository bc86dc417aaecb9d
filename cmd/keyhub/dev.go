package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keyhub/keyhub/internal/app"
	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/devissuer"
)

const devUsage = `usage: keyhub dev token [--email ADDRESS] [--ttl 1h]

Prints an access token signed by dev mode's key (KEYHUB_DATA_DIR/dev), which
every server started with KEYHUB_DEV=1 and the same KEYHUB_DATA_DIR accepts,
on any LISTEN_ADDR (and the same JWT_ISSUER, when one is set).`

// dev prints a Supabase-shaped access token signed by the dev issuer, for
// the servers started with KEYHUB_DEV=1 and the same KEYHUB_DATA_DIR.
func dev(args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "token" {
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprintln(stdout, devUsage)
			return nil
		}
		return usageError(devUsage)
	}
	fs := flag.NewFlagSet("dev token", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintln(stdout, devUsage)
		fmt.Fprintln(stdout)
		fs.PrintDefaults()
	}
	email := fs.String("email", "dev@example.com", "the user's email; the same email is the same user")
	ttl := fs.Duration("ttl", time.Hour, "token lifetime")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // --help asked for the usage, which is printed
		}
		return usageError(err.Error())
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q\n%s", fs.Arg(0), devUsage))
	}
	// Refused before the settings are read: a production environment would
	// otherwise be told about a missing WS_TICKET_SECRET, as if dev tokens
	// were one setting away.
	if strings.EqualFold(strings.TrimSpace(getenv("KEYHUB_ENV")), "production") {
		return errors.New("dev tokens are refused when KEYHUB_ENV=production")
	}
	// The token command needs no database: only the key and the issuer name.
	cfg, err := config.Load(func(name string) string {
		if name == "DATABASE_URL" && getenv(name) == "" {
			return "postgres://unused"
		}
		return getenv(name)
	})
	if err != nil {
		return err
	}
	iss := config.DevIssuer
	if explicit := strings.TrimSpace(getenv("JWT_ISSUER")); explicit != "" {
		iss = explicit // the server verifies this one instead
	}
	issuer, err := devissuer.LoadOrCreate(app.DevKeyDir(cfg))
	if err != nil {
		return err
	}
	token, err := issuer.Token(iss, *email, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}
