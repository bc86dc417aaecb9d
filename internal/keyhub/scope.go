package keyhub

import (
	"fmt"
	"strings"
)

// Scopes is a set of permissions held as bits, so checking one on the hot
// path costs an AND and no allocation.
type Scopes uint8

// The scopes a key can hold.
const (
	ScopeKeysRead Scopes = 1 << iota
	ScopeKeysWrite
	ScopeEventsRead
	ScopeWSConnect

	// AllScopes is what a dashboard (JWT) user holds.
	AllScopes = ScopeKeysRead | ScopeKeysWrite | ScopeEventsRead | ScopeWSConnect
)

var scopeNames = []struct {
	scope Scopes
	name  string
}{
	{ScopeKeysRead, "keys:read"},
	{ScopeKeysWrite, "keys:write"},
	{ScopeEventsRead, "events:read"},
	{ScopeWSConnect, "ws:connect"},
}

// ScopeNames lists every scope name, in a stable order.
func ScopeNames() []string { return AllScopes.Strings() }

// ParseScopes turns scope names into a set; an unknown name is an
// INVALID_SCOPE error naming it.
func ParseScopes(names []string) (Scopes, error) {
	var s Scopes
	for _, n := range names {
		found := false
		for _, sn := range scopeNames {
			if sn.name == n {
				s |= sn.scope
				found = true
				break
			}
		}
		if !found {
			return 0, Errorf(CodeInvalidScope, "unknown scope %q (known: %s)", n, strings.Join(ScopeNames(), ", "))
		}
	}
	return s, nil
}

// Has reports whether s holds every scope of want.
func (s Scopes) Has(want Scopes) bool { return s&want == want }

// Strings returns the names of the scopes in s.
func (s Scopes) Strings() []string {
	out := make([]string, 0, len(scopeNames))
	for _, sn := range scopeNames {
		if s&sn.scope != 0 {
			out = append(out, sn.name)
		}
	}
	return out
}

// String joins the names with commas, for logs.
func (s Scopes) String() string { return fmt.Sprint(s.Strings()) }
