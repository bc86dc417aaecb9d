package client

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestDecodeError: the API's error shape, and a body that is not (a
// proxy's page), both become an *Error with the status.
func TestDecodeError(t *testing.T) {
	t.Parallel()
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"3"}, "X-Request-Id": {"r1"}}}
	e := decodeError(resp, []byte(`{"error":{"code":"TOO_MANY_CONNECTIONS","message":"one too many"}}`))
	if e.Code != "TOO_MANY_CONNECTIONS" || e.Message != "one too many" || e.Status != 429 || e.RetryAfter != 3*time.Second || e.RequestID != "r1" {
		t.Errorf("decoded %+v", e)
	}
	e = decodeError(&http.Response{StatusCode: 502, Header: http.Header{}}, []byte("<html>bad gateway</html>"))
	if e.Code != "HTTP_502" || e.Message != "<html>bad gateway</html>" {
		t.Errorf("decoded %+v", e)
	}
}
