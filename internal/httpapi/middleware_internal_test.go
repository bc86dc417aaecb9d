package httpapi

import (
	"net/http"
	"testing"
	"time"
)

// Request ids are the process's prefix and a sequence number, built in
// one allocation (they are on every request).
func TestRequestID(t *testing.T) {
	if got, want := requestID(42), requestPrefix+"-42"; got != want {
		t.Fatalf("requestID(42) = %q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = requestID(1 << 40) }); n != 1 {
		t.Fatalf("requestID allocates %v times, want 1", n)
	}
}

// deadlineWriter takes deadlines as net/http's own ResponseWriter does.
type deadlineWriter struct {
	http.ResponseWriter
	read, write time.Time
}

func (w *deadlineWriter) SetReadDeadline(t time.Time) error  { w.read = t; return nil }
func (w *deadlineWriter) SetWriteDeadline(t time.Time) error { w.write = t; return nil }

// limitRequestTime sets both deadlines on a writer that takes them,
// without the ResponseController's allocation.
func TestLimitRequestTimeSetsDeadlines(t *testing.T) {
	limited := limitRequestTime(time.Minute)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	w := &deadlineWriter{}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	before := time.Now()
	limited.ServeHTTP(w, r)
	for name, d := range map[string]time.Time{"read": w.read, "write": w.write} {
		if d.Before(before.Add(time.Minute)) || d.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s deadline %v, want a minute from the request", name, d)
		}
	}
	if n := testing.AllocsPerRun(100, func() { limited.ServeHTTP(w, r) }); n != 0 {
		t.Fatalf("limitRequestTime allocates %v times per request", n)
	}
}
