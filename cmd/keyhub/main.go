// Command keyhub is the keyhub server and its operator tools:
//
//	keyhub serve                    run the API server
//	keyhub migrate up|down|status   manage the database schema
//	keyhub dev token --email E      print a dev-mode access token
//	keyhub version                  print the version
//
// Each command has --help.
// Everything is configured through environment variables (see README.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/keyhub/keyhub"
	"github.com/keyhub/keyhub/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyhub:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a command line keyhub does not understand (exit status 2).
type usageError string

func (e usageError) Error() string { return string(e) }

const usage = `usage: keyhub <command> [--help]

commands:
  serve                       run the API server
  migrate up|down|status      apply, undo (the latest) or list migrations
  dev token --email ADDRESS   print a dev-mode access token (KEYHUB_DEV=1 servers)
  version                     print the version (also: keyhub --version)

Every setting is an environment variable: keyhub serve --help lists them.
`

// run is the whole program; main only supplies the process's environment,
// so tests can run it end to end with their own.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError("no command given")
	}
	help := len(args) > 1 && isHelp(args[1])
	switch args[0] {
	case "serve":
		if help {
			printServeHelp(stdout)
			return nil
		}
		if len(args) > 1 {
			return usageError(fmt.Sprintf("serve takes no arguments (settings are environment variables; see keyhub serve --help), got %q", args[1]))
		}
		return serve(ctx, getenv, stdout)
	case "migrate":
		if help {
			fmt.Fprint(stdout, migrateUsage)
			return nil
		}
		return migrate(ctx, args[1:], getenv, stdout)
	case "dev":
		return dev(args[1:], getenv, stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "keyhub", versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError(fmt.Sprintf("unknown command %q", args[0]))
}

// versionString is the -ldflags version, or for a plain go build the
// commit the binary was built from, as the go command recorded it.
func versionString() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var commit, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		return version
	}
	return fmt.Sprintf("%s (commit %s%s)", version, commit, modified)
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

const migrateUsage = `usage: keyhub migrate up|down|status

  up       apply every pending migration (safe to run from several processes at once)
  down     undo the latest migration
  status   list the migrations and when each was applied

Needs DATABASE_URL (keyhub serve --help lists every setting).
`

// printServeHelp prints what serve does and every setting, from README.md's
// configuration table (embedded in the binary).
func printServeHelp(w io.Writer) {
	fmt.Fprint(w, `usage: keyhub serve

Runs the API server: REST, WebSockets and the dashboard on LISTEN_ADDR.
Every setting is an environment variable:

`)
	for _, v := range config.Documented(docs.Readme) {
		def := withoutMakeRunNotes(v.Default)
		switch {
		case def == "":
			fmt.Fprintf(w, "  %s\n", v.Name)
		case strings.HasPrefix(def, "("):
			fmt.Fprintf(w, "  %s %s\n", v.Name, def)
		default:
			// "default:" on its own, not in parentheses: a default with a
			// note of its own printed "(default: :8080 (make run: ...))".
			fmt.Fprintf(w, "  %s, default: %s\n", v.Name, def)
		}
		for _, line := range wrap(withoutMakeRunNotes(v.Meaning), 72) {
			fmt.Fprintf(w, "      %s\n", line)
		}
	}
}

// withoutMakeRunNotes drops the README's notes about `make run` from a
// setting's text: the binary also runs where there is no make run (the
// container), so its help speaks of the binary alone. A note is a
// parenthesized group, or one of its "; "-separated parts, naming make run.
func withoutMakeRunNotes(text string) string {
	var out strings.Builder
	for {
		open := strings.Index(text, "(")
		if open < 0 {
			break
		}
		end := strings.Index(text[open:], ")")
		if end < 0 {
			break
		}
		end += open
		out.WriteString(text[:open])
		var kept []string
		for _, part := range strings.Split(text[open+1:end], "; ") {
			if !strings.Contains(part, "make run") {
				kept = append(kept, part)
			}
		}
		if len(kept) > 0 {
			out.WriteString("(" + strings.Join(kept, "; ") + ")")
		}
		text = text[end+1:]
	}
	out.WriteString(text)
	// A dropped group leaves the space before it (or before a comma).
	cleaned := strings.Join(strings.Fields(out.String()), " ")
	return strings.ReplaceAll(cleaned, " ,", ",")
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
