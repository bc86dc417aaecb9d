package httpapi_test

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// FuzzKeyNameSchemaIsTheServerRule: for any string, openapi.yaml's key
// name schema accepts it exactly when the server does, so a client that
// validates against the document is never surprised either way.
func FuzzKeyNameSchemaIsTheServerRule(f *testing.F) {
	for _, seed := range []string{
		"laptop", " laptop ", "", " ", "\u00a0", "\u00a0x\u3000", "x\u2028", "a\tb", "a\n", "\x00",
		"\u0085x", "x\u009f", "evil\u202egnp.exe", "\u2066x\u2069", "\u200fmark", "é",
		strings.Repeat("x", 100), strings.Repeat("x", 101), " " + strings.Repeat("é", 100) + " ",
		strings.Repeat("🔑", 100), strings.Repeat("🔑", 101), "x" + strings.Repeat(" ", 98) + "y", "x" + strings.Repeat(" ", 99) + "y",
	} {
		f.Add(seed)
	}
	schemas := spec.Components.Schemas
	name := schemas["CreateKeyRequest"].Value.Properties["name"].Value
	others := map[string]*openapi3.Schema{
		"RefreshKeyRequest.name": schemas["RefreshKeyRequest"].Value.Properties["name"].Value,
		"SeedKeyRequest.name":    schemas["SeedKeyRequest"].Value.Properties["name"].Value,
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, serverErr := keyhub.KeyName(raw)
		schemaErr := name.VisitJSON(raw)
		if (serverErr == nil) != (schemaErr == nil) {
			t.Fatalf("name %q: the server says %v, openapi.yaml says %v", raw, serverErr, schemaErr)
		}
		for where, other := range others {
			if (other.VisitJSON(raw) == nil) != (schemaErr == nil) {
				t.Fatalf("name %q: %s disagrees with CreateKeyRequest.name", raw, where)
			}
		}
	})
}
