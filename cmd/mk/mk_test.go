package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/api/client"
	"github.com/keyhub/keyhub/internal/apitest"
)

// TestMain lets the test binary be mk itself: the scripts exec "mk", a
// separate process running main, so exit codes, standard streams, files
// and signals are real.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"mk": main})
}

// TestScripts runs testdata/script/*.txtar against one real keyhub (each
// script signs in as its own user, so scripts run in parallel).
//
// Besides testscript's commands, scripts have:
//
//	exits CODE PROG [ARGS...]   run PROG (as exec does) and check its exit code
//	mode PERM FILE              check a file's permission bits (e.g. 0600)
//	setjson VAR PATH            set $VAR to a field of the last stdout's JSON (PATH: a.b.0.c)
//	waitconns N                 wait until the user has N open WebSocket connections
//	waitfor FILE REGEXP         wait until FILE (written by a background command) matches
//	tier NAME                   move the script's user to a tier (in the database)
//	flushusage                  write the server's pending key usage counts now
//	sweepwarnings DURATION      run the server's expiry-warnings sweep with its clock DURATION ahead
//	rotatedue ID                run the server's auto-rotation step until the key ID is rotated
func TestScripts(t *testing.T) {
	// The free tier's request limit is raised so that the scripts' polling
	// never meets it; the pro tier's is tiny for ratelimit.txtar.
	env := apitest.New(t, map[string]string{"RATE_LIMIT_TIER_RPM": "free=6000,pro=2"})
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			user := strings.TrimPrefix(filepath.Base(e.WorkDir), "script-") + "@example.com"
			token, err := env.Issuer.Token(env.TokenIssuer, user, time.Hour)
			if err != nil {
				return err
			}
			e.Setenv("KEYHUB_URL", env.URL)
			e.Setenv("USER_TOKEN", token)
			e.Setenv("HOME", e.WorkDir)
			e.Setenv("XDG_CONFIG_HOME", filepath.Join(e.WorkDir, "config"))
			// A race-enabled mk sleeps a second at exit by default.
			e.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":     cmdExits,
			"mode":      cmdMode,
			"setjson":   cmdSetJSON,
			"waitconns": cmdWaitConns,
			"waitfor":   cmdWaitFor,
			"flushusage": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 0 {
					ts.Fatalf("usage: flushusage")
				}
				ts.Check(env.App.FlushUsage(context.Background()))
			},
			"sweepwarnings": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: sweepwarnings DURATION")
				}
				ahead, err := time.ParseDuration(args[0])
				ts.Check(err)
				_, err = env.App.Store.RecordExpiryWarnings(context.Background(), time.Now().Add(ahead))
				ts.Check(err)
			},
			"rotatedue": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: rotatedue ID")
				}
				// The key may not be due yet (or the background sweep may
				// have rotated it already): wait until it is replaced.
				for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					_, err := env.App.Store.RotateDueKeys(context.Background())
					ts.Check(err)
					var replaced bool
					ts.Check(env.Pool.QueryRow(context.Background(), `SELECT replaced_by IS NOT NULL FROM api_keys WHERE id = $1`, args[0]).Scan(&replaced))
					if replaced {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("key %s was not rotated within 15s", args[0])
					}
				}
			},
			"tier": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: tier NAME")
				}
				// Every owner of this script's user: the script's only tenant.
				_, err := env.Pool.Exec(context.Background(),
					`UPDATE owners SET tier = $1 WHERE id IN (SELECT default_owner_id FROM users WHERE email = $2)`,
					args[0], strings.TrimPrefix(filepath.Base(ts.Getenv("WORK")), "script-")+"@example.com")
				ts.Check(err)
			},
		},
	})
}

func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		got = exitErr.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mode PERM FILE")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	info, err := os.Stat(ts.MkAbs(args[1]))
	ts.Check(err)
	if got := info.Mode().Perm(); got != os.FileMode(want) {
		ts.Fatalf("%s has mode %#o, want %#o", args[1], got, want)
	}
}

func cmdSetJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setjson VAR PATH")
	}
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &v); err != nil {
		ts.Fatalf("stdout is not JSON: %v", err)
	}
	for _, step := range strings.Split(args[1], ".") {
		switch node := v.(type) {
		case map[string]any:
			v = node[step]
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(node) {
				ts.Fatalf("%s: no element %q", args[1], step)
			}
			v = node[i]
		default:
			ts.Fatalf("%s: %q is not in the JSON", args[1], step)
		}
	}
	switch v.(type) {
	case nil, map[string]any, []any:
		ts.Fatalf("%s is not a scalar: %v", args[1], v)
	}
	ts.Setenv(args[0], fmt.Sprint(v))
}

func cmdWaitConns(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitconns N")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	c, err := client.New(ts.Getenv("KEYHUB_URL"), client.WithToken(ts.Getenv("USER_TOKEN")))
	ts.Check(err)
	deadline := time.Now().Add(15 * time.Second)
	for {
		list, err := c.ListWSConnections(context.Background())
		ts.Check(err)
		if len(list.Data) == want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%d open connections, want %d", len(list.Data), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitfor FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	deadline := time.Now().Add(15 * time.Second)
	for {
		raw, _ := os.ReadFile(ts.MkAbs(args[0])) // not there yet is fine
		if re.Match(raw) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s does not match %q:\n%s", args[0], args[1], raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExitCodes: the documented codes, for every kind of error, also
// those the scripts do not meet (a 429 on a WebSocket upgrade: the
// connector retries it).
func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want int
	}{
		{usageErrorf("bad flag"), exitUsage},
		{authError{"not logged in"}, exitAuth},
		{&client.Error{Status: 401, Code: "KEY_REVOKED"}, exitAuth},
		{&client.Error{Status: 403, Code: "INSUFFICIENT_SCOPE"}, exitAuth},
		{fmt.Errorf("wrapped: %w", &client.Error{Status: 404, Code: "NOT_FOUND"}), exitNotFound},
		{&client.Error{Status: 429, Code: "TOO_MANY_CONNECTIONS"}, exitRateLimited},
		{&client.Error{Status: 409, Code: "KEY_LIMIT_REACHED"}, exitError},
		{&client.Error{Status: 503, Code: "NOT_READY"}, exitError},
		{&client.CloseError{Code: client.CloseKeyRevoked, Reason: "key revoked"}, exitAuth},
		{&client.CloseError{Code: 1008, Reason: "UNKNOWN_API_KEY"}, exitAuth},
		{&client.CloseError{Code: 1008, Reason: "rate limit exceeded"}, exitError},
		{&client.CloseError{Code: client.CloseClosedByOwner, Reason: "closed by owner"}, exitError},
		{errors.New("connection refused"), exitError},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestExpiryWarningLine: key_expiring in words, the time left rounded
// down to its largest unit.
func TestExpiryWarningLine(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 10, 0, 30, 0, time.UTC)
	id := uuid.MustParse("0b9e2c41-5d7a-4f10-9c3e-2a1b4c5d6e7f")
	key := "mk_AbCdEfGh" + strings.Repeat("x", 35)
	for _, tc := range []struct {
		key  string
		left time.Duration
		want string
	}{
		{key, 7*24*time.Hour - time.Minute, "key mk_AbCdEfGh… expires in 6 days (2026-12-12 09:59 UTC)"},
		{key, 48 * time.Hour, "key mk_AbCdEfGh… expires in 2 days (2026-12-07 10:00 UTC)"},
		{key, 47 * time.Hour, "key mk_AbCdEfGh… expires in 1 day (2026-12-07 09:00 UTC)"},
		{key, 23*time.Hour + 59*time.Minute, "key mk_AbCdEfGh… expires in 23 hours (2026-12-06 09:59 UTC)"},
		{key, 61 * time.Minute, "key mk_AbCdEfGh… expires in 1 hour (2026-12-05 11:01 UTC)"},
		{key, 2 * time.Minute, "key mk_AbCdEfGh… expires in 2 minutes (2026-12-05 10:02 UTC)"},
		{key, 59 * time.Second, "key mk_AbCdEfGh… expires in less than a minute (2026-12-05 10:01 UTC)"},
		{key, -time.Second, "key mk_AbCdEfGh… expired (2026-12-05 10:00 UTC)"},
		// Not an mk_ key in hand (a token): the key by the message's id.
		{"", time.Hour, "key 0b9e2c41-5d7a-4f10-9c3e-2a1b4c5d6e7f expires in 1 hour (2026-12-05 11:00 UTC)"},
	} {
		warning := api.WSKeyExpiring{Type: api.WSTypeKeyExpiring, KeyID: id, ExpiresAt: now.Add(tc.left)}
		if got := expiryWarningLine(tc.key, warning, now); got != tc.want {
			t.Errorf("left %v: got %q, want %q", tc.left, got, tc.want)
		}
	}
}

// TestRotationEventsOfOwnKeys: the audit events of mk connect's own
// delivered rotation are not printed (its line says it), whether they
// arrive before key_rotated (on the old connection) or after it (on the
// new one); other keys' events and an undelivered refresh of its key are.
func TestRotationEventsOfOwnKeys(t *testing.T) {
	t.Parallel()
	old, next, other := uuid.New(), uuid.New(), uuid.New()
	refreshed := func(key, by uuid.UUID, delivered bool) *api.Event {
		details := fmt.Sprintf(`{"replaced_by":%q,"grace_seconds":3600}`, by)
		if delivered {
			details = fmt.Sprintf(`{"replaced_by":%q,"grace_seconds":3600,"delivered_to_connections":1}`, by)
		}
		return &api.Event{Type: "refreshed", KeyID: key, Details: json.RawMessage(details)}
	}
	created := func(key, replaces uuid.UUID) *api.Event {
		return &api.Event{Type: "created", KeyID: key, Details: json.RawMessage(fmt.Sprintf(`{"replaces":%q}`, replaces))}
	}
	type step struct {
		event   *api.Event
		handed  uuid.UUID // key_rotated hands this key over (no event)
		printed bool
	}
	for name, steps := range map[string][]step{
		"events first": {
			{event: refreshed(old, next, true)}, {event: created(next, old)}, {handed: next},
		},
		"key_rotated first": {
			{handed: next}, {event: refreshed(old, next, true)}, {event: created(next, old)},
		},
		"another key's rotation": {
			{event: refreshed(other, next, true), printed: true}, {event: created(next, other), printed: true},
		},
		"refreshed without delivery": {
			{event: refreshed(old, next, false), printed: true}, {event: created(next, old), printed: true},
		},
		"other events of its keys": {
			{handed: next}, {event: &api.Event{Type: "expired", KeyID: old, Details: json.RawMessage(`{}`)}, printed: true},
			{event: &api.Event{Type: "updated", KeyID: next, Details: json.RawMessage(`{"changed":["name"]}`)}, printed: true},
		},
	} {
		own := ownKeys{old: true} // the welcome's key
		for i, s := range steps {
			if s.event == nil {
				own[s.handed] = true
				continue
			}
			if skipped := own.rotationEvent(s.event); skipped == s.printed {
				t.Errorf("%s, step %d (%s of %v): skipped = %v, want %v", name, i, s.event.Type, s.event.KeyID, skipped, !s.printed)
			}
		}
	}
}
