package forwardauth_test

import (
	"os"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/gateway/forwardauth"
)

// TestREADMEShowsTheTestedConfigurations: the README's nginx and Caddy
// snippets are, byte for byte, the files the tests run against the real
// servers.
func TestREADMEShowsTheTestedConfigurations(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for lang, file := range map[string]string{"nginx": forwardauth.Nginx, "caddyfile": forwardauth.Caddyfile} {
		if !strings.Contains(string(readme), "```"+lang+"\n"+file+"```\n") {
			t.Errorf("README.md does not show the tested %s configuration verbatim (internal/gateway/forwardauth)", lang)
		}
	}
}
