// Package httpjson writes and reads the JSON of keyhub's HTTP API: the
// one error shape {"error":{"code":...,"message":...}}, the mapping from
// error codes to statuses, and strict request body decoding. REST and
// WebSocket handlers share it so that an error looks the same everywhere.
package httpjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a stable code and a message meant for people.
type ErrorDetail struct {
	Code    keyhub.Code `json:"code"`
	Message string      `json:"message"`
}

var statusOfCode = map[keyhub.Code]int{
	keyhub.CodeInvalidJSON:          http.StatusBadRequest,
	keyhub.CodeBodyTooLarge:         http.StatusRequestEntityTooLarge,
	keyhub.CodeValidation:           http.StatusBadRequest,
	keyhub.CodeInvalidScope:         http.StatusBadRequest,
	keyhub.CodeInvalidCursor:        http.StatusBadRequest,
	keyhub.CodeAmbiguousCredentials: http.StatusBadRequest,
	keyhub.CodeMissingCredentials:   http.StatusUnauthorized,
	keyhub.CodeInvalidToken:         http.StatusUnauthorized,
	keyhub.CodeExpiredToken:         http.StatusUnauthorized,
	keyhub.CodeNotUserSession:       http.StatusUnauthorized,
	keyhub.CodeInvalidAPIKey:        http.StatusUnauthorized,
	keyhub.CodeUnknownAPIKey:        http.StatusUnauthorized,
	keyhub.CodeKeyRevoked:           http.StatusUnauthorized,
	keyhub.CodeKeyExpired:           http.StatusUnauthorized,
	keyhub.CodeInvalidTicket:        http.StatusUnauthorized,
	keyhub.CodeInvalidSignature:     http.StatusUnauthorized,
	keyhub.CodeInsufficientScope:    http.StatusForbidden,
	keyhub.CodeUserSessionRequired:  http.StatusForbidden,
	keyhub.CodeAnonymousUser:        http.StatusForbidden,
	keyhub.CodeOriginNotAllowed:     http.StatusForbidden,
	keyhub.CodeOperatorRequired:     http.StatusForbidden,
	keyhub.CodeNotFound:             http.StatusNotFound,
	keyhub.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	keyhub.CodeKeyLimitReached:      http.StatusConflict,
	keyhub.CodeKeyAlreadyExists:     http.StatusConflict,
	keyhub.CodeKeyNotActive:         http.StatusConflict,
	keyhub.CodeKeyAlreadyRefreshed:  http.StatusConflict,
	keyhub.CodeNoOpenConnections:    http.StatusConflict,
	keyhub.CodeWebhookLimitReached:  http.StatusConflict,
	keyhub.CodeWebhookURLNotAllowed: http.StatusBadRequest,
	keyhub.CodeUpgradeRequired:      http.StatusUpgradeRequired,
	keyhub.CodeTooManyConnections:   http.StatusTooManyRequests,
	keyhub.CodeRateLimited:          http.StatusTooManyRequests,
	keyhub.CodeAuthNotConfigured:    http.StatusServiceUnavailable,
	keyhub.CodeNotReady:             http.StatusServiceUnavailable,
	keyhub.CodeUnavailable:          http.StatusServiceUnavailable,
	keyhub.CodeInternal:             http.StatusInternalServerError,
	keyhub.CodeUpstreamUnavailable:  http.StatusBadGateway,
	keyhub.CodeUpstreamTimeout:      http.StatusGatewayTimeout,

	// The owner's policy (max_key_lifetime) and a key's controls.
	keyhub.CodeLifetimeExceedsPolicy: http.StatusBadRequest,
	keyhub.CodeKeyDisabled:           http.StatusUnauthorized,
	keyhub.CodeIPNotAllowed:          http.StatusForbidden,
}

// StatusOf returns the HTTP status of an error code.
func StatusOf(code keyhub.Code) int {
	if s, ok := statusOfCode[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Write encodes v as the JSON response body with the given status (by
// its own AppendJSON when it is an Appender).
//
// The body is encoded before anything is sent, so the answer carries its
// Content-Length: a body over net/http's 2 KiB buffer (a page of keys)
// would otherwise go out chunked, in one more write per response.
func Write(w http.ResponseWriter, status int, v any) {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBody {
			bodyBuffers.Put(buf)
		}
	}()
	// Our answer types always encode; were one not to, the status still
	// goes out with an empty body, as it did when encoding streamed.
	var err error
	if a, ok := v.(Appender); ok {
		var body []byte
		if body, err = a.AppendJSON(buf.AvailableBuffer()); err == nil {
			buf.Write(append(body, '\n')) // json.Encoder ends with a newline too
		}
	} else {
		err = json.NewEncoder(buf).Encode(v)
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = noStore
	if err == nil {
		h["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	}
	w.WriteHeader(status)
	// A write error here can only mean the client went away.
	_, _ = w.Write(buf.Bytes())
}

// Header values every JSON answer carries, set without canonicalizing
// their names each time. net/http never changes a value slice in place.
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
)

// bodyBuffers holds encoding buffers between responses; one that grew past
// maxPooledBody (a rare large page) is left to the collector.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 64 << 10

// StatusClientClosedRequest is what the request log and metrics record
// for a request whose client went away before the answer (nginx's 499).
// Nobody receives it.
const StatusClientClosedRequest = 499

// RetryAfterSeconds is the Retry-After of a 503: about how long a database
// restart or failover takes to be noticed by the pool's health check.
const RetryAfterSeconds = 5

// Error writes err as the one error shape. Only the client-safe part of
// err reaches the response; internal causes are logged with the request's
// logger. A request whose client has gone is not a server error: it is
// logged at INFO and recorded as 499.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	code := keyhub.ErrorCode(err)
	status := StatusOf(code)
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		Logger(r.Context()).Info("client closed request", "status", StatusClientClosedRequest)
		w.WriteHeader(StatusClientClosedRequest)
		return
	}
	switch {
	case code == keyhub.CodeUnavailable:
		Logger(r.Context()).Warn("dependency unavailable", "code", code, "err", err)
	// 502 and 504 are an upstream's failures: the gateway logs them with
	// their route.
	case status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusBadGateway && status != http.StatusGatewayTimeout:
		Logger(r.Context()).Error("request failed", "code", code, "err", err)
	}
	if code == keyhub.CodeUnavailable || code == keyhub.CodeNotReady || code == keyhub.CodeUpstreamUnavailable {
		// Not AUTH_NOT_CONFIGURED: retrying will not configure sign-in.
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyhub"`)
	}
	Write(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: keyhub.ErrorMessage(err)}})
}

// MaxBodyBytes is the largest request body the API reads.
const MaxBodyBytes = 64 << 10

// Decode reads a JSON object into v strictly: unknown fields, trailing
// data, a body over MaxBodyBytes and malformed JSON are each a 400 error
// with a message that says which. An empty body decodes as {} when
// emptyOK, so optional-body endpoints accept a bare POST; null is not an
// object and is refused like an array or a number.
//
// A QuickDecoder reads its common shape itself; anything else it declines
// goes through encoding/json as above.
func Decode(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBody {
			bodyBuffers.Put(buf)
		}
	}()
	// Read into a pooled buffer: every value decoded from it is a copy.
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	raw := buf.Bytes()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return keyhub.Errorf(keyhub.CodeBodyTooLarge, "request body is larger than %d bytes", MaxBodyBytes)
		}
		return keyhub.Errorf(keyhub.CodeInvalidJSON, "could not read the request body")
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		if emptyOK {
			return nil
		}
		return keyhub.Errorf(keyhub.CodeInvalidJSON, "request body is empty; a JSON object is expected")
	}
	// encoding/json decodes null into a struct as a no-op, so without this
	// a null body would pass for {} (and a bare refresh would rotate a key
	// on a body that is not an object at all).
	if string(trimmed) == "null" {
		return keyhub.Errorf(keyhub.CodeInvalidJSON, "request body must be a JSON object, not null")
	}
	if q, ok := v.(QuickDecoder); ok && q.DecodeQuick(trimmed) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return keyhub.Errorf(keyhub.CodeInvalidJSON, "%s", describeJSONError(err))
	}
	if dec.More() {
		return keyhub.Errorf(keyhub.CodeInvalidJSON, "request body holds more than one JSON value")
	}
	return nil
}

// QuickDecoder is a request body that reads its common shape without
// encoding/json (on a request's path, its decoder costs more than the
// rest of the request). DecodeQuick either sets the value exactly as
// Decode would from raw (a fuzz test per type holds it to that) and
// reports true, or leaves it alone and reports false, and Decode goes on
// with encoding/json: every error still comes from one place.
type QuickDecoder interface {
	DecodeQuick(raw []byte) bool
}

func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		// Named in JSON's terms: Go's type names (int64, *time.Time) mean
		// nothing to a client and describe our internals.
		if typeErr.Field != "" {
			return fmt.Sprintf("field %q must be %s, not %s", typeErr.Field, jsonTypeOf(typeErr.Type), typeErr.Value)
		}
		return fmt.Sprintf("request body must be a JSON object, not %s", typeErr.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of body"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	// What is left is a value's own decoder refusing it; the only one in
	// the API is time.Time's, whose text names Go's types.
	return "a value has the wrong type or format: dates are RFC 3339 strings such as 2030-01-01T00:00:00Z"
}

// jsonTypeOf names what JSON value decodes into t.
func jsonTypeOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		lo, hi := intRange(t)
		return "an integer from " + lo + " to " + hi
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}

// intRange is the range of the integer type t, in decimal.
func intRange(t reflect.Type) (lo, hi string) {
	bits := t.Bits()
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "0", strconv.FormatUint(1<<bits-1, 10)
	}
	return strconv.FormatInt(-1<<(bits-1), 10), strconv.FormatInt(1<<(bits-1)-1, 10)
}

type loggerKey struct{}

// WithRequestLogger returns ctx carrying the logger of one request: log
// with the request's id, built only when something logs. Most requests log
// nothing but their closing line, and slog's With costs several allocations
// and a JSON encoding of the attribute on every request.
func WithRequestLogger(ctx context.Context, log *slog.Logger, requestID string) context.Context {
	return context.WithValue(ctx, loggerKey{}, &requestLogger{base: log, requestID: requestID})
}

// requestLogger builds a request's logger on first use.
type requestLogger struct {
	base      *slog.Logger
	requestID string
	once      sync.Once
	log       *slog.Logger
}

func (l *requestLogger) get() *slog.Logger {
	l.once.Do(func() { l.log = l.base.With("request_id", l.requestID) })
	return l.log
}

// RequestID returns the id of the request ctx belongs to ("" outside one),
// for lines logged after the request (a WebSocket's close) without keeping
// a logger per connection.
func RequestID(ctx context.Context) string {
	if l, ok := ctx.Value(loggerKey{}).(*requestLogger); ok {
		return l.requestID
	}
	return ""
}

// LogEnabled reports whether ctx's request logger (the default logger
// outside a request) logs at level, without building the request's logger:
// a line that is rarely wanted then costs nothing.
func LogEnabled(ctx context.Context, level slog.Level) bool {
	if l, ok := ctx.Value(loggerKey{}).(*requestLogger); ok {
		return l.base.Enabled(ctx, level)
	}
	return slog.Default().Enabled(ctx, level)
}

// Logger returns the request-scoped logger (with its request id), or the
// default logger outside a request.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*requestLogger); ok {
		return l.get()
	}
	return slog.Default()
}
