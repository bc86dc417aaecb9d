package docs_test

import (
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/testdep"
)

// TestREADMECurlWalkthroughRunsTwice runs the README's "The key API, with
// curl" block as written, twice, against a real dev-mode server (only its
// address and the token command replaced): every answer is a success, and
// the second run is not refused (it was 409 KEY_LIMIT_REACHED, the first
// run's key still active).
func TestREADMECurlWalkthroughRunsTwice(t *testing.T) {
	t.Parallel()
	curl := testdep.Program(t, "curl")
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "## The key API, with curl\n\n```sh\n")
	if !ok {
		t.Fatal("README.md has no curl walkthrough")
	}
	block, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatal("the walkthrough's code block does not end")
	}
	const tokenLine = "TOKEN=$(go run ./cmd/keyhub dev token --email you@example.com)"
	if !strings.Contains(block, tokenLine) || !strings.Contains(block, "localhost:8080") {
		t.Fatalf("the walkthrough no longer starts with %q or names localhost:8080:\n%s", tokenLine, block)
	}
	env := apitest.NewDev(t, nil)
	u, err := url.Parse(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	script := strings.NewReplacer(tokenLine, "TOKEN='"+env.Token(t, "you@example.com")+"'", "localhost:8080", u.Host, "curl ", curl+" ").Replace(block)
	for run := 1; run <= 2; run++ {
		out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		if strings.Contains(string(out), `"error"`) || !strings.Contains(string(out), `"new_key"`) || !strings.Contains(string(out), `"type":"revoked"`) {
			t.Fatalf("run %d answered:\n%s", run, out)
		}
	}
}
