package client_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsNoInternal: the client is public, so it may import package
// api, the standard library and small libraries, never keyhub's internal
// packages (its tests may: they start a real keyhub).
func TestImportsNoInternal(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/keyhub/keyhub/") && path != "github.com/keyhub/keyhub/api" {
				t.Errorf("%s imports %s: the client may import only github.com/keyhub/keyhub/api of this module", name, path)
			}
		}
	}
}
