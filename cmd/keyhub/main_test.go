package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/pgtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The binary end to end: migrate, serve, health and readiness while the
// database goes away and comes back, graceful stop.
func TestServeReadinessFollowsTheDatabase(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	addr := freeAddr(t)
	env := map[string]string{"DATABASE_URL": dbURL, "LISTEN_ADDR": addr, "KEYHUB_DEV": "1", "KEYHUB_DATA_DIR": t.TempDir()}
	getenv := func(k string) string { return env[k] }

	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "up"}, getenv, &out, &out); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate up printed %q", out.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	logs := &apitest.LogBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, logs, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	}()

	get := func(path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(path string, status int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if get(path) == status {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s never answered %d; logs:\n%s", path, status, logs.String())
	}
	waitFor("/healthz", 200)
	waitFor("/readyz", 200)
	if want := "dashboard: open http://" + addr + "/dashboard/"; !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %q:\n%s", want, logs.String())
	}
	if get("/dashboard/") != 200 {
		t.Error("the dashboard is not served")
	}

	// Take the database away: readiness fails, the process lives on.
	u, _ := url.Parse(dbURL)
	name := strings.TrimPrefix(u.Path, "/")
	admin, err := pgx.Connect(context.Background(), pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	waitFor("/readyz", 503)
	if get("/healthz") != 200 {
		t.Fatal("healthz failed while the database was away")
	}
	// Bring it back: readiness recovers without a restart.
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	waitFor("/readyz", 200)
}

func TestUnknownCommandAndBadConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, &out, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
	err := run(context.Background(), []string{"serve"}, func(string) string { return "" }, &out, &out)
	if err == nil || !strings.HasPrefix(err.Error(), "DATABASE_URL") {
		t.Fatalf("missing DATABASE_URL: %v", err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &out); err != nil || !strings.HasPrefix(out.String(), "keyhub ") {
		t.Fatalf("version: %v %q", err, out.String())
	}
}
