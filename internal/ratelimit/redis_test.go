package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/keyhub/keyhub/internal/keyhub"
	"github.com/keyhub/keyhub/internal/redistest"
)

func newRedis(t testing.TB, client *redis.Client) *Redis {
	t.Helper()
	return NewRedis(RedisConfig{Client: client, RefusedSize: 1000})
}

// The Redis limiter answers as the in-process one does, and two limiters
// on separate clients (two processes) spend from the same bucket.
func TestRedisSharedBucket(t *testing.T) {
	t.Parallel()
	a, b := newRedis(t, redistest.Client(t)), newRedis(t, redistest.Client(t))
	key := "test:" + uuid.NewString()
	lim := PerMinute(3)
	for i, l := range []*Redis{a, b, a} {
		res := mustAllow(t, l, key, lim)
		if !res.Allowed || res.Remaining != 2-i {
			t.Fatalf("request %d: %+v", i+1, res)
		}
	}
	res := mustAllow(t, b, key, lim)
	if res.Allowed || res.RetryAfter <= 0 || res.RetryAfter > 20*time.Second {
		t.Fatalf("4th request across both: %+v, want refused with retry ≤ 20s", res)
	}
	if wait, blocked := b.Blocked(key, lim); !blocked || wait > 20*time.Second {
		t.Fatalf("refusing process: blocked = %v %v", blocked, wait)
	}
	if _, blocked := a.Blocked(key, lim); blocked {
		t.Fatal("a process that was never refused reports blocked from memory")
	}
	if res := mustAllow(t, a, key, lim); res.Allowed {
		t.Fatalf("the other process asks Redis and is refused too: %+v", res)
	}
}

// A refusal is remembered until its retry time: the next request is
// answered without Redis (deleting the bucket in Redis does not help).
func TestRedisRemembersRefusals(t *testing.T) {
	t.Parallel()
	client := redistest.Client(t)
	l := newRedis(t, client)
	key := "test:" + uuid.NewString()
	lim := PerMinute(1)
	mustAllow(t, l, key, lim)
	if res := mustAllow(t, l, key, lim); res.Allowed {
		t.Fatalf("2nd request: %+v", res)
	}
	if err := client.Del(context.Background(), "rate:"+redisKeyPrefix+key).Err(); err != nil {
		t.Fatal(err)
	}
	if res := mustAllow(t, l, key, lim); res.Allowed {
		t.Fatalf("a remembered refusal must not ask Redis: %+v", res)
	}
	// Once the retry time has passed, Redis decides again.
	l.now = func() time.Time { return time.Now().Add(time.Minute) }
	if res := mustAllow(t, l, key, lim); !res.Allowed {
		t.Fatalf("after the retry time, with the bucket deleted: %+v", res)
	}
}

// downClient is a client of a Redis that is not there.
func downClient(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// With Redis down, Allow errors, the hook counts every failure, and the
// WARN line is written once per interval, not per request.
func TestRedisDownErrorsCountedAndLoggedOnce(t *testing.T) {
	t.Parallel()
	var logBuf bytes.Buffer
	var failures atomic.Int64
	l := NewRedis(RedisConfig{Client: downClient(t), RefusedSize: 10, Log: slog.New(slog.NewTextHandler(&logBuf, nil)), OnError: func() { failures.Add(1) }})
	for i := range 5 {
		_, err := l.Allow(context.Background(), "k", PerMinute(10))
		if err == nil {
			t.Fatal("Allow against a Redis that is down must fail")
		}
		// After the first failure, Redis is not asked for a moment.
		if paused := errors.Is(err, ErrRedisPaused); paused != (i > 0) {
			t.Fatalf("check %d: %v", i+1, err)
		}
	}
	l.now = func() time.Time { return time.Now().Add(pauseAfterError) }
	if _, err := l.Allow(context.Background(), "k", PerMinute(10)); err == nil || errors.Is(err, ErrRedisPaused) {
		t.Fatalf("after the pause Redis is asked again: %v", err)
	}
	if failures.Load() != 6 {
		t.Fatalf("OnError called %d times, want 6", failures.Load())
	}
	if n := bytes.Count(logBuf.Bytes(), []byte("Redis unavailable")); n != 1 {
		t.Fatalf("%d WARN lines, want 1:\n%s", n, logBuf.String())
	}
}

// The policy: a Redis outage fails open for principals and closed for
// failed authentications, and refusals reach OnReject.
func TestLimitsOnRedisOutage(t *testing.T) {
	t.Parallel()
	var rejected []string
	limits := New(Config{
		AuthFailures: Limit{Rate: 20, Burst: 10, Period: time.Minute},
		Redis:        downClient(t),
		Log:          slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
		OnReject:     func(name string) { rejected = append(rejected, name) },
	})
	p := &keyhub.Principal{UserID: uuid.New(), Tier: keyhub.TierFree, Method: keyhub.AuthJWT}
	if d := limits.Principal(context.Background(), p); !d.Allowed || d.Err == nil {
		t.Fatalf("principal with Redis down: %+v, want allowed (fail open) with the error", d)
	}
	d := limits.AuthFailure(context.Background(), netip.MustParseAddr("192.0.2.1"))
	if d.Allowed || d.Err == nil || d.RetryAfterSeconds() != 3 {
		t.Fatalf("auth failure with Redis down: %+v, want refused (fail closed), retry 3s", d)
	}
	if len(rejected) != 1 || rejected[0] != LimiterAuthFailure {
		t.Fatalf("OnReject got %v", rejected)
	}
}

// The in-process policy limits failed authentications per address block:
// IPv6 per /64.
func TestLimitsAuthFailuresPerBlock(t *testing.T) {
	t.Parallel()
	limits := New(Config{AuthFailures: Limit{Rate: 20, Burst: 2, Period: time.Minute}})
	ctx := context.Background()
	for _, ip := range []string{"2001:db8::1", "2001:db8::2"} {
		if d := limits.AuthFailure(ctx, netip.MustParseAddr(ip)); !d.Allowed {
			t.Fatalf("%s: %+v", ip, d)
		}
	}
	if d := limits.AuthFailure(ctx, netip.MustParseAddr("2001:db8::3")); d.Allowed {
		t.Fatal("a third failure from the same /64 must be refused")
	}
	if _, blocked := limits.AuthBlocked(netip.MustParseAddr("2001:db8::ffff")); !blocked {
		t.Fatal("the whole /64 is blocked")
	}
	if _, blocked := limits.AuthBlocked(netip.MustParseAddr("2001:db8:0:1::1")); blocked {
		t.Fatal("the next /64 is not")
	}
}

// BenchmarkRedisAllow is one request's check in Redis: one round trip.
func BenchmarkRedisAllow(b *testing.B) {
	l := newRedis(b, redistest.Client(b))
	lim := PerMinute(1 << 30)
	prefix := "bench:" + uuid.NewString() + ":"
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := prefix + strconv.FormatInt(seq.Add(1), 10)
		ctx := context.Background()
		for pb.Next() {
			if _, err := l.Allow(ctx, key, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchmarkPrincipal is the whole per-request policy check for an API key
// (building its bucket name included), from parallel goroutines with one
// key each.
func benchmarkPrincipal(b *testing.B, limits *Limits) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		p := &keyhub.Principal{UserID: uuid.New(), KeyID: uuid.New(), Tier: keyhub.TierEnterprise, Method: keyhub.AuthAPIKey}
		ctx := context.Background()
		for pb.Next() {
			if d := limits.Principal(ctx, p); d.Err != nil {
				b.Fatal(d.Err)
			}
		}
	})
}

// BenchmarkPrincipalLocal: per-process limits (no REDIS_URL).
func BenchmarkPrincipalLocal(b *testing.B) {
	benchmarkPrincipal(b, New(Config{TierRPM: map[keyhub.Tier]int{keyhub.TierEnterprise: 1 << 30}}))
}

// BenchmarkPrincipalRedis: global limits, one Redis round trip each.
func BenchmarkPrincipalRedis(b *testing.B) {
	benchmarkPrincipal(b, New(Config{TierRPM: map[keyhub.Tier]int{keyhub.TierEnterprise: 1 << 30}, Redis: redistest.Client(b)}))
}

// A request whose client went away must not look like a Redis outage: it
// used to pause Redis for a second and fail every limit open, so a client
// hanging up once a second switched the limits off.
func TestCanceledRequestIsNotAnOutage(t *testing.T) {
	t.Parallel()
	var failures atomic.Int64
	l := NewRedis(RedisConfig{Client: redistest.Client(t), RefusedSize: 10, OnError: func() { failures.Add(1) }})
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Allow(gone, "k", PerMinute(60)); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request: %v", err)
	}
	res, err := l.Allow(context.Background(), "k", PerMinute(60))
	if err != nil || !res.Allowed {
		t.Fatalf("the next request: %+v %v (Redis paused by a canceled one?)", res, err)
	}
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d Redis errors counted for a canceled request", n)
	}
}

// An outage's WARN lines name Redis's own error, also while Redis is not
// asked (the pause), and its end is logged once at INFO.
func TestRedisOutageLogsCauseAndRecovery(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	opts, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	dial := net.Dialer{Timeout: time.Second}
	opts.MaxRetries, opts.DialerRetries = -1, 1
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if down.Load() {
			return nil, errors.New("dial refused by the test")
		}
		return dial.DialContext(ctx, network, addr)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	var logBuf bytes.Buffer
	l := NewRedis(RedisConfig{Client: client, RefusedSize: 10, Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	start := time.Now()
	l.now = func() time.Time { return start }
	if _, err := l.Allow(context.Background(), "k", PerMinute(10)); err == nil {
		t.Fatal("Allow with every dial refused must fail")
	}
	// Past the log interval but inside a fresh pause: the request is not
	// sent, and the WARN says why Redis failed.
	l.now = func() time.Time { return start.Add(errorLogInterval) }
	l.pausedUntil.Store(start.Add(errorLogInterval + pauseAfterError).UnixNano())
	if _, err := l.Allow(context.Background(), "k", PerMinute(10)); !errors.Is(err, ErrRedisPaused) {
		t.Fatalf("during the pause: %v", err)
	}
	if n := strings.Count(logBuf.String(), "dial refused by the test"); n != 2 {
		t.Fatalf("%d WARN lines name the cause, want 2:\n%s", n, logBuf.String())
	}
	if strings.Contains(logBuf.String(), "not asked") {
		t.Fatalf("a WARN line hides the cause:\n%s", logBuf.String())
	}

	down.Store(false)
	l.now = func() time.Time { return start.Add(errorLogInterval + 2*pauseAfterError) }
	for range 2 {
		if _, err := l.Allow(context.Background(), "k", PerMinute(10)); err != nil {
			t.Fatalf("Redis is back: %v", err)
		}
	}
	if n := strings.Count(logBuf.String(), "Redis is back"); n != 1 {
		t.Fatalf("%d recovery lines, want 1:\n%s", n, logBuf.String())
	}
	if !strings.Contains(logBuf.String(), "down_for=12s") {
		t.Fatalf("the recovery line does not say how long Redis was down:\n%s", logBuf.String())
	}
}
