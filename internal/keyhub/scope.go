package keyhub

import (
	"fmt"
	"math/bits"
	"regexp"
	"strings"
)

// Scopes is a set of permissions held as bits, so checking one on the hot
// path costs an AND and no allocation. Bits mean something only within one
// ScopeCatalog (one process): what is stored and sent are scope names.
type Scopes uint64

// keyhub's own scopes, the same bits in every catalog.
const (
	ScopeKeysRead Scopes = 1 << iota
	ScopeKeysWrite
	ScopeEventsRead
	ScopeWSConnect

	// BuiltinScopes are keyhub's own four. A dashboard (JWT) user holds
	// these and every product scope: ScopeCatalog.All.
	BuiltinScopes = ScopeKeysRead | ScopeKeysWrite | ScopeEventsRead | ScopeWSConnect
	// AnonymousReadOnlyScopes is all an anonymous sign-in holds under
	// ANONYMOUS_USERS=read-only: it reads, and creates, refreshes and
	// connects nothing. No product scope: a visitor who has not linked an
	// identity does not use the product.
	AnonymousReadOnlyScopes = ScopeKeysRead | ScopeEventsRead
)

// builtinNames are the names of keyhub's own scopes, by bit.
var builtinNames = []string{"keys:read", "keys:write", "events:read", "ws:connect"}

// MaxProductScopes is how many product scopes PRODUCT_SCOPES may define:
// the bits of Scopes that keyhub's own leave free.
const MaxProductScopes = 64 - 4

// maxScopeNameLen bounds a scope name (the database's check says the same).
const maxScopeNameLen = 64

// productScopeName is the shape of an operator's scope: a namespace and a
// permission, e.g. app:read, tasks.v2:write, mcp:tools.*. The database's
// check (scope_names_valid) holds every stored name to the same pattern.
var productScopeName = regexp.MustCompile(`^[a-z][a-z0-9_.-]*:[a-z0-9_.*-]+$`)

// ValidProductScope reports why name cannot be a product scope: its shape,
// its length, or a clash with keyhub's own scopes or their namespaces
// (keys:, events:, ws:), which keyhub may grow into.
func ValidProductScope(name string) error {
	if len(name) > maxScopeNameLen || !productScopeName.MatchString(name) {
		return fmt.Errorf("product scope %q must look like namespace:permission (lower case, [a-z][a-z0-9_.-]*:[a-z0-9_.*-]+, at most %d characters)", name, maxScopeNameLen)
	}
	namespace, _, _ := strings.Cut(name, ":")
	for _, own := range builtinNames {
		if ns, _, _ := strings.Cut(own, ":"); ns == namespace {
			return fmt.Errorf("product scope %q is in keyhub's own namespace %q", name, namespace+":")
		}
	}
	return nil
}

// ScopeCatalog is the scopes one process knows: keyhub's four and the
// operator's product scopes (PRODUCT_SCOPES), each given a bit at start.
// It is immutable, so it is shared without locks. A nil *ScopeCatalog is
// the catalog of keyhub's own scopes alone.
type ScopeCatalog struct {
	names  []string // by bit
	byName map[string]Scopes
	all    Scopes
}

// builtinCatalog is what a nil *ScopeCatalog stands for.
var builtinCatalog = mustCatalog(nil)

func mustCatalog(product []string) *ScopeCatalog {
	c, err := NewScopeCatalog(product)
	if err != nil {
		panic(err)
	}
	return c
}

// NewScopeCatalog registers the product scopes after keyhub's own. Each
// must pass ValidProductScope and appear once; their order decides only
// their bits in this process, never what a stored key means.
func NewScopeCatalog(product []string) (*ScopeCatalog, error) {
	if len(product) > MaxProductScopes {
		return nil, fmt.Errorf("at most %d product scopes, got %d", MaxProductScopes, len(product))
	}
	c := &ScopeCatalog{byName: make(map[string]Scopes, len(builtinNames)+len(product))}
	for _, name := range append(append([]string(nil), builtinNames...), product...) {
		if _, dup := c.byName[name]; dup {
			return nil, fmt.Errorf("scope %q is listed twice", name)
		}
		if len(c.names) >= len(builtinNames) {
			if err := ValidProductScope(name); err != nil {
				return nil, err
			}
		}
		bit := Scopes(1) << len(c.names)
		c.names = append(c.names, name)
		c.byName[name] = bit
		c.all |= bit
	}
	return c, nil
}

func (c *ScopeCatalog) orBuiltin() *ScopeCatalog {
	if c == nil {
		return builtinCatalog
	}
	return c
}

// All is every scope of the catalog: what a dashboard user holds, and what
// a key created without scopes by such a user gets.
func (c *ScopeCatalog) All() Scopes { return c.orBuiltin().all }

// Known lists every scope name: keyhub's own, then the product scopes in
// their configured order.
func (c *ScopeCatalog) Known() []string { return append([]string(nil), c.orBuiltin().names...) }

// Product lists the product scopes, in their configured order.
func (c *ScopeCatalog) Product() []string {
	return append([]string(nil), c.orBuiltin().names[len(builtinNames):]...)
}

// Lookup is the bit of one scope name, and whether the catalog knows it.
func (c *ScopeCatalog) Lookup(name string) (Scopes, bool) {
	s, ok := c.orBuiltin().byName[name]
	return s, ok
}

// Parse turns the names a client sent into a set; a name the catalog does
// not know is an INVALID_SCOPE error naming it.
func (c *ScopeCatalog) Parse(names []string) (Scopes, error) {
	c = c.orBuiltin()
	var s Scopes
	for _, n := range names {
		bit, ok := c.byName[n]
		if !ok {
			return 0, Errorf(CodeInvalidScope, "unknown scope %q (known: %s)", n, strings.Join(c.names, ", "))
		}
		s |= bit
	}
	return s, nil
}

// FromStored turns the names a key row holds into a set, ignoring names
// the catalog does not know: a product scope removed from PRODUCT_SCOPES
// stays in the row but simply stops matching, and the key keeps working
// for everything else.
func (c *ScopeCatalog) FromStored(names []string) Scopes {
	c = c.orBuiltin()
	var s Scopes
	for _, n := range names {
		s |= c.byName[n]
	}
	return s
}

// Names returns the names of the scopes in s, in bit order.
func (c *ScopeCatalog) Names(s Scopes) []string {
	c = c.orBuiltin()
	out := make([]string, 0, len(c.names))
	for i, name := range c.names {
		if s&(1<<i) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// Has reports whether s holds every scope of want.
func (s Scopes) Has(want Scopes) bool { return s&want == want }

// Strings names keyhub's own scopes in s. Product scopes have names only
// in a catalog: ScopeCatalog.Names names them all.
func (s Scopes) Strings() []string { return builtinCatalog.Names(s & BuiltinScopes) }

// String names keyhub's own scopes in s, comma-separated, and counts the
// others, for logs and error messages that have no catalog at hand.
func (s Scopes) String() string {
	names := s.Strings()
	if other := s &^ BuiltinScopes; other != 0 {
		names = append(names, fmt.Sprintf("+%d product", bits.OnesCount64(uint64(other))))
	}
	return strings.Join(names, ",")
}
