// Package client is keyhub's Go client: every REST operation of
// openapi.yaml, typed with the wire types of package api, and a daemon
// connector (Connector) that holds a WebSocket open, reconnecting when
// that helps and stopping when it cannot.
//
// It imports only package api, the standard library and small libraries,
// never keyhub's internal packages, so any program may use it.
//
//	c, err := client.New("http://localhost:8080", client.WithAPIKey(os.Getenv("KEYHUB_API_KEY")))
//	me, err := c.Me(ctx)
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.Code == "KEY_REVOKED" { ... }
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// maxErrorBody caps how much of an error response is read.
const maxErrorBody = 64 << 10

// Client calls keyhub's REST API. It is safe for concurrent use.
type Client struct {
	base *url.URL
	// credential changes when a connector receives a rotated key
	// (SetAPIKey): every later call and reconnect uses the new one.
	credential atomic.Pointer[string]
	httpClient *http.Client
	userAgent  string
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey authenticates with an mk_ API key.
func WithAPIKey(key string) Option { return func(c *Client) { c.credential.Store(&key) } }

// WithToken authenticates with a bearer token (a Supabase access token).
func WithToken(token string) Option { return func(c *Client) { c.credential.Store(&token) } }

// SetAPIKey replaces the credential with key for every later call and
// reconnect; a Connector calls it when keyhub hands it a rotated key.
func (c *Client) SetAPIKey(key string) { c.credential.Store(&key) }

// currentCredential is the credential calls send now ("" for none).
func (c *Client) currentCredential() string {
	if cred := c.credential.Load(); cred != nil {
		return *cred
	}
	return ""
}

// WithHTTPClient sends requests (and WebSocket handshakes) through hc
// instead of http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.httpClient = hc } }

// WithUserAgent sets the User-Agent header, which the audit trail records.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the keyhub at baseURL (http or https, e.g.
// "http://localhost:8080").
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("keyhub URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("keyhub URL %q: want http://host[:port] or https://host[:port]", baseURL)
	}
	c := &Client{base: u, httpClient: http.DefaultClient, userAgent: "keyhub-go-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL is the server's address as given to New.
func (c *Client) BaseURL() string { return c.base.String() }

// Error is an error answer of the API: the stable Code (e.g. KEY_REVOKED),
// the HTTP status, the server's message and, on 429 and 503, how long to
// wait before retrying (zero when the server did not say).
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	// RequestID is the X-Request-Id of the answer, for the server's logs.
	RequestID string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// ErrorCode is the API error code of err, or "" if err is not an *Error.
func ErrorCode(err error) string {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	return ""
}

// decodeError reads an error answer. A body that is not the API's error
// shape (a proxy's page) still yields an *Error, with a code made from
// the status, so callers can always branch on Status.
func decodeError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id"), RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var shape struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &shape) == nil && shape.Error.Code != "" {
		e.Code, e.Message = shape.Error.Code, shape.Error.Message
		return e
	}
	e.Code = "HTTP_" + strconv.Itoa(resp.StatusCode)
	e.Message = strings.TrimSpace(string(body))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "…"
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// parseRetryAfter reads Retry-After: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// request describes one REST call.
type request struct {
	method string
	path   string // escaped, without query
	query  url.Values
	body   any // JSON-encoded when not nil
	want   int // the success status
}

// do sends req and decodes a successful answer into out (raw bytes when
// out is *[]byte, nothing when nil).
func (c *Client) do(ctx context.Context, req request, out any) error {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + req.path
	u.RawQuery = req.query.Encode()
	var body io.Reader
	if req.body != nil {
		raw, err := json.Marshal(req.body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", req.method, req.path, err)
		}
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", c.userAgent)
	c.authorize(hr.Header)
	resp, err := c.httpClient.Do(hr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != req.want {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return decodeError(resp, raw)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", req.method, req.path, err)
	}
	if sink, ok := ctx.Value(rawSinkKey{}).(*[]byte); ok {
		*sink = raw
	}
	switch out := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*out = raw
		return nil
	default:
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", req.method, req.path, err)
		}
		return nil
	}
}

type rawSinkKey struct{}

// WithRawResponse returns a context that makes the call it is given to
// store the successful answer's body, byte for byte, in *raw: for a
// program that passes the API's JSON on unchanged.
func WithRawResponse(ctx context.Context, raw *[]byte) context.Context {
	return context.WithValue(ctx, rawSinkKey{}, raw)
}

// authorize adds the credential: keys and tokens both travel as
// Authorization: Bearer, which the server reads for either.
func (c *Client) authorize(h http.Header) {
	if cred := c.currentCredential(); cred != "" {
		h.Set("Authorization", "Bearer "+cred)
	}
}
