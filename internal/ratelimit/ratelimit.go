// Package ratelimit holds keyhub's request limiters behind one interface:
// an in-process one (per process, bounded memory) and a Redis-backed one
// (global across processes), both the generic cell rate algorithm (GCRA),
// so they answer the same way. Policies (which limit applies to whom, and
// whether an outage fails open or closed) live in Limits.
package ratelimit

import (
	"context"
	"time"
)

// Limit is a GCRA limit: Rate units per Period, of which up to Burst may be
// spent at once. A bucket starts full.
type Limit struct {
	Rate   int
	Burst  int
	Period time.Duration
}

// PerMinute is rate units a minute with a burst of the whole minute.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Burst: rate, Period: time.Minute} }

// Valid reports whether l can be enforced.
func (l Limit) Valid() bool { return l.Rate > 0 && l.Burst > 0 && l.Period > 0 }

// emission is the time one unit takes to come back (at least 1 ns, so an
// absurd rate cannot divide by zero).
func (l Limit) emission() time.Duration { return max(l.Period/time.Duration(l.Rate), 1) }

// Window is how long a drained bucket takes to fill again: the w of the
// RateLimit-Policy header.
func (l Limit) Window() time.Duration { return l.emission() * time.Duration(l.Burst) }

// Result is the state of one key's bucket after a request.
type Result struct {
	Allowed bool
	// Remaining is how many more units would be allowed right now.
	Remaining int
	// RetryAfter is how long a refused request must wait (0 when allowed).
	RetryAfter time.Duration
	// ResetAfter is how long until the bucket is full again.
	ResetAfter time.Duration
}

// Limiter is a set of GCRA buckets, one per key.
type Limiter interface {
	// Allow spends one unit of key's bucket if it has one.
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
	// Blocked reports, from this process's memory alone (never a network
	// round trip), whether key's last answer was a refusal that still
	// holds, and for how long. It lets a hot path refuse without asking.
	Blocked(key string, limit Limit) (retryAfter time.Duration, blocked bool)
}

// gcra is the algorithm, shared by the in-process limiter and mirrored by
// the Redis script (github.com/go-redis/redis_rate): tat is the bucket's
// theoretical arrival time in nanoseconds (≤ now means full). It returns
// the new tat and the answer.
func gcra(tat, now int64, l Limit) (int64, Result) {
	interval := int64(l.emission())
	burstOffset := interval * int64(l.Burst)
	tat = max(tat, now)
	newTat := tat + interval
	diff := now - (newTat - burstOffset)
	if diff < 0 {
		return tat, Result{RetryAfter: time.Duration(-diff), ResetAfter: time.Duration(tat - now)}
	}
	return newTat, Result{Allowed: true, Remaining: int(diff / interval), ResetAfter: time.Duration(newTat - now)}
}

// blockedFor is how long a bucket at tat refuses its next unit (≤ 0: not
// blocked).
func blockedFor(tat, now int64, l Limit) time.Duration {
	interval := int64(l.emission())
	return time.Duration(tat + interval - interval*int64(l.Burst) - now)
}
