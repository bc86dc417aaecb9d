package keyhub_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/keyhub/keyhub/internal/keyhub"
)

func TestValidProductScope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"app:read", true},
		{"tasks.v2:write", true},
		{"mcp:tools.*", true},
		{"my-app_1:do-it", true},
		{"App:read", false},      // upper case
		{"app", false},           // no permission
		{"app:", false},          // empty permission
		{":read", false},         // empty namespace
		{"1app:read", false},     // namespace starts with a digit
		{"app:read:more", false}, // two colons
		{"app:re ad", false},     // space
		{"keys:admin", false},    // keyhub's namespace
		{"ws:connect", false},    // keyhub's own scope
		{"events:write", false},  // keyhub's namespace
		{"a:" + string(make([]byte, 70)), false},
		{"a:" + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", false}, // 65 characters
		{"a:" + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", true},   // 64 characters
	} {
		if err := keyhub.ValidProductScope(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidProductScope(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestScopeCatalog(t *testing.T) {
	t.Parallel()
	c, err := keyhub.NewScopeCatalog([]string{"app:read", "app:write"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Known(), []string{"keys:read", "keys:write", "events:read", "ws:connect", "app:read", "app:write"}; !slices.Equal(got, want) {
		t.Fatalf("Known() = %v, want %v", got, want)
	}
	if got := c.Product(); !slices.Equal(got, []string{"app:read", "app:write"}) {
		t.Fatalf("Product() = %v", got)
	}
	read, err := c.Parse([]string{"app:read", "keys:read"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Names(read); !slices.Equal(got, []string{"keys:read", "app:read"}) {
		t.Fatalf("Names(Parse) = %v", got)
	}
	appRead, _ := c.Lookup("app:read")
	appWrite, _ := c.Lookup("app:write")
	if !read.Has(appRead|keyhub.ScopeKeysRead) || read.Has(appWrite) || read.Has(appRead|appWrite) {
		t.Fatalf("Has is wrong on %b", read)
	}
	if !c.All().Has(keyhub.BuiltinScopes|appRead|appWrite) || c.All() != keyhub.BuiltinScopes|appRead|appWrite {
		t.Fatalf("All() = %b", c.All())
	}

	// A client naming a scope nobody configured is told which exist.
	_, err = c.Parse([]string{"app:delete"})
	var kerr *keyhub.Error
	if !errors.As(err, &kerr) || kerr.Code != keyhub.CodeInvalidScope {
		t.Fatalf("Parse(unknown) = %v, want INVALID_SCOPE", err)
	}
	// A stored name nobody configures any more is ignored, not an error.
	if got := c.FromStored([]string{"app:write", "app:removed", "events:read"}); got != appWrite|keyhub.ScopeEventsRead {
		t.Fatalf("FromStored = %v", c.Names(got))
	}

	// Without the product scopes (a nil catalog: keyhub's own only), the
	// same stored names keep their builtin part.
	var builtin *keyhub.ScopeCatalog
	if got := builtin.FromStored([]string{"app:write", "events:read"}); got != keyhub.ScopeEventsRead {
		t.Fatalf("nil catalog FromStored = %v", got)
	}
	if builtin.All() != keyhub.BuiltinScopes || len(builtin.Product()) != 0 {
		t.Fatalf("nil catalog: all %b, product %v", builtin.All(), builtin.Product())
	}
	if _, err := builtin.Parse([]string{"app:read"}); err == nil {
		t.Fatal("a nil catalog accepted a product scope")
	}
}

func TestScopeCatalogRefusesBadLists(t *testing.T) {
	t.Parallel()
	tooMany := make([]string, keyhub.MaxProductScopes+1)
	for i := range tooMany {
		tooMany[i] = "app:p" + string(rune('a'+i/26)) + string(rune('a'+i%26))
	}
	if _, err := keyhub.NewScopeCatalog(tooMany[:keyhub.MaxProductScopes]); err != nil {
		t.Fatalf("%d product scopes: %v", keyhub.MaxProductScopes, err)
	}
	for name, list := range map[string][]string{
		"duplicate":    {"app:read", "app:read"},
		"builtin":      {"keys:read"},
		"bad shape":    {"APP:READ"},
		"one too many": tooMany,
	} {
		if _, err := keyhub.NewScopeCatalog(list); err == nil {
			t.Errorf("%s: NewScopeCatalog(%v) accepted it", name, list)
		}
	}
}

// The hot path's check is an AND: no allocation, whatever the catalog.
func TestScopesHasDoesNotAllocate(t *testing.T) {
	c, _ := keyhub.NewScopeCatalog([]string{"app:read"})
	held := c.All()
	want, _ := c.Lookup("app:read")
	if n := testing.AllocsPerRun(100, func() { _ = held.Has(want) }); n != 0 {
		t.Fatalf("Has allocates %v times", n)
	}
}

// Whatever a product scope list holds, a catalog either refuses it or
// names back exactly what it parses.
func FuzzScopeCatalog(f *testing.F) {
	for _, s := range []string{"app:read", "keys:read", "a:*", "A:b", "x", "ws:x", "app:read,app:read"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c, err := keyhub.NewScopeCatalog([]string{name})
		if (err == nil) != (keyhub.ValidProductScope(name) == nil) {
			t.Fatalf("NewScopeCatalog(%q) = %v, ValidProductScope disagrees", name, err)
		}
		if err != nil {
			return
		}
		s, err := c.Parse([]string{name})
		if err != nil || !slices.Equal(c.Names(s), []string{name}) || c.FromStored([]string{name}) != s {
			t.Fatalf("%q: parse %b (%v), names %v", name, s, err, c.Names(s))
		}
	})
}
