package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/keyhub/keyhub/internal/app"
	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/devissuer"
)

const devUsage = `usage: keyhub dev token [--email ADDRESS] [--ttl 1h]

Prints an access token signed by dev mode's issuer (KEYHUB_DATA_DIR/dev), for a
server started with KEYHUB_DEV=1 and the same LISTEN_ADDR and KEYHUB_DATA_DIR.`

// dev prints a Supabase-shaped access token signed by the dev issuer, for
// a server started with KEYHUB_DEV=1 and the same LISTEN_ADDR and
// KEYHUB_DATA_DIR.
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
	// The token command needs no database: only the issuer's address and key.
	cfg, err := config.Load(func(name string) string {
		if name == "DATABASE_URL" && getenv(name) == "" {
			return "postgres://unused"
		}
		return getenv(name)
	})
	if err != nil {
		return err
	}
	if cfg.Env == "production" {
		return fmt.Errorf("dev tokens are refused when KEYHUB_ENV=production")
	}
	issuer, err := devissuer.LoadOrCreate(app.DevKeyDir(cfg))
	if err != nil {
		return err
	}
	token, err := issuer.Token(cfg.DevIssuer(), *email, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}
