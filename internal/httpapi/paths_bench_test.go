package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
)

// BenchmarkCachedKeyPaths runs the requests of the load harness's ratio
// rows (cmd/keyhub-load) in process, through the whole handler (router,
// log line, metrics, CORS, gate, handler), with a cached mk_ key: their
// allocations, their CPU time per request (cpu-ns/op, the process's user
// and system time, which other processes on a shared machine inflate far
// less than ns/op) and their CPU profiles (-cpuprofile) say what a path
// costs over /healthz without the noise of a shared machine's throughput.
func BenchmarkCachedKeyPaths(b *testing.B) {
	env, paths := harnessPaths(b)
	for _, tc := range paths {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			for name, value := range tc.header {
				req.Header.Set(name, value)
			}
			body := bytes.NewReader(tc.body)
			readBody := io.NopCloser(body)
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			defer reportCPU(b, processCPU(b))
			for b.Loop() {
				body.Reset(tc.body)
				req.Body = readBody
				w.reset()
				env.App.Handler.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("%s %s: %d", tc.method, tc.target, w.status)
				}
			}
		})
	}
}

// harnessPath is one of the load harness's ratio rows as a request.
type harnessPath struct {
	name, method, target string
	header               map[string]string
	body                 []byte
}

// harnessPaths starts keyhub as the load harness does (limits that never
// refuse, product scopes, a verify token, the log at info, discarded) and
// returns its ratio rows' requests, made with a cached key.
func harnessPaths(b *testing.B) (*apitest.Env, []harnessPath) {
	const verifyToken = "bench-verify-token-0123456789abcdef"
	env := apitest.New(b, map[string]string{
		"RATE_LIMIT_TIER_RPM": "free=100000000,pro=100000000,team=100000000,enterprise=100000000",
		"PRODUCT_SCOPES":      "app:read,app:write",
		"VERIFY_TOKENS":       verifyToken,
		"LOG_LEVEL":           "info", // as served: the request line, no debug lines
	})
	jwt := env.Token(b, uniqueEmail("bench"))
	// The listing's page: one active key and 19 revoked, as the harness
	// lists them (the free tier holds one active key at a time).
	var key api.CreatedKey
	for i := range 20 {
		env.Post(b, "/v1/keys", jwt, map[string]any{"name": "bench"}).Want(b, http.StatusCreated, "").JSON(b, &key)
		if i < 19 {
			env.Delete(b, "/v1/keys/"+key.ID.String(), jwt).Want(b, http.StatusOK, "")
		}
	}
	verifyBody, err := json.Marshal(api.VerifyKeyRequest{Key: key.Secret})
	if err != nil {
		b.Fatal(err)
	}
	env.Logs.Discard()
	return env, []harnessPath{
		{name: "healthz", method: http.MethodGet, target: "/healthz"},
		{name: "me", method: http.MethodGet, target: "/v1/me", header: map[string]string{"X-API-Key": key.Secret}},
		// Forward auth as nginx asks it (the README's block).
		{name: "authz", method: http.MethodGet, target: "/v1/authz?scope=keys:read&refuse_as=403",
			header: map[string]string{"X-API-Key": key.Secret, "X-Original-Method": "GET", "X-Original-URI": "/app/tasks"}},
		{name: "verify", method: http.MethodPost, target: "/v1/keys/verify", body: verifyBody,
			header: map[string]string{"Authorization": "Bearer " + verifyToken, "Content-Type": "application/json"}},
		{name: "keys20", method: http.MethodGet, target: "/v1/keys?limit=20", header: map[string]string{"X-API-Key": key.Secret}},
	}
}

// discardWriter is a ResponseWriter that keeps the status and nothing
// else, reused across requests: the benchmark measures the server's
// allocations, not a recorder's.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) reset() {
	clear(w.header)
	w.status = 0
}

func (w *discardWriter) Header() http.Header { return w.header }

// SetReadDeadline and SetWriteDeadline are net/http's own writer's (an
// unsupported deadline would allocate its error on every request).
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

func (w *discardWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

// BenchmarkServedPaths sends the same requests as bytes, as the load
// harness does, over one keep-alive loopback connection to the served
// handler: what the in-process benchmark cannot see is then measured too
// (net/http parsing the request's headers, cloning, sorting and writing
// the answer's, the syscalls). allocs/op counts the server's allocations
// and the few of the raw client here; the CPU profile's shares, not ns/op
// (a round trip's latency on a shared machine), say what a path costs.
func BenchmarkServedPaths(b *testing.B) {
	env, paths := harnessPaths(b)
	host := env.Server.Listener.Addr().String()
	for _, tc := range paths {
		b.Run(tc.name, func(b *testing.B) {
			conn, err := net.Dial("tcp", host)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			req := tc.raw(host)
			answers := bufio.NewReaderSize(conn, 16<<10)
			b.ReportAllocs()
			defer reportCPU(b, processCPU(b))
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if status, err := discardResponse(answers); err != nil || status != http.StatusOK {
					b.Fatalf("%s %s: %d %v", tc.method, tc.target, status, err)
				}
			}
		})
	}
}

// raw is the request's bytes as the load harness writes them.
func (p harnessPath) raw(host string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keyhub-load\r\n", p.method, p.target, host)
	for name, value := range p.header {
		fmt.Fprintf(&b, "%s: %s\r\n", name, value)
	}
	if p.body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(p.body))
	}
	b.WriteString("\r\n")
	b.Write(p.body)
	return b.Bytes()
}

// discardResponse reads one answer with a Content-Length, allocating
// nothing, and returns its status.
func discardResponse(r *bufio.Reader) (int, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status := int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	length := -1
	for {
		if line, err = r.ReadSlice('\n'); err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if value, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length = 0
			for _, c := range bytes.TrimSpace(value) {
				length = length*10 + int(c-'0')
			}
		}
	}
	if length < 0 {
		return 0, errors.New("answer without Content-Length")
	}
	_, err = r.Discard(length)
	return status, err
}

// processCPU is the CPU time (user and system, every thread) the process
// has used so far.
func processCPU(b *testing.B) time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		b.Fatal(err)
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// reportCPU reports the process's CPU time per op since start as
// cpu-ns/op. Everything the process runs meanwhile counts (the server, the
// raw client, the collector, the app's own background loops, idle here).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
}
