package httpapi

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/httpjson"
)

// Whatever DecodeQuick accepts, httpjson.Decode (encoding/json, strict)
// accepts too, with the same value: the quick path changes no answer.
func FuzzVerifyRequestQuick(f *testing.F) {
	for _, body := range []string{
		`{"key":"mk_AbCdEf0123456789"}`,
		` {"key" : "mk_x", "scope":"app:read" ,"client_ip":"203.0.113.7"} `,
		`{"client_ip":"::1","key":""}`,
		`{"key":"a","key":"b"}`, `{"KEY":"a"}`, `{"key":"a\u0041"}`, `{"key":null}`, `{}`, `{"key":"a"}{}`,
		`{"key":"a",}`, `{"key":"a","other":1}`, `{"scope":"caf` + "\xc3\xa9" + `"}`, `[]`, `null`,
	} {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var quick verifyRequest
		if !quick.DecodeQuick([]byte(body)) {
			if quick != (verifyRequest{}) {
				t.Fatalf("declined %q but set %+v", body, quick)
			}
			return
		}
		var strict api.VerifyKeyRequest
		req := httptest.NewRequest(http.MethodPost, "/v1/keys/verify", strings.NewReader(body))
		if err := httpjson.Decode(httptest.NewRecorder(), req, &strict, false); err != nil {
			t.Fatalf("DecodeQuick accepted %q, encoding/json refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(api.VerifyKeyRequest(quick), strict) {
			t.Fatalf("%q: DecodeQuick read %+v, encoding/json %+v", body, quick, strict)
		}
	})
}

// The bodies backend services send take the quick path (were they all to
// fall back, the fuzz test above would still pass).
func TestVerifyRequestQuickReadsTheUsualShapes(t *testing.T) {
	t.Parallel()
	scope, ip := "app:read", "203.0.113.7"
	for body, want := range map[string]verifyRequest{
		`{"key":"mk_AbCdEf0123456789"}`: {Key: "mk_AbCdEf0123456789"},
		"{\n  \"key\": \"mk_x\",\n  \"scope\": \"app:read\",\n  \"client_ip\": \"203.0.113.7\"\n}": {Key: "mk_x", Scope: &scope, ClientIP: &ip},
	} {
		var got verifyRequest
		if !got.DecodeQuick([]byte(body)) || !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeQuick(%q) = %+v, want %+v", body, got, want)
		}
	}
}
