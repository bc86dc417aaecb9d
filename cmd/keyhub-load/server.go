package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// keyhubServer is the keyhub process under test.
type keyhubServer struct {
	cmd       *exec.Cmd
	addr      string // public listener, host:port
	debugAddr string // DEBUG_ADDR: pprof, used to force a GC
	dbURL     string // keyhub's own database
	// verifyToken is the operator secret (VERIFY_TOKENS) of POST
	// /v1/keys/verify.
	verifyToken string
	// upstream is the product behind GATEWAY_ROUTES' /app/ (host:port).
	upstream string
	// nginx is nginx's listener (host:port), asking keyhub's GET /v1/authz
	// about every request before it proxies to upstream.
	nginx  string
	dir    string // data dir and log file
	exited chan struct{}
}

// startKeyhub creates a fresh database on the server of baseURL, migrates
// it, and starts keyhub in dev mode (it mints its own tokens) on loopback.
func startKeyhub(ctx context.Context, bin, baseURL, upstreamAddr string, logf func(string, ...any)) (*keyhubServer, error) {
	dbURL, err := freshDatabase(ctx, baseURL, "keyhub_load")
	if err != nil {
		return nil, err
	}
	return launchKeyhub(ctx, bin, keyhubSetup{
		dbURL:       dbURL,
		upstream:    upstreamAddr,
		verifyToken: rand.Text() + rand.Text(), // 52 random base32 characters
		migrate:     true,
		env: []string{
			"KEYHUB_DEV=1",
			// The per-key limits stay on the path (their check is part of a
			// request's cost) but never refuse: every tier at the maximum.
			"RATE_LIMIT_TIER_RPM=free=100000000,pro=100000000,team=100000000,enterprise=100000000",
			// The run creates listedKeys keys for one user and a key per
			// group of sockets for another, more than the creation budget
			// allows at once.
			"KEY_CREATE_BURST=100000000",
		},
	}, logf)
}

// keyhubSetup is what one keyhub process of the harness is given.
type keyhubSetup struct {
	dbURL       string
	upstream    string // the product behind GATEWAY_ROUTES' /app/ (host:port)
	verifyToken string // VERIFY_TOKENS
	migrate     bool   // run migrate up first (the first process on a database)
	env         []string
}

// launchKeyhub starts keyhub serve on a free loopback address with the
// environment every harness process shares plus setup.env, and waits until
// it is ready. The server's log goes to a file: printing 30k lines a
// second to a terminal would measure the terminal.
func launchKeyhub(ctx context.Context, bin string, setup keyhubSetup, logf func(string, ...any)) (*keyhubServer, error) {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyhub-load-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	debugAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"VERIFY_TOKENS="+setup.verifyToken,
		// The README's nginx block asks for app:read.
		"PRODUCT_SCOPES=app:read,app:write",
		// The product behind keyhub's proxy (startUpstream).
		"GATEWAY_ROUTES=/app/ http://"+setup.upstream+" strip_prefix",
		"DATABASE_URL="+setup.dbURL,
		"LISTEN_ADDR="+addr,
		"DEBUG_ADDR="+debugAddr,
		"KEYHUB_DATA_DIR="+dir,
	)
	env = append(env, setup.env...)
	if setup.migrate {
		migrate := exec.CommandContext(ctx, bin, "migrate", "up")
		migrate.Env = env
		if out, err := migrate.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("keyhub migrate up: %w\n%s", err, out)
		}
	}
	logFile, err := os.Create(filepath.Join(dir, "keyhub.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start keyhub: %w", err)
	}
	s := &keyhubServer{cmd: cmd, addr: addr, debugAddr: debugAddr, dbURL: setup.dbURL, dir: dir, verifyToken: setup.verifyToken, upstream: setup.upstream, exited: make(chan struct{})}
	go func() { cmd.Wait(); logFile.Close(); close(s.exited) }()
	logf("keyhub pid %d on %s (log: %s)", cmd.Process.Pid, addr, logFile.Name())

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("keyhub exited at start; see %s", logFile.Name())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("keyhub not ready after 30s")
		}
	}
}

// stop ends keyhub gracefully (SIGTERM), then for good.
func (s *keyhubServer) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	os.RemoveAll(s.dir)
}

// rssAfterGC forces a garbage collection in keyhub (pprof's heap?gc=1 on
// the debug listener) and returns its resident set size in bytes.
func (s *keyhubServer) rssAfterGC() (int64, error) {
	resp, err := http.Get("http://" + s.debugAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, fmt.Errorf("force GC: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("force GC: HTTP %d", resp.StatusCode)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// cpuTime is the CPU time (user and system, all threads) keyhub has used.
// Unlike throughput, CPU time per request hardly moves when other
// processes load the machine, so it keeps the paths comparable there.
func (s *keyhubServer) cpuTime() (time.Duration, error) { return processCPU(s.cmd.Process.Pid) }

// processCPU is the CPU time (user and system, all threads) process pid
// has used.
func processCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from its ")".
	rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0, errors.New("short /proc/<pid>/stat")
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// waitIdle waits until keyhub uses under a tenth of a core for a quarter
// of a second, or gives up after limit (then the figures carry the noise).
func (s *keyhubServer) waitIdle(ctx context.Context, limit time.Duration) error {
	const window = 250 * time.Millisecond
	deadline := time.Now().Add(limit)
	last, err := s.cpuTime()
	if err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(window):
		}
		now, err := s.cpuTime()
		if err != nil {
			return err
		}
		if now-last < window/10 {
			return nil
		}
		last = now
	}
	return nil
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const clockTicks = 100

// fetchProfile saves one of keyhub's pprof profiles (heap, goroutine...).
func (s *keyhubServer) fetchProfile(name, file string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", s.debugAddr, name))
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	defer resp.Body.Close()
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// cpuProfile records keyhub's CPU profile for duration, after delay, into
// file.
func (s *keyhubServer) cpuProfile(delay, duration time.Duration, file string) error {
	time.Sleep(delay)
	seconds := max(1, int(duration/time.Second))
	return s.fetchProfile(fmt.Sprintf("profile?seconds=%d", seconds), file)
}

// freshDatabase (re)creates database name on the server of baseURL and
// returns its URL.
func freshDatabase(ctx context.Context, baseURL, name string) (string, error) {
	ident := pgx.Identifier{name}.Sanitize()
	if err := onServer(ctx, baseURL, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)", "CREATE DATABASE "+ident); err != nil {
		return "", err
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// dropDatabase drops database name on the server of baseURL.
func dropDatabase(ctx context.Context, baseURL, name string) error {
	return onServer(ctx, baseURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// onServer runs statements, in order, on the database of baseURL.
func onServer(ctx context.Context, baseURL string, statements ...string) error {
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return fmt.Errorf("connect %s: %w", redact(baseURL), err)
	}
	defer conn.Close(ctx)
	for _, statement := range statements {
		if _, err := conn.Exec(ctx, statement); err != nil {
			return err
		}
	}
	return nil
}

// redact drops a password from a URL for messages.
func redact(url string) string {
	if at := strings.LastIndexByte(url, '@'); at >= 0 {
		if scheme := strings.Index(url, "://"); scheme >= 0 && scheme < at {
			return url[:scheme+3] + "…" + url[at:]
		}
	}
	return url
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// sql runs one statement in keyhub's database.
func (s *keyhubServer) sql(ctx context.Context, query string, args ...any) error {
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, query, args...)
	return err
}

// startUpstream serves the product the gateway rows put behind keyhub: the
// smallest useful answer (200, a short text body), so that what the rows
// measure is the path in front of it.
func startUpstream() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	hello := []byte("hello from the product\n")
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(hello)
	})}
	go func() { _ = srv.Serve(ln) }() // ends when the listener closes
	return ln, nil
}
