package docs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/pgtest"
	"github.com/keyhub/keyhub/internal/testdep"
)

// TestREADMEProductWalkthrough runs the README's "Put your product behind
// keyhub" blocks (the built-in proxy's, then the verify API's) as written,
// in one shell: `make run` for real (on a test database, with the keyhub
// binary built here: GO=true BIN=...), the example product with `go run`,
// the key, the proxied requests and the verifications. Only the two
// addresses are replaced by free ports and `go run ./cmd/keyhub` by the
// same program built. Every `# {…}` line of the blocks is an answer that
// must appear, in order, in what the shell printed (`…` matches anything).
func TestREADMEProductWalkthrough(t *testing.T) {
	t.Parallel()
	testdep.Program(t, "curl")
	realMake, err := exec.LookPath("make")
	if err != nil {
		testdep.Missing(t, "make not found")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := readmeBlock(t, string(readme), "### The built-in proxy: `GATEWAY_ROUTES`\n") +
		readmeBlock(t, string(readme), "### Verify a key from your backend: `POST /v1/keys/verify`\n")
	for _, want := range []string{"make run &", "go run ./cmd/example-product ", "go run ./cmd/keyhub dev token", "localhost:8080", "127.0.0.1:9000", "/v1/keys/verify"} {
		if !strings.Contains(block, want) {
			t.Fatalf("the walkthrough no longer holds %q:\n%s", want, block)
		}
	}
	answers := expectedAnswers(block)
	if len(answers) < 8 {
		t.Fatalf("the walkthrough shows %d answers; it showed every request's", len(answers))
	}

	dir := t.TempDir()
	keyhub := filepath.Join(dir, "keyhub")
	if out, err := exec.Command("go", "build", "-o", keyhub, "./cmd/keyhub").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/keyhub: %v\n%s", err, out)
	}
	// `make run` as the README runs it, with the binary built above (GO=true
	// makes its build step a no-op) and its run files in dir.
	wrapper := filepath.Join(dir, "path")
	if err := os.Mkdir(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nexec " + realMake + ` "$@" GO=true BIN=` + dir + " PG_DIR=" + filepath.Join(dir, "pg") + "\n"
	if err := os.WriteFile(filepath.Join(wrapper, "make"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, dbURL := pgtest.NewDB(t)
	keyhubAddr := "localhost:" + portOf(freePort(t))
	productAddr := freePort(t)

	shell := strings.NewReplacer(
		"localhost:8080", keyhubAddr,
		"127.0.0.1:9000", productAddr,
		"go run ./cmd/keyhub ", keyhub+" ",
	).Replace(block)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", shell)
	cmd.Env = append(os.Environ(),
		"PATH="+wrapper+string(os.PathListSeparator)+os.Getenv("PATH"),
		"DATABASE_URL="+dbURL, "LISTEN_ADDR="+keyhubAddr, "KEYHUB_DATA_DIR="+filepath.Join(dir, "data"),
		// Nothing of the test's own environment changes what make run does.
		"SUPABASE_URL=", "SUPABASE_JWKS_URL=", "REDIS_URL=", "KEYHUB_ENV=", "PUBLIC_URL=", "LOG_LEVEL=",
		"PRODUCT_SCOPES=", "GATEWAY_ROUTES=", "VERIFY_TOKENS=", "METRICS_ADDR=",
	)
	// The shell's jobs (make run, the product) share its process group and
	// end with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A file, not a pipe: the jobs still running keep a pipe open, and Wait
	// would wait for them.
	out, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute): // a bound for a hang (a readiness loop that never ends), not a wait
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("the walkthrough did not finish in 5 minutes; it printed:\n%s", readFile(out.Name()))
	}
	printed := readFile(out.Name())
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s", err, printed)
	}
	if missing := missingAnswers(printed, answers); missing != "" {
		t.Fatalf("the walkthrough did not answer\n  %s\nas the README shows; it printed:\n%s", missing, printed)
	}
}

// readmeBlock is the first sh block after heading.
func readmeBlock(t *testing.T, readme, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, heading)
	if !ok {
		t.Fatalf("README.md has no %q", strings.TrimSpace(heading))
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatalf("no sh block after %q", strings.TrimSpace(heading))
	}
	block, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatalf("the sh block after %q does not end", strings.TrimSpace(heading))
	}
	return block
}

// expectedAnswers are the block's answer lines ("# {...}") as patterns of
// a whole output line, "…" standing for anything.
func expectedAnswers(block string) []*regexp.Regexp {
	var answers []*regexp.Regexp
	for _, line := range strings.Split(block, "\n") {
		answer, ok := strings.CutPrefix(strings.TrimSpace(line), "# {")
		if !ok {
			continue
		}
		pattern := strings.ReplaceAll(regexp.QuoteMeta("{"+answer), "…", ".*")
		answers = append(answers, regexp.MustCompile("^"+pattern+"$"))
	}
	return answers
}

// missingAnswers names the first answer not found in output after the
// previous one's line ("" when all are there, in order). Other lines (make
// run's log) are skipped.
func missingAnswers(output string, answers []*regexp.Regexp) string {
	lines := strings.Split(output, "\n")
	next := 0
	for _, answer := range answers {
		for next < len(lines) && !answer.MatchString(strings.TrimSpace(lines[next])) {
			next++
		}
		if next == len(lines) {
			return answer.String()
		}
		next++
	}
	return ""
}

// portOf is the port of a host:port address.
func portOf(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
