package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

var (
	requestSeq    atomic.Uint64
	requestPrefix = strconv.FormatInt(time.Now().UnixNano()%(1<<30), 36)
)

// logRequests gives each request an id (echoed in X-Request-Id), a logger
// carrying it, and one log line when it ends. Only the path is logged,
// never the query string: WebSocket tickets travel there.
func logRequests(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := requestPrefix + "-" + strconv.FormatUint(requestSeq.Add(1), 10)
			w.Header().Set("X-Request-Id", id)
			reqLog := log.With("request_id", id)
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r.WithContext(httpjson.WithLogger(r.Context(), reqLog)))
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK // hijacked (WebSocket) or nothing written
			}
			reqLog.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int("bytes", ww.BytesWritten()),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("remote", r.RemoteAddr),
			)
		})
	}
}

// recoverPanics turns a panic into a logged 500 with the one error shape.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				httpjson.Logger(r.Context()).Error("panic", "value", fmt.Sprint(v), "stack", string(debug.Stack()))
				httpjson.Error(w, r, keyhub.Internal(fmt.Errorf("panic: %v", v)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitRequestTime bounds reading and answering one request. It is set per
// request rather than on http.Server, whose deadlines would also cut
// WebSocket connections after the upgrade. It applies to every request,
// whatever its headers say, so a request that only claims to be an upgrade
// cannot hold a connection open: net/http clears a connection's deadlines
// when it is hijacked, which is the moment it actually upgrades.
func limitRequestTime(timeout time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			deadline := time.Now().Add(timeout)
			// Errors mean the writer cannot take deadlines (httptest recorders).
			_ = rc.SetReadDeadline(deadline)
			_ = rc.SetWriteDeadline(deadline)
			next.ServeHTTP(w, r)
		})
	}
}
