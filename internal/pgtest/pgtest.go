// Package pgtest gives each test its own fresh, migrated database on the
// PostgreSQL server that `make test` starts. Databases are cloned from a
// migrated template, which is much faster than migrating each one, and are
// dropped when the test ends, so tests can run in parallel.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhub/keyhub/db"
	"github.com/keyhub/keyhub/internal/postgres"
)

// EnvURL names the variable holding the test server's URL.
const EnvURL = "KEYHUB_TEST_DATABASE_URL"

var (
	templateMu   sync.Mutex
	templateName string
)

// ServerURL returns the test server's URL, failing the test when it is not
// set: a test that needs PostgreSQL must not pass by skipping.
func ServerURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Fatalf("%s is not set: run the tests with `make test`, which starts a PostgreSQL server", EnvURL)
	}
	return u
}

// URLFor returns the server URL with its database replaced by name.
func URLFor(t testing.TB, name string) string {
	t.Helper()
	u, err := url.Parse(ServerURL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// NewDatabase creates an empty database (not migrated) and returns its URL.
// It is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, "")
}

// NewDB creates a fresh migrated database and returns a pool on it; both
// are closed and dropped when the test ends.
func NewDB(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	dbURL := createDatabase(t, migratedTemplate(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, dbURL
}

func createDatabase(t testing.TB, template string) string {
	t.Helper()
	name := "t_" + randomHex(t, 8)
	admin := adminConn(t)
	defer admin.Close(context.Background())
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		stmt += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := admin.Exec(context.Background(), stmt); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		conn := adminConn(t)
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return URLFor(t, name)
}

// migratedTemplate returns the name of a database holding the current
// migrations, creating it once per migration set. The name carries a hash
// of the migrations, so a changed migration gets a new template; building
// under another name and renaming keeps a half-built one from being used.
func migratedTemplate(t testing.TB) string {
	t.Helper()
	templateMu.Lock()
	defer templateMu.Unlock()
	if templateName != "" {
		return templateName
	}
	name := "keyhub_tmpl_" + migrationsHash(t)
	ctx := context.Background()
	admin := adminConn(t)
	defer admin.Close(ctx)
	// Packages run as separate processes: serialise template creation.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		t.Fatalf("lock template creation: %v", err)
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock(727274)") //nolint:errcheck // the session ends right after
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatalf("look up template: %v", err)
	}
	if !exists {
		building := name + "_building"
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()); err != nil {
			t.Fatalf("drop stale template: %v", err)
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
			t.Fatalf("create template: %v", err)
		}
		pool, err := postgres.Open(ctx, URLFor(t, building))
		if err != nil {
			t.Fatalf("open template: %v", err)
		}
		err = postgres.MigrateUp(ctx, pool, nil)
		pool.Close()
		if err != nil {
			t.Fatalf("migrate template: %v", err)
		}
		if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatalf("rename template: %v", err)
		}
	}
	templateName = name
	return name
}

func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL(t))
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	return conn
}

func migrationsHash(t testing.TB) string {
	t.Helper()
	h := sha256.New()
	err := fs.WalkDir(db.Migrations, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(db.Migrations, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(raw))
		h.Write(raw)
		return nil
	})
	if err != nil {
		t.Fatalf("hash migrations: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
