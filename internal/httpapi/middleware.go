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
			id := requestID(requestSeq.Add(1))
			w.Header()["X-Request-Id"] = []string{id} // canonical already
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r.WithContext(httpjson.WithRequestLogger(r.Context(), log, id)))
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK // hijacked (WebSocket) or nothing written
			}
			// The id comes first, as it does on the lines handlers log.
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", id),
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

// requestID is requestPrefix-seq, built in one allocation: it is on every
// request.
func requestID(seq uint64) string {
	var buf [48]byte
	b := append(buf[:0], requestPrefix...)
	b = append(b, '-')
	return string(strconv.AppendUint(b, seq, 10))
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

// deadliner sets a connection's deadlines: net/http's ResponseWriter and
// http.ResponseController both do.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
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
			deadline := time.Now().Add(timeout)
			// net/http's own writer takes the deadlines directly; a
			// ResponseController (which allocates) is for wrapped writers.
			d, ok := w.(deadliner)
			if !ok {
				d = http.NewResponseController(w)
			}
			// Errors mean the writer cannot take deadlines (httptest recorders).
			_ = d.SetReadDeadline(deadline)
			_ = d.SetWriteDeadline(deadline)
			next.ServeHTTP(w, r)
		})
	}
}
