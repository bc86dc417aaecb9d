package apitest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhub/keyhub/internal/webhooks"
)

// WebhookReceiver is a real HTTP endpoint that receives webhooks the way
// a careful receiver does: it verifies every signature (Standard
// Webhooks) against the secrets it was given per path, and records what
// arrived. It also notes when one webhook-id is being received twice at
// the same time, which must never happen.
type WebhookReceiver struct {
	Server *httptest.Server
	// Status is the answer to every request (default 204).
	Status atomic.Int32
	// Delay holds every request this long before answering.
	Delay atomic.Int64 // nanoseconds

	mu       sync.Mutex
	secrets  map[string]string // path → secret
	received []WebhookMessage
	inFlight map[string]int
	overlaps []string // webhook-ids received twice at once
	bad      []string // why a message was refused
}

// WebhookMessage is one request the receiver got.
type WebhookMessage struct {
	Path string
	ID   string
	Body []byte
	// Valid is whether its signature and timestamp verified.
	Valid bool
}

// NewWebhookReceiver starts a receiver on addr ("" for any loopback port).
func NewWebhookReceiver(t testing.TB, addr string) *WebhookReceiver {
	t.Helper()
	r := &WebhookReceiver{secrets: map[string]string{}, inFlight: map[string]int{}}
	r.Status.Store(http.StatusNoContent)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	if addr != "" {
		srv.Listener.Close()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		srv.Listener = l
	}
	srv.Start()
	t.Cleanup(srv.Close)
	r.Server = srv
	return r
}

// Expect gives the secret of the webhook whose URL ends in path.
func (r *WebhookReceiver) Expect(path, secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets[path] = secret
}

func (r *WebhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get(webhooks.HeaderID)
	r.mu.Lock()
	secret := r.secrets[req.URL.Path]
	r.inFlight[id]++
	if r.inFlight[id] > 1 {
		r.overlaps = append(r.overlaps, id)
	}
	r.mu.Unlock()
	time.Sleep(time.Duration(r.Delay.Load()))
	err := webhooks.Verify(secret, req.Header, body, time.Now())
	r.mu.Lock()
	r.inFlight[id]--
	r.received = append(r.received, WebhookMessage{Path: req.URL.Path, ID: id, Body: body, Valid: err == nil})
	if err != nil {
		r.bad = append(r.bad, req.URL.Path+": "+err.Error())
	}
	r.mu.Unlock()
	if err != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	w.WriteHeader(int(r.Status.Load()))
}

// Received returns what arrived so far, in order.
func (r *WebhookReceiver) Received() []WebhookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]WebhookMessage(nil), r.received...)
}

// Problems returns the webhook-ids received twice at once and the
// messages whose signature did not verify.
func (r *WebhookReceiver) Problems() (overlaps, badSignatures []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.overlaps...), append([]string(nil), r.bad...)
}
