package ratelimit

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// fakeClock is a settable clock for the in-process limiter.
type fakeClock struct{ nanos atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.nanos.Add(int64(d)) }
func newLocalAt(size int) (*Local, *fakeClock) {
	c := &fakeClock{}
	c.nanos.Store(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC).UnixNano())
	l := NewLocal(size)
	l.now = c.now
	return l, c
}

func mustAllow(t *testing.T, l Limiter, key string, lim Limit) Result {
	t.Helper()
	res, err := l.Allow(context.Background(), key, lim)
	if err != nil {
		t.Fatalf("allow %s: %v", key, err)
	}
	return res
}

// A full bucket allows Burst requests at once, counting Remaining down;
// the next one waits one emission interval; time refills it.
func TestLocalSpendsAndRefills(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		limit     Limit
		wantRetry time.Duration
	}{
		{"per minute", PerMinute(3), 20 * time.Second},
		{"burst below rate", Limit{Rate: 20, Burst: 10, Period: time.Minute}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Room for both keys in every shard: with 100 keys over 64
			// shards, "other" evicted "k" whenever they shared one (1 run in 64).
			l, clock := newLocalAt(localShards * 4)
			for i := range tc.limit.Burst {
				res := mustAllow(t, l, "k", tc.limit)
				if !res.Allowed || res.Remaining != tc.limit.Burst-1-i {
					t.Fatalf("request %d: %+v", i+1, res)
				}
			}
			if _, blocked := l.Blocked("k", tc.limit); !blocked {
				t.Fatal("an empty bucket is not reported blocked")
			}
			res := mustAllow(t, l, "k", tc.limit)
			if res.Allowed || res.RetryAfter != tc.wantRetry {
				t.Fatalf("over the limit: %+v, want refused with retry %v", res, tc.wantRetry)
			}
			if wait, blocked := l.Blocked("k", tc.limit); !blocked || wait != tc.wantRetry {
				t.Fatalf("blocked = %v %v, want %v", blocked, wait, tc.wantRetry)
			}
			// Another key is untouched.
			if res := mustAllow(t, l, "other", tc.limit); !res.Allowed {
				t.Fatalf("another key: %+v", res)
			}
			clock.advance(tc.wantRetry)
			if _, blocked := l.Blocked("k", tc.limit); blocked {
				t.Fatal("still blocked after the retry time")
			}
			if res := mustAllow(t, l, "k", tc.limit); !res.Allowed || res.Remaining != 0 {
				t.Fatalf("after the retry time: %+v", res)
			}
			clock.advance(tc.limit.Window())
			if res := mustAllow(t, l, "k", tc.limit); !res.Allowed || res.Remaining != tc.limit.Burst-1 {
				t.Fatalf("after a whole window: %+v", res)
			}
		})
	}
}

// Memory stays bounded under a flood of distinct keys, and a forgotten key
// has a full bucket.
func TestLocalIsBounded(t *testing.T) {
	t.Parallel()
	l, _ := newLocalAt(localShards * 4)
	lim := PerMinute(1)
	mustAllow(t, l, "victim", lim)
	for i := range 10_000 {
		mustAllow(t, l, "flood-"+strconv.Itoa(i), lim)
	}
	if n := l.Len(); n > localShards*4 {
		t.Fatalf("%d keys remembered, want at most %d", n, localShards*4)
	}
	if res := mustAllow(t, l, "victim", lim); !res.Allowed {
		t.Fatalf("a forgotten key must have a full bucket: %+v", res)
	}
}

// Concurrent requests on one key never get more than the burst.
func TestLocalConcurrentExactlyBurst(t *testing.T) {
	t.Parallel()
	l, _ := newLocalAt(100)
	lim := PerMinute(50)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if mustAllow(t, l, "shared", lim).Allowed {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 50 {
		t.Fatalf("%d allowed, want 50", allowed.Load())
	}
}

// BenchmarkLocalAllow is the in-process cost of one request's check
// (parallel, one key per goroutine, as distinct API keys are).
func BenchmarkLocalAllow(b *testing.B) {
	l := NewLocal(100_000)
	lim := PerMinute(1 << 30)
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := "key:" + strconv.FormatInt(seq.Add(1), 10)
		ctx := context.Background()
		for pb.Next() {
			if _, err := l.Allow(ctx, key, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Refusals reach OnReject with the limiter's name: the hook metrics use.
func TestLimitsReportRejections(t *testing.T) {
	t.Parallel()
	var rejected []string
	limits := New(Config{TierRPM: map[keyhub.Tier]int{keyhub.TierPro: 2}, AuthFailures: PerMinute(1), OnReject: func(name string) { rejected = append(rejected, name) }})
	p := &keyhub.Principal{UserID: uuid.New(), KeyID: uuid.New(), Tier: keyhub.TierPro, Method: keyhub.AuthAPIKey}
	for i, want := range []bool{true, true, false} {
		if d := limits.Principal(context.Background(), p); d.Allowed != want || d.Policy != "pro" || d.Limit.Burst != 2 {
			t.Fatalf("request %d: %+v", i+1, d)
		}
	}
	limits.Rejected(LimiterWSPending)
	if !slices.Equal(rejected, []string{LimiterPrincipal, LimiterWSPending}) {
		t.Fatalf("OnReject got %v", rejected)
	}
}

// BenchmarkAuthBlockedNoFailures is the check every request with
// credentials makes when no authentication failed lately: no lookup.
func BenchmarkAuthBlockedNoFailures(b *testing.B) {
	limits := New(Config{AuthFailures: PerMinute(20)})
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		if _, blocked := limits.AuthBlocked(ip); blocked {
			b.Fatal("blocked")
		}
	}
}

// BenchmarkAuthBlockedAfterFailures is the same check while failures are
// recent: a lookup of the address's bucket.
func BenchmarkAuthBlockedAfterFailures(b *testing.B) {
	limits := New(Config{AuthFailures: PerMinute(20)})
	limits.AuthFailure(context.Background(), netip.MustParseAddr("192.0.2.2"))
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		if _, blocked := limits.AuthBlocked(ip); blocked {
			b.Fatal("blocked")
		}
	}
}
