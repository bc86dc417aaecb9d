package docs_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/apitest"
)

// The test binary doubles as the keyhub that `make run` starts (the script
// under test is db/run.sh; keyhub's own shutdown is tested in cmd/keyhub):
// with KEYHUB_FAKE_LOG set it answers `migrate up` at once, and `serve`
// listens on LISTEN_ADDR until SIGTERM or SIGINT, then checks that the
// database still answers (the cluster must outlive the server) and writes
// what happened to the log.
func TestMain(m *testing.M) {
	if logPath := os.Getenv("KEYHUB_FAKE_LOG"); logPath != "" {
		os.Exit(fakeKeyhub(logPath, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeKeyhub(logPath string, args []string) int {
	logf := func(format string, a ...any) {
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return
		}
		defer f.Close()
		fmt.Fprintf(f, "%d "+format+"\n", append([]any{os.Getpid()}, a...)...)
	}
	if len(args) > 0 && args[0] == "migrate" {
		return 0
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	ln, err := net.Listen("tcp", os.Getenv("LISTEN_ADDR"))
	if err != nil {
		logf("listen: %v", err)
		return 1
	}
	defer ln.Close()
	logf("serving on %s", ln.Addr())
	sig := <-signals
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := "database up"
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		db = "database down"
	}
	logf("stopped by %v, %s", sig, db)
	return 0
}

// makeRun is one `make run` with the fake keyhub, in a folder of its own.
type makeRun struct {
	cmd    *exec.Cmd
	addr   string
	stderr *apitest.LogBuffer // make's output, read while it runs
	done   chan error
}

// runEnv holds what the runs of one test share: the fake binary's folder,
// the cluster folder and the log.
type runEnv struct {
	dir, pgDir, log string
}

func newRunEnv(t *testing.T) *runEnv {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil && os.Getenv("CI") == "" {
		t.Skip("setpriv (util-linux) not found: the parent-death signals make run relies on are Linux only")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not found")
	}
	dir := t.TempDir()
	// PostgreSQL runs as the postgres user when the tests run as root: it
	// must be able to reach its folder.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "keyhub")); err != nil {
		t.Fatal(err)
	}
	e := &runEnv{dir: dir, pgDir: filepath.Join(dir, "state", "pg"), log: filepath.Join(dir, "keyhub.log")}
	t.Cleanup(func() {
		// Whatever a failed test left: the cluster is stopped by make stop.
		stop := exec.Command("db/run.sh", "stop")
		stop.Env = append(os.Environ(), "PG_DIR="+e.pgDir)
		out, err := stop.CombinedOutput()
		if err != nil {
			t.Logf("cleanup: db/run.sh stop: %v\n%s", err, out)
		}
	})
	return e
}

// start runs `make run` (GO=true: the build step does nothing and bin/ is
// the fake) in its own process group, and waits until the server listens.
func (e *runEnv) start(t *testing.T) *makeRun {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command("make", "--no-print-directory", "run", "GO=true", "BIN="+e.dir, "PG_DIR="+e.pgDir)
	cmd.Env = append(os.Environ(), "LISTEN_ADDR="+addr, "KEYHUB_FAKE_LOG="+e.log, "DATABASE_URL=", "SUPABASE_URL=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r := &makeRun{cmd: cmd, addr: addr, stderr: &apitest.LogBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = r.stderr, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	// A bound for failures only: on a busy machine initdb alone can take
	// a minute.
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(readFile(e.log), "serving on "+addr) {
		select {
		case err := <-r.done:
			t.Fatalf("make run exited before serving: %v\n%s", err, r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("make run never served; its output:\n%s", r.stderr)
		}
	}
	return r
}

// wait waits for make to exit and returns its error (nil: exit 0).
func (r *makeRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(3 * time.Minute):
		t.Fatalf("make run did not exit; its output:\n%s", r.stderr)
		return nil
	}
}

// waitLog waits until the fake keyhub's log has a line containing want.
func (e *runEnv) waitLog(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if strings.Contains(readFile(e.log), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake keyhub never logged %q; its log:\n%s", want, readFile(e.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterRunning reports whether the test's cluster is up.
func (e *runEnv) clusterRunning(t *testing.T) bool {
	t.Helper()
	return exec.Command("db/pgcluster.sh", "status", e.pgDir).Run() == nil
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Every way of stopping `make run` shuts keyhub down gracefully while the
// database is still up, then stops the cluster, and make says nothing of
// an error.
func TestMakeRunStopPaths(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts PostgreSQL clusters")
	}
	e := newRunEnv(t)
	recipe := func(r *makeRun) int { // the pid of db/run.sh, make's child
		out, err := exec.Command("pgrep", "-P", fmt.Sprint(r.cmd.Process.Pid)).Output()
		if err != nil {
			t.Fatalf("make has no child: %v", err)
		}
		var pid int
		fmt.Sscan(string(out), &pid)
		return pid
	}
	for _, tc := range []struct {
		name string
		stop func(r *makeRun)
		// make itself dies by a signal it is sent (status 130 or 143),
		// printing nothing, so only the paths without one must exit 0.
		exit0 bool
		// A recipe killed outright is an error make reports ("Killed").
		makeReports bool
	}{
		{name: "Ctrl-C", stop: func(r *makeRun) { syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT) }},
		{name: "SIGTERM to the process group", stop: func(r *makeRun) { syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM) }},
		{name: "SIGTERM to make alone", stop: func(r *makeRun) { r.cmd.Process.Signal(syscall.SIGTERM) }},
		{name: "SIGKILL to make", stop: func(r *makeRun) { r.cmd.Process.Kill() }},
		{name: "SIGKILL to the recipe", stop: func(r *makeRun) { syscall.Kill(recipe(r), syscall.SIGKILL) }, makeReports: true},
		{name: "make stop", stop: func(r *makeRun) {
			out, err := exec.Command("make", "--no-print-directory", "stop", "PG_DIR="+e.pgDir).CombinedOutput()
			if err != nil {
				t.Errorf("make stop: %v\n%s", err, out)
			}
		}, exit0: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(e.log)
			r := e.start(t)
			if !e.clusterRunning(t) {
				t.Fatal("the cluster is not running under make run")
			}
			tc.stop(r)
			err := r.wait(t)
			e.waitLog(t, "database up", 2*time.Minute)
			if strings.Contains(readFile(e.log), "database down") {
				t.Errorf("keyhub shut down after its database:\n%s", readFile(e.log))
			}
			if tc.exit0 && err != nil {
				t.Errorf("make run: %v, want exit 0; output:\n%s", err, r.stderr)
			}
			if !tc.makeReports && strings.Contains(r.stderr.String(), "***") {
				t.Errorf("make reported an error:\n%s", r.stderr)
			}
			// The script leaves after keyhub; make may exit first when it
			// was killed outright.
			waitUntil(t, "the cluster to stop", 2*time.Minute, func() bool { return !e.clusterRunning(t) })
		})
	}
}

// A second make run on the same cluster keeps it: stopping the first leaves
// the second server and its database running; stopping the second stops
// the cluster.
func TestMakeRunSharedCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	e := newRunEnv(t)
	first := e.start(t)
	second := e.start(t)
	syscall.Kill(-first.cmd.Process.Pid, syscall.SIGINT)
	first.wait(t)
	if !e.clusterRunning(t) {
		t.Fatalf("stopping the first make run stopped the second one's database; first's output:\n%s", first.stderr)
	}
	if strings.Count(readFile(e.log), "stopped by") != 1 {
		t.Fatalf("want only the first server stopped; log:\n%s", readFile(e.log))
	}
	syscall.Kill(-second.cmd.Process.Pid, syscall.SIGINT)
	second.wait(t)
	waitUntil(t, "the cluster to stop", 2*time.Minute, func() bool { return !e.clusterRunning(t) })
	if strings.Contains(readFile(e.log), "database down") {
		t.Errorf("a server shut down after its database:\n%s", readFile(e.log))
	}
}

// A cluster left running by a run whose cleanup never ran (the script's
// inner copy killed outright) is stopped by make stop, and the next make
// run to leave stops it too.
func TestMakeStopStopsAnOrphanCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	e := newRunEnv(t)
	r := e.start(t)
	inner := innerScript(t, e)
	syscall.Kill(inner, syscall.SIGKILL)
	e.waitLog(t, "stopped by", 2*time.Minute) // the parent-death signal reached keyhub
	r.wait(t)
	if !e.clusterRunning(t) {
		t.Fatal("expected the cluster to be left running")
	}
	// The next run adopts it: it is stopped when that run leaves.
	next := e.start(t)
	syscall.Kill(-next.cmd.Process.Pid, syscall.SIGTERM)
	next.wait(t)
	waitUntil(t, "the next run to stop the cluster", 2*time.Minute, func() bool { return !e.clusterRunning(t) })

	// make stop, with no run left at all.
	r = e.start(t)
	syscall.Kill(innerScript(t, e), syscall.SIGKILL)
	r.wait(t)
	out, err := exec.Command("make", "--no-print-directory", "stop", "PG_DIR="+e.pgDir).CombinedOutput()
	if err != nil {
		t.Fatalf("make stop: %v\n%s", err, out)
	}
	if e.clusterRunning(t) {
		t.Fatalf("make stop left the cluster running:\n%s", out)
	}
}

// innerScript is the pid of the one live make run registered in the test's
// run folder (db/run.sh's inner copy).
func innerScript(t *testing.T, e *runEnv) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(e.pgDir), "run", "*.pid"))
	if len(files) != 1 {
		t.Fatalf("want one registered run, got %v", files)
	}
	var pid int
	fmt.Sscan(strings.TrimSuffix(filepath.Base(files[0]), ".pid"), &pid)
	return pid
}

// An address in use is refused before anything starts, suggesting a free
// port next to it rather than always 8081.
func TestMakeRunAddressInUse(t *testing.T) {
	t.Parallel()
	e := newRunEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command("make", "--no-print-directory", "run", "GO=true", "BIN="+e.dir, "PG_DIR="+e.pgDir)
	cmd.Env = append(os.Environ(), "LISTEN_ADDR="+ln.Addr().String(), "KEYHUB_FAKE_LOG="+e.log)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("make run on a taken address succeeded:\n%s", out)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if !strings.Contains(string(out), "is already in use") || !strings.Contains(string(out), fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d make run", port+1)) &&
		!strings.Contains(string(out), fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d make run", port+2)) {
		t.Fatalf("want the taken address named and a free port next to it suggested:\n%s", out)
	}
	if e.clusterRunning(t) {
		t.Fatal("a refused make run started the cluster")
	}
}

// waitUntil polls cond until it holds or within passes.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
