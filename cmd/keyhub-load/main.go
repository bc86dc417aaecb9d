// Command keyhub-load is the load harness behind `make loadtest`: it starts
// a keyhub (the binary given by -keyhub) on loopback against a PostgreSQL
// it is given (make loadtest passes a throwaway one), drives it, and prints
// one Markdown table: each path's throughput and p50/p99 with its ratio to
// /healthz, pgbench's select-only figure for the database path, the
// open-loop p99 at 80 % of the cached-key peak, server memory per idle
// authenticated WebSocket, and revocation fan-out latency.
//
// Ratios, not absolute figures, are what it is for: client and server share
// the machine, so every path pays the same client cost.
//
// With -attack (make attack) it measures limits instead of speed: what a
// free key reaches by every route across two processes sharing Redis, and
// how long a rotated signing key waits under forged kids (attack.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "keyhub-load:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	keyhub       string
	databaseURL  string
	conns        int
	warmup       time.Duration
	duration     time.Duration
	openFraction float64
	sockets      int
	perKey       int
	fanoutRounds int
	pgbench      string
	profile      string
	heapProfile  string
	rounds       int
	// only names the one phase to run ("sockets"), or is empty for all.
	only string
	// profileMeasure names the HTTP path whose phase -cpuprofile records.
	profileMeasure string
	// serveReference and referenceOwner run this binary as the reference
	// server instead (startReference starts it so).
	serveReference string
	referenceOwner string
	// nginx is the nginx binary of the auth_request row.
	nginx string
	// attack runs the attack mode (attack.go) instead of the load test,
	// against two processes sharing redisURL.
	attack        bool
	redisURL      string
	attackWindow  time.Duration
	attackRate    int
	rotationLimit time.Duration
}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("keyhub-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultDB := getenv("KEYHUB_TEST_DATABASE_URL")
	if defaultDB == "" {
		defaultDB = getenv("DATABASE_URL")
	}
	fs.StringVar(&o.keyhub, "keyhub", "bin/keyhub", "the keyhub binary to start")
	fs.StringVar(&o.databaseURL, "db", defaultDB, "PostgreSQL URL (default $KEYHUB_TEST_DATABASE_URL, then $DATABASE_URL); the harness creates its own databases on that server")
	fs.IntVar(&o.conns, "conns", 32, "concurrent connections of the HTTP phases and pgbench's clients")
	fs.DurationVar(&o.warmup, "warmup", 200*time.Millisecond, "unmeasured start of each HTTP phase and round")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured length of each HTTP path (over all rounds), of the open loop and of pgbench")
	fs.IntVar(&o.rounds, "rounds", 10, "turns the HTTP paths take, each -duration/-rounds long (ratios are the median of the rounds)")
	fs.Float64Var(&o.openFraction, "open-fraction", 0.8, "open-loop rate as a fraction of the cached-key closed-loop peak")
	fs.IntVar(&o.sockets, "sockets", 10_000, "idle authenticated WebSockets held for the memory measure")
	fs.IntVar(&o.perKey, "sockets-per-key", 100, "sockets per key (the enterprise tier's limit); also the fan-out size")
	fs.IntVar(&o.fanoutRounds, "fanout-rounds", 10, "keys revoked one after the other to measure fan-out")
	fs.StringVar(&o.nginx, "nginx", "nginx", "nginx binary of the auth_request row (the README's server block in front of the same upstream)")
	fs.StringVar(&o.pgbench, "pgbench", "", "pgbench binary (default: on PATH, then /usr/lib/postgresql/*/bin)")
	fs.StringVar(&o.profile, "cpuprofile", "", "write keyhub's CPU profile during the cached-key phase to this file (go tool pprof)")
	fs.StringVar(&o.profileMeasure, "profile-measure", "GET /v1/me, cached mk_ key", "the HTTP path (its row's name, or a prefix of it) whose first round -cpuprofile records")
	fs.StringVar(&o.serveReference, "serve-reference", "", "internal: serve the reference handler on this address (the harness starts itself so)")
	fs.StringVar(&o.referenceOwner, "reference-owner", "", "internal: the owner whose keys the reference lists")
	fs.BoolVar(&o.attack, "attack", false, "measure what a free key reaches by every route (two keyhub processes sharing -redis) and the JWKS rotation under forged kids, instead of the load test (make attack)")
	fs.StringVar(&o.redisURL, "redis", getenv("KEYHUB_TEST_REDIS_URL"), "Redis URL the -attack processes share (default $KEYHUB_TEST_REDIS_URL)")
	fs.DurationVar(&o.attackWindow, "attack-window", 30*time.Second, "-attack: how long every route is measured, after its burst is spent")
	fs.IntVar(&o.attackRate, "attack-rate", 100, "-attack: requests (or messages) a second offered on each route")
	fs.DurationVar(&o.rotationLimit, "rotation-limit", 60*time.Second, "-attack: how long to wait for the new signing key to be accepted")
	fs.StringVar(&o.heapProfile, "heapprofile", "", "write keyhub's heap profile while the idle WebSockets are open to this file")
	fs.StringVar(&o.only, "only", "", `run one phase only: "sockets" (idle WebSocket memory and revocation fan-out; no HTTP paths, pgbench or nginx)`)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.serveReference != "":
		return o, nil
	case o.only != "" && o.only != "sockets":
		return o, fmt.Errorf("-only %q: the one phase that runs alone is \"sockets\"", o.only)
	case o.databaseURL == "":
		return o, errors.New("no database: set -db or KEYHUB_TEST_DATABASE_URL (make loadtest starts a throwaway PostgreSQL)")
	case o.attack && (o.attackWindow < 10*time.Second || o.attackRate < 1 || o.rotationLimit <= 0):
		return o, errors.New("-attack-window must be at least 10s, -attack-rate and -rotation-limit positive")
	case o.conns < 1 || o.duration <= 0 || o.warmup < 0 || o.rounds < 1:
		return o, errors.New("-conns, -duration, -rounds and -warmup must be positive")
	case o.openFraction <= 0 || o.openFraction > 1:
		return o, errors.New("-open-fraction must be in (0, 1]")
	case o.perKey < 1 || o.sockets < o.perKey:
		return o, errors.New("-sockets must be at least -sockets-per-key, which must be positive")
	case o.fanoutRounds > o.sockets/o.perKey:
		return o, fmt.Errorf("-fanout-rounds is at most -sockets / -sockets-per-key = %d", o.sockets/o.perKey)
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.serveReference != "" {
		return serveReference(ctx, o.serveReference, o.databaseURL, o.referenceOwner)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "keyhub-load: "+format+"\n", a...) }
	if err := raiseFileLimit(); err != nil {
		logf("cannot raise the open-file limit (%v); 10k sockets need about 2×10k descriptors", err)
	}
	machine := describeMachine()
	if o.attack {
		return runAttack(ctx, o, machine, stdout, logf)
	}

	upstream, err := startUpstream()
	if err != nil {
		return err
	}
	defer upstream.Close()
	srv, err := startKeyhub(ctx, o.keyhub, o.databaseURL, upstream.Addr().String(), logf)
	if err != nil {
		return err
	}
	defer srv.stop()
	if o.only == "sockets" {
		return runSocketsOnly(ctx, o, srv, machine, stdout, logf)
	}
	nginx, err := startNginx(o.nginx, srv.addr, upstream.Addr().String())
	if err != nil {
		return err
	}
	defer nginx.stop()
	srv.nginx = nginx.addr

	rows, err := measureAll(ctx, o, srv, logf)
	machine.loadAfter = loadAverage()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "keyhub load test, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(stdout, "machine: %s\n", machine)
	fmt.Fprintf(stdout, "command: make loadtest (keyhub-load -conns %d -duration %s -rounds %d -sockets %d)\n\n", o.conns, o.duration, o.rounds, o.sockets)
	writeTable(stdout, rows)
	writeLimits(stdout, rows)
	return nil
}

// runSocketsOnly is -only sockets: the idle WebSocket rows alone, for
// comparing the memory of two builds without minutes of HTTP load between
// them.
func runSocketsOnly(ctx context.Context, o options, srv *keyhubServer, machine machine, stdout io.Writer, logf func(string, ...any)) error {
	c := apiClient{base: "http://" + srv.addr, http: &http.Client{Timeout: 30 * time.Second}}
	token, err := socketUser(ctx, c, srv)
	if err != nil {
		return err
	}
	rows, err := measureSockets(ctx, o, srv, c, token, logf)
	machine.loadAfter = loadAverage()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "keyhub load test, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(stdout, "machine: %s\n", machine)
	fmt.Fprintf(stdout, "command: keyhub-load -only sockets -sockets %d -sockets-per-key %d -fanout-rounds %d\n\n", o.sockets, o.perKey, o.fanoutRounds)
	writeTable(stdout, rows)
	return nil
}
