package httpjson_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyhub/keyhub/internal/httpjson"
)

// A JSON answer larger than net/http's 2 KiB buffer (a page of keys) goes
// out with its Content-Length, not chunked, and the same bytes as before:
// the value encoded with a trailing newline.
func TestWriteSendsContentLength(t *testing.T) {
	t.Parallel()
	big := map[string]string{"name": strings.Repeat("k", 10<<10)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusCreated, big)
	}))
	defer srv.Close()
	for range 2 { // the second answer reuses the first's buffer
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(big)
		want = append(want, '\n')
		if resp.StatusCode != http.StatusCreated || string(body) != string(want) {
			t.Fatalf("status %d, body %.40q…", resp.StatusCode, body)
		}
		if len(resp.TransferEncoding) != 0 || resp.ContentLength != int64(len(want)) {
			t.Fatalf("transfer encoding %v, content length %d, want none and %d", resp.TransferEncoding, resp.ContentLength, len(want))
		}
		if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("headers %v", resp.Header)
		}
	}
}
