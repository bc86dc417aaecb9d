package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// queryOracle is forward auth's query rules over url.ParseQuery's map: what
// parseQuery must answer, whatever the query.
func queryOracle(fa *forwardAuth, raw string) (authzQuery, error) {
	q := authzQuery{audience: DefaultAudience}
	if raw == "" {
		return q, nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		return q, errAuthzQuery
	}
	if as, given := values["refuse_as"]; given {
		if len(as) != 1 || as[0] != "403" {
			return q, errAuthzRefuseAs
		}
		q.refuseAs403 = true
	}
	for name, vs := range values {
		switch name {
		case "scope", "read_scope", "audience", "refuse_as":
		default:
			return q, errAuthzQuery
		}
		if len(vs) != 1 {
			return q, errAuthzQuery
		}
	}
	if vs, ok := values["scope"]; ok {
		if q.scope, err = fa.scopeOf(vs[0]); err != nil {
			return q, err
		}
	}
	if vs, ok := values["read_scope"]; ok {
		q.readScopeGiven = true
		if q.readScope, err = fa.scopeOf(vs[0]); err != nil {
			return q, err
		}
	}
	if vs, ok := values["audience"]; ok {
		if vs[0] == "" {
			return q, errAuthzQuery
		}
		q.audience = vs[0]
	}
	if !q.readScopeGiven {
		q.readScope = q.scope
	}
	return q, nil
}

func testForwardAuth() *forwardAuth {
	scopes := map[string]keyhub.Scopes{"keys:read": keyhub.ScopeKeysRead, "keys:write": keyhub.ScopeKeysWrite, "app:read": 1 << 10}
	return &forwardAuth{cfg: &Config{LookupScope: func(name string) (keyhub.Scopes, bool) {
		s, ok := scopes[name]
		return s, ok
	}}}
}

// checkQuery compares parseQuery with the oracle on one raw query.
func checkQuery(t *testing.T, fa *forwardAuth, raw string) {
	t.Helper()
	req := httptest.NewRequest("GET", AuthzPath, nil)
	req.URL.RawQuery = raw
	got, gotErr := fa.parseQuery(req)
	want, wantErr := queryOracle(fa, raw)
	if keyhub.ErrorCode(gotErr) != keyhub.ErrorCode(wantErr) || (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("query %q: error %v, want %v", raw, gotErr, wantErr)
	}
	if got.refuseAs403 != want.refuseAs403 {
		t.Fatalf("query %q: refuse_as=403 %v, want %v", raw, got.refuseAs403, want.refuseAs403)
	}
	if gotErr == nil && got != want {
		t.Fatalf("query %q: %+v, want %+v", raw, got, want)
	}
}

var queryCases = []string{
	"",
	"scope=keys:read",
	"scope=keys:read&refuse_as=403",
	"scope=keys:write&read_scope=keys:read&audience=tasks&refuse_as=403",
	"scope=app%3Aread", "sc%6Fpe=keys:read", "scope=keys:read&&", "&scope=keys:read",
	"scope=keys:read&scope=keys:read", "refuse_as=403&refuse_as=403", "refuse_as=500", "refuse_as",
	"scope", "scope=", "audience=", "audience", "audience=a+b", "read_scope=nope", "scope=nope&refuse_as=403",
	"scope=keys:read;x=1", "scope=keys:read&x", "scope=%zz", "%zz=1", "other=1", "other=1&refuse_as=403",
	"=keys:read", "refuse_as=403&scope=keys%3Aread&audience=%E2%9C%93",
}

func TestAuthzQueryAsParseQueryReadsIt(t *testing.T) {
	t.Parallel()
	fa := testForwardAuth()
	for _, raw := range queryCases {
		checkQuery(t, fa, raw)
	}
}

func FuzzAuthzQuery(f *testing.F) {
	for _, raw := range queryCases {
		f.Add(raw)
	}
	fa := testForwardAuth()
	f.Fuzz(func(t *testing.T, raw string) {
		checkQuery(t, fa, raw)
	})
}

// Forward auth's usual question, as nginx asks it, parses without
// allocating.
func TestAuthzQueryAllocatesNothing(t *testing.T) {
	fa := testForwardAuth()
	req := httptest.NewRequest("GET", AuthzPath+"?scope=keys:read&refuse_as=403", nil)
	if n := testing.AllocsPerRun(100, func() { _, _ = fa.parseQuery(req) }); n != 0 {
		t.Fatalf("parseQuery allocates %v times per query", n)
	}
}

// The original method's and URI's header names are canonical: original
// indexes the header map with them directly, and a name in another case
// would never be found (an nginx asking about a POST would be judged on
// its read scope).
func TestOriginalHeaderNamesAreCanonical(t *testing.T) {
	t.Parallel()
	for _, name := range append(append([]string{}, methodHeaders...), uriHeaders...) {
		if canonical := http.CanonicalHeaderKey(name); name != canonical {
			t.Errorf("%q is not canonical (%q)", name, canonical)
		}
	}
	r := httptest.NewRequest(http.MethodGet, AuthzPath, nil)
	r.Header.Set("x-original-method", "post")
	r.Header.Set("x-original-uri", "/app/tasks")
	if method, uri := original(r); method != http.MethodPost || uri != "/app/tasks" {
		t.Errorf("original = %s %s, want POST /app/tasks", method, uri)
	}
}
