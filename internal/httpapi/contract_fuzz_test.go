package httpapi_test

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/keyhub/keyhub/internal/httpapi"
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

// FuzzDevEmailSchemaIsTheServerRule: for any string, openapi.yaml's
// POST /dev/token email schema accepts it exactly when the server does.
func FuzzDevEmailSchemaIsTheServerRule(f *testing.F) {
	for _, seed := range []string{
		"you@example.com", " you@example.com\t", "\u00a0you@example.com", "you@example.com\v", "", "@", "a@", "@b",
		"a@b", "a b@c", "a@b@c", "Name <a@b.c>", "<a@b.c>", `"a b"@c.d`, "a@[127.0.0.1]", "a..b@c", ".a@b", "a.@b",
		"a@-b", "a@b-", "a@b..c", "é@example.com", "a@é.com", "a@b.c\n", "a@" + strings.Repeat("b", 63), "a@" + strings.Repeat("b", 64),
		strings.Repeat("a", 242) + "@example.com", strings.Repeat("a", 243) + "@example.com", "x\xff@b", "a+tag@b.co", "!#$%&'*+/=?^_`{|}~-@b",
	} {
		f.Add(seed)
	}
	schema := spec.Paths.Value("/dev/token").Post.RequestBody.Value.Content.Get("application/json").Schema.Value.Properties["email"].Value
	f.Fuzz(func(t *testing.T, raw string) {
		_, serverOK := httpapi.DevEmail(raw)
		schemaErr := schema.VisitJSON(raw)
		if serverOK != (schemaErr == nil) {
			t.Fatalf("email %q: the server accepts it: %v; openapi.yaml says %v", raw, serverOK, schemaErr)
		}
	})
}
