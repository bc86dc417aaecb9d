package docs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/testdep"
)

// The image's keyhub says which version it is (issue 19, item 26): `make
// up` hands the checkout's version to Compose, Compose hands it to the
// Dockerfile as a build argument, and the Dockerfile's own go build line
// stamps it into the binary. No Docker engine here: Compose's part is
// checked with Debian's docker-compose config, the Dockerfile's by running
// its build command.
func TestImageVersionIsStamped(t *testing.T) {
	t.Parallel()
	const version = "v0.0.0-stamp-test"

	// make up passes VERSION to docker compose.
	out, err := exec.Command("make", "--no-print-directory", "-n", "up", "VERSION="+version).CombinedOutput()
	if err != nil {
		t.Fatalf("make -n up: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "KEYHUB_VERSION="+version+" docker compose up --build") {
		t.Fatalf("make up does not pass VERSION to docker compose as KEYHUB_VERSION:\n%s", out)
	}

	// Compose passes KEYHUB_VERSION to the build, and builds without it.
	compose := testdep.Program(t, "docker-compose")
	for env, want := range map[string]string{version: version, "": "dev"} {
		cmd := exec.Command(compose, "-f", "docker-compose.yml", "config")
		cmd.Env = append(os.Environ(), "KEYHUB_VERSION="+env)
		if env == "" {
			cmd.Env = withoutVar(os.Environ(), "KEYHUB_VERSION")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker-compose config: %v\n%s", err, out)
		}
		if n := strings.Count(string(out), "KEYHUB_VERSION: "+want+"\n"); n != 1 {
			t.Errorf("KEYHUB_VERSION=%q: the compose build has build argument KEYHUB_VERSION: %s %d times, want once:\n%s", env, want, n, out)
		}
	}

	// The Dockerfile's build line, run as the image's build runs it, makes
	// a keyhub that prints the argument.
	dockerfile, err := os.ReadFile("cmd/keyhub/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ARG KEYHUB_VERSION=dev$`).Match(dockerfile) {
		t.Fatal("cmd/keyhub/Dockerfile declares no ARG KEYHUB_VERSION=dev")
	}
	build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .* -o /out/keyhub \./cmd/keyhub)$`).FindSubmatch(dockerfile)
	if build == nil {
		t.Fatal("cmd/keyhub/Dockerfile has no RUN CGO_ENABLED=0 go build ... -o /out/keyhub ./cmd/keyhub line")
	}
	bin := filepath.Join(t.TempDir(), "keyhub")
	line := strings.Replace(string(build[1]), "/out/keyhub", bin, 1)
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = append(os.Environ(), "KEYHUB_VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	out, err = exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("keyhub --version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "keyhub "+version {
		t.Fatalf("keyhub --version built by the Dockerfile's line = %q, want %q", got, "keyhub "+version)
	}
}

// withoutVar is env without name.
func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
