// Command keyhub is the keyhub server and its operator tools:
//
//	keyhub serve                    run the API server
//	keyhub migrate up|down|status   manage the database schema
//	keyhub dev token --email E      print a dev-mode access token
//	keyhub version                  print the version
//
// Everything is configured through environment variables (see README.md).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyhub:", err)
		os.Exit(1)
	}
}

const usage = `usage: keyhub <command>

commands:
  serve                       run the API server
  migrate up|down|status      apply, undo (the latest) or list migrations
  dev token --email ADDRESS   print a dev-mode access token (KEYHUB_DEV=1 servers)
  version                     print the version
`

// run is the whole program; main only supplies the process's environment,
// so tests can run it end to end with their own.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, getenv, stdout)
	case "migrate":
		return migrate(ctx, args[1:], getenv, stdout)
	case "dev":
		return dev(args[1:], getenv, stdout)
	case "version":
		fmt.Fprintln(stdout, "keyhub", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
