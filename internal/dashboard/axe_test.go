package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeScript is axe-core's browser bundle: the file KEYHUB_AXE_JS names
// (`make test` sets it and installs axe-core there from npm when missing),
// or the newest version `make axe-core` left in the user's cache.
var axeScript = sync.OnceValues(func() (string, error) {
	path := os.Getenv("KEYHUB_AXE_JS")
	if path == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		found, _ := filepath.Glob(filepath.Join(cache, "keyhub", "axe-core-*", "node_modules", "axe-core", "axe.min.js"))
		if len(found) == 0 {
			return "", fmt.Errorf("axe-core is not installed in %s (make axe-core installs it from npm)", cache)
		}
		sort.Strings(found)
		path = found[len(found)-1]
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("axe-core: %w (make axe-core installs it from npm)", err)
	}
	return string(src), nil
})

// checkAxe runs axe-core on the tab's page as it is now (open dialogs
// included) and fails t on every violation, whatever its impact. Without
// axe-core the check is skipped, except in CI (CI set), where it fails.
func checkAxe(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	src, err := axeScript()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("accessibility check of %s: %v", what, err)
		}
		t.Logf("accessibility check of %s skipped: %v", what, err)
		return
	}
	// DevTools evaluation is not script of the page: the page's CSP does
	// not apply to it.
	if !eval[bool](t, ctx, `typeof window.axe === 'object'`) {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](src)); err != nil {
			t.Fatalf("load axe-core: %v", err)
		}
	}
	const run = `axe.run(document, { resultTypes: ['violations'] }).then((r) => JSON.stringify(r.violations.map((v) => ({
		id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary) }))))`
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core on %s: %v", what, err)
	}
	var violations []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	if err := json.Unmarshal([]byte(raw), &violations); err != nil {
		t.Fatalf("axe-core result %s: %v", raw, err)
	}
	for _, v := range violations {
		t.Errorf("%s: axe-core %s (%s): %s\n\t%s", what, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n\t"))
	}
}
