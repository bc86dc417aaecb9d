package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/apikey"
	"github.com/keyhub/keyhub/internal/apitest"
)

// A refused credential is explained at DEBUG (code, reason, request id)
// and counted by reason in keyhub_auth_outcomes_total; neither the log nor
// the metrics ever hold the credential itself.
func TestRefusalsAreExplainedAndCounted(t *testing.T) {
	t.Parallel()
	e := apitest.New(t, nil)
	good := e.Token(t, "ada@example.com")
	wrongIssuer, err := e.Issuer.Token("https://elsewhere.supabase.test/auth/v1", "ada@example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Another issuer's key: a kid the JWKS does not publish. The JWKS was
	// fetched at start, so no fetch is allowed yet.
	stranger := newIssuer(t)
	unknownKID, err := stranger.Token(apitest.Issuer, "ada@example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Flipped inside the signature, not at its end, whose last character
	// carries padding bits that must be zero.
	badSignature := good[:len(good)-12] + flip(good[len(good)-12:len(good)-8]) + good[len(good)-8:]
	unknownKey, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	// Flipped inside, not at the end: the last character carries only 4
	// bits, and flipping an "A" there to "B" sets an unused bit, which is a
	// malformed key, not a bad checksum (1 run in 16 failed).
	n := len(unknownKey)
	badChecksum := unknownKey[:n-10] + flip(unknownKey[n-10:n-9]) + unknownKey[n-9:]

	cases := []struct {
		name, cred, header, code, reason string
	}{
		{"bad signature", badSignature, "Authorization", "INVALID_TOKEN", "bad_signature"},
		{"wrong issuer", wrongIssuer, "Authorization", "INVALID_TOKEN", "wrong_issuer"},
		{"unknown kid, budget spent", unknownKID, "Authorization", "INVALID_TOKEN", "unknown_kid_throttled"},
		{"malformed token", "not.a.jwt", "Authorization", "INVALID_TOKEN", "malformed"},
		{"unknown key", unknownKey, "X-API-Key", "UNKNOWN_API_KEY", ""},
		{"bad checksum", badChecksum, "X-API-Key", "INVALID_API_KEY", "bad_checksum"},
	}
	requestIDs := map[string]string{} // request id → case
	for _, tc := range cases {
		value := tc.cred
		if tc.header == "Authorization" {
			value = "Bearer " + tc.cred
		}
		resp := e.Do(t, apitest.Request{Method: http.MethodGet, Path: "/v1/me", Headers: map[string]string{tc.header: value}})
		resp.Want(t, http.StatusUnauthorized, tc.code)
		requestIDs[resp.Header.Get("X-Request-Id")] = tc.name
	}

	explained := map[string]bool{}
	for _, line := range e.Logs.Lines(t) {
		if line["msg"] != "credential refused" {
			continue
		}
		name, ok := requestIDs[line["request_id"].(string)]
		if !ok {
			continue
		}
		for _, tc := range cases {
			if tc.name != name {
				continue
			}
			if line["level"] != "DEBUG" || line["code"] != tc.code || line["reason"] != tc.reason || line["message"] == "" {
				t.Errorf("%s: logged %v, want DEBUG, code %s, reason %q and a message", name, line, tc.code, tc.reason)
			}
		}
		explained[name] = true
	}
	for _, tc := range cases {
		if !explained[tc.name] {
			t.Errorf("%s: no DEBUG line explains the refusal", tc.name)
		}
	}

	rec := httptest.NewRecorder()
	e.App.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	scrape := rec.Body.String()
	for _, tc := range cases {
		method := "jwt"
		if tc.header == "X-API-Key" {
			method = "api_key"
		}
		series := `keyhub_auth_outcomes_total{code="` + tc.code + `",method="` + method + `",reason="` + tc.reason + `"} 1`
		if !strings.Contains(scrape, series) {
			t.Errorf("%s: scrape lacks %s", tc.name, series)
		}
	}

	logs := e.Logs.String()
	for _, tc := range cases {
		secret := tc.cred
		if len(secret) > 20 { // a token's signature, a key's random part
			secret = secret[len(secret)-20:]
		}
		if strings.Contains(logs, secret) || strings.Contains(scrape, secret) {
			t.Errorf("%s: the credential reached the logs or the metrics", tc.name)
		}
	}
}

// flip changes every character of s into another valid one of the same
// alphabet (base64url).
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}
