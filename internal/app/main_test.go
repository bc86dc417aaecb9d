package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/app"
	"github.com/keyhub/keyhub/internal/config"
	"github.com/keyhub/keyhub/internal/postgres"
)

// childEnv makes the test binary serve keyhub instead of running tests:
// the tests start it as a second process they can kill -9.
const childEnv = "KEYHUB_TEST_CHILD_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := serveChild(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// serveChild is a keyhub process configured from its environment, as
// `keyhub serve` is, minus the graceful shutdown it will never get.
func serveChild() error {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	ctx := context.Background()
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(ctx, cfg, pool, log)
	if err != nil {
		return err
	}
	a.Start(ctx)
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	return http.Serve(ln, a.Handler)
}

// child is a keyhub in another OS process.
type child struct {
	URL string
	cmd *exec.Cmd
}

// startChild starts a keyhub process with env and waits until it answers
// /readyz and its change feed listens (its log says so).
func startChild(t *testing.T, env map[string]string) *child {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "LISTEN_ADDR="+addr, "LOG_LEVEL=warn")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{URL: "http://" + addr, cmd: cmd}
	t.Cleanup(c.kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child keyhub did not get ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL: no cleanup of any kind.
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}
