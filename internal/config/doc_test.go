package config_test

import (
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/keyhub/keyhub/internal/config"
)

// TestReadmeDocumentsEverySetting keeps README.md's configuration table
// (which `keyhub serve --help` prints) equal to the variables Load reads.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, v := range config.Documented(readme) {
		if v.Meaning == "" {
			t.Errorf("%s has no meaning in the README", v.Name)
		}
		documented = append(documented, v.Name)
	}
	seen := map[string]bool{}
	_, _ = config.Load(func(name string) string {
		seen[name] = true
		if name == "DATABASE_URL" {
			return "postgres://localhost/keyhub"
		}
		return ""
	})
	var read []string
	for name := range seen {
		read = append(read, name)
	}
	sort.Strings(read)
	sorted := slices.Clone(documented)
	sort.Strings(sorted)
	if !slices.Equal(read, sorted) {
		t.Fatalf("README's configuration table and config.Load disagree:\n  documented: %v\n  read:       %v", sorted, read)
	}
}
