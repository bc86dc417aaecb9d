package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"
)

// redisKeyPrefix namespaces keyhub's buckets (redis_rate adds "rate:").
const redisKeyPrefix = "keyhub:"

// pauseAfterError is how long after a failed round trip Redis is not
// asked at all: during an outage (a Redis that hangs rather than refuses
// costs a whole timeout per request) only one request per pause waits for
// it; the others are answered as an outage at once.
const pauseAfterError = time.Second

// ErrRedisPaused is the error of a check not sent because Redis failed
// within the last pauseAfterError.
var ErrRedisPaused = errors.New("rate limit: Redis failed moments ago; not asked")

// errorLogInterval spaces the WARN lines of a Redis outage: one per
// interval, with the number of failures since the last one.
const errorLogInterval = 10 * time.Second

// Redis is the Limiter shared by every process using the same Redis: each
// Allow is one round trip running redis_rate's GCRA script, so buckets are
// exact across processes. Refusals are also remembered in this process
// until their retry time, so a client that keeps knocking after a 429 costs
// no round trip (Blocked, and Allow answers from memory): the trade is that
// a bucket refilled early by another process is seen here only when the
// remembered refusal expires, which GCRA never does.
type Redis struct {
	limiter *redis_rate.Limiter
	refused *lru.Cache[string, int64] // key → unix nanos until which it is refused
	now     func() time.Time
	log     *slog.Logger
	onError func()

	failures    atomic.Int64 // since the last log line
	lastLog     atomic.Int64 // unix nanos
	pausedUntil atomic.Int64 // unix nanos; see pauseAfterError
	// down is the outage under way (nil: none). A request during the pause
	// logs its real cause, not "not asked"; the first success ends it with
	// one INFO line. Loaded once per successful round trip: one atomic read.
	down atomic.Pointer[outage]
}

// outage is a Redis outage: since when, and the last error Redis gave.
type outage struct {
	since time.Time
	cause error
}

// RedisConfig assembles a Redis limiter.
type RedisConfig struct {
	Client *redis.Client
	// RefusedSize bounds the refusals remembered in this process.
	RefusedSize int
	Log         *slog.Logger
	// OnError, if set, is called on every failed round trip (for a metric).
	OnError func()
}

// quietRedisLog sends go-redis's own log lines (one per failed dial, on
// every request of an outage) to the default slog logger at DEBUG: the
// outage is reported by failed's rate-limited WARN instead. go-redis has
// one process-wide logger, hence the Once.
var quietRedisLog sync.Once

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// NewRedis returns a Redis-backed limiter.
func NewRedis(cfg RedisConfig) *Redis {
	quietRedisLog.Do(func() { redis.SetLogger(debugLogger{}) })
	refused, _ := lru.New[string, int64](max(cfg.RefusedSize, 1)) // only errors on size ≤ 0
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Redis{limiter: redis_rate.NewLimiter(cfg.Client), refused: refused, now: time.Now, log: log, onError: cfg.OnError}
}

// Allow implements Limiter. An error means Redis could not answer; the
// caller decides whether that fails open or closed.
func (r *Redis) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	if wait, blocked := r.Blocked(key, limit); blocked {
		return Result{RetryAfter: wait, ResetAfter: limit.Window()}, nil
	}
	// A request whose client went away is not a Redis outage: it must
	// neither pause Redis for everyone nor be counted as a Redis error.
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if r.now().UnixNano() < r.pausedUntil.Load() {
		r.failed(ErrRedisPaused)
		return Result{}, ErrRedisPaused
	}
	res, err := r.limiter.Allow(ctx, redisKeyPrefix+key, redis_rate.Limit{Rate: limit.Rate, Burst: limit.Burst, Period: limit.Period})
	if err != nil && ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if err != nil {
		r.pausedUntil.Store(r.now().Add(pauseAfterError).UnixNano())
		r.failed(err)
		return Result{}, err
	}
	if o := r.down.Load(); o != nil && r.down.CompareAndSwap(o, nil) {
		r.log.Info("rate limit: Redis is back", "down_for", r.now().Sub(o.since).Round(time.Millisecond), "last_error", o.cause)
	}
	out := Result{Allowed: res.Allowed > 0, Remaining: res.Remaining, ResetAfter: max(res.ResetAfter, 0)}
	if !out.Allowed {
		out.RetryAfter = max(res.RetryAfter, time.Millisecond)
		r.refused.Add(key, r.now().Add(out.RetryAfter).UnixNano())
	}
	return out, nil
}

// Blocked implements Limiter from the refusals this process has seen.
func (r *Redis) Blocked(key string, _ Limit) (time.Duration, bool) {
	until, ok := r.refused.Get(key)
	if !ok {
		return 0, false
	}
	wait := time.Duration(until - r.now().UnixNano())
	if wait <= 0 {
		r.refused.Remove(key)
		return 0, false
	}
	return wait, true
}

// failed counts a Redis error and logs at most one WARN per
// errorLogInterval, so an outage cannot flood the log.
func (r *Redis) failed(err error) {
	if r.onError != nil {
		r.onError()
	}
	o := r.down.Load()
	if errors.Is(err, ErrRedisPaused) && o != nil {
		err = o.cause // what Redis said, not that it was not asked
	} else {
		since := r.now()
		if o != nil {
			since = o.since
		}
		r.down.Store(&outage{since: since, cause: err})
	}
	n := r.failures.Add(1)
	now := r.now().UnixNano()
	last := r.lastLog.Load()
	if now-last < int64(errorLogInterval) || !r.lastLog.CompareAndSwap(last, now) {
		return
	}
	r.failures.Add(-n)
	r.log.Warn("rate limit: Redis unavailable", "failures", n, "err", err)
}
