// Command mk is keyhub's command line for API key holders: sign in with a
// key, manage keys, read the audit trail, and hold a daemon's WebSocket.
// It only parses flags and prints; every HTTP and WebSocket call goes
// through the public Go client, api/client.
//
// Exit codes (stable, documented in README.md):
//
//	0 ok, 1 error, 2 usage, 3 authentication or authorization, 4 not found, 5 rate limited
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// mkVersion is the version set at build time, else the module version
// `go install ...@v1.2.3` records, else "dev".
func mkVersion() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return version
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `mk: the keyhub command line

usage: mk [--url URL] [--json] <command> [arguments]

commands:
  login                  store an API key (asked for, checked with the server)
  logout                 forget the stored key
  whoami                 who the key belongs to, its scopes and limits
  keys list|get|create|refresh|revoke
                         manage API keys (mk keys --help)
  events [--follow]      the audit trail; --follow streams it live
  ws connections|close   the account's open WebSocket connections
  owner policy [set]     the account's key policy: longest lifetime, leak handling
  connect                hold a daemon's WebSocket open, printing what arrives
  version                print mk's version (also mk --version)

global flags (accepted by every command, anywhere on the line):
  --url URL   the keyhub server (else $KEYHUB_URL, else the one stored by
              mk login, else http://localhost:8080)
  --json      print the API's JSON answers unchanged, for scripts

credentials: $KEYHUB_API_KEY (an mk_ key), else $KEYHUB_TOKEN (a bearer
access token, e.g. from keyhub dev token), else the key stored by mk login
in $XDG_CONFIG_HOME/keyhub/credentials (~/.config/keyhub/credentials).

exit codes: 0 ok, 1 error, 2 usage, 3 authentication or authorization,
4 not found, 5 rate limited. Errors print the server's code and message.

Run mk <command> --help for a command's flags.
`

// Exit codes, stable for scripts.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitAuth        = 3
	exitNotFound    = 4
	exitRateLimited = 5
)

// cli is one invocation: its environment and the global flags.
type cli struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	url  string // --url
	json bool   // --json
	help string // the help text of the command being parsed
}

// run is the whole program; main only supplies the process's environment,
// so tests can drive it with their own. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	m := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	err := m.dispatch(ctx, args)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK // the help was printed
	}
	fmt.Fprintln(stderr, "mk:", err)
	return exitCode(err)
}

func (m *cli) dispatch(ctx context.Context, args []string) error {
	fs := m.flags("mk", usage)
	showVersion := fs.Bool("version", false, "print the version")
	// Global flags come before the command; the command's own parser
	// accepts them too.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(m.stdout, usage)
			return err
		}
		return usageErrorf("%v (see mk --help)", err)
	}
	if *showVersion {
		fmt.Fprintln(m.stdout, "mk", mkVersion())
		return nil
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(m.stderr, usage)
		return usageErrorf("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "login":
		return m.login(ctx, rest)
	case "logout":
		return m.logout(rest)
	case "whoami":
		return m.whoami(ctx, rest)
	case "keys":
		return m.keys(ctx, rest)
	case "events":
		return m.events(ctx, rest)
	case "ws":
		return m.ws(ctx, rest)
	case "owner":
		return m.owner(ctx, rest)
	case "connect":
		return m.connect(ctx, rest)
	case "version":
		fmt.Fprintln(m.stdout, "mk", mkVersion())
		return nil
	case "help":
		fmt.Fprint(m.stdout, usage)
		return nil
	}
	fmt.Fprint(m.stderr, usage)
	return usageErrorf("unknown command %q", cmd)
}

// flags is a flag set for a command, with the global flags and help text
// printed on -h/--help (to stdout: asked-for help is output, not an error).
func (m *cli) flags(name, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// parse reports errors itself; the flag package only says which help
	// text belongs to the command.
	fs.SetOutput(io.Discard)
	fs.Usage = func() { m.help = help }
	fs.StringVar(&m.url, "url", m.url, "keyhub server URL")
	fs.BoolVar(&m.json, "json", m.json, "print the API's JSON")
	return fs
}

// parse parses a command's arguments, flags and positional arguments in
// any order, and checks the number of positional arguments.
func (m *cli) parse(fs *flag.FlagSet, args []string, positional ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(m.stdout, m.help)
				return nil, err
			}
			return nil, usageErrorf("%v (see %s --help)", err, fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != len(positional) {
		want := "no arguments"
		if len(positional) > 0 {
			want = strings.Join(positional, " ")
		}
		return nil, usageErrorf("%s takes %s (got %d arguments); see %s --help", fs.Name(), want, len(pos), fs.Name())
	}
	return pos, nil
}

// subcommand dispatches "mk group <sub>" to one of subs.
func (m *cli) subcommand(ctx context.Context, group, help string, args []string, subs map[string]func(context.Context, []string) error) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(m.stderr, help)
			return usageErrorf("%s needs a subcommand", group)
		}
		fmt.Fprint(m.stdout, help)
		return nil
	}
	if sub, ok := subs[args[0]]; ok {
		return sub(ctx, args[1:])
	}
	fmt.Fprint(m.stderr, help)
	return usageErrorf("unknown command %q %q", group, args[0])
}
