package main

import (
	"flag"
	"fmt"
	"github.com/keyhub/keyhub/internal/app"
	"io"
	"time"

	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/devissuer"
)

// dev prints a Supabase-shaped access token signed by the dev issuer, for
// a server started with KEYHUB_DEV=1 and the same LISTEN_ADDR and
// KEYHUB_DATA_DIR.
func dev(args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "token" {
		return fmt.Errorf("usage: keyhub dev token --email ADDRESS [--ttl 1h]")
	}
	fs := flag.NewFlagSet("dev token", flag.ContinueOnError)
	email := fs.String("email", "dev@example.com", "the user's email; the same email is the same user")
	ttl := fs.Duration("ttl", time.Hour, "token lifetime")
	if err := fs.Parse(args[1:]); err != nil {
		return err
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
