package httpjson

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// A handler's log lines carry the request id, though the request's logger
// is only built when something logs.
func TestRequestLoggerCarriesID(t *testing.T) {
	var out bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&out, nil))
	ctx := WithRequestLogger(context.Background(), base, "req-42")
	Logger(ctx).Info("first")
	Logger(ctx).Warn("second")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", out.String())
	}
	for _, line := range lines {
		if !strings.Contains(line, `"request_id":"req-42"`) {
			t.Errorf("line without the request id: %s", line)
		}
	}
	if id := RequestID(ctx); id != "req-42" {
		t.Errorf("RequestID = %q", id)
	}
	if RequestID(context.Background()) != "" {
		t.Error("a request id outside a request")
	}
	if Logger(context.Background()) != slog.Default() {
		t.Error("outside a request, Logger is not the default logger")
	}
}
