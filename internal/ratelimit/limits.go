package ratelimit

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/keyhub/keyhub/internal/clientip"
	"github.com/keyhub/keyhub/internal/keyhub"
)

// The limiter names OnReject receives (stable: they become metric labels).
const (
	LimiterPrincipal   = "principal"    // requests per API key or user session
	LimiterAuthFailure = "auth_failure" // failed authentications per client IP
	LimiterWSPending   = "ws_pending"   // WebSocket connections waiting to authenticate (in all or per IP)
	LimiterRefresh     = "refresh"      // key refreshes per acting API key lineage
	LimiterWSMessage   = "ws_message"   // WebSocket messages per API key lineage or user session
	LimiterKeyCreate   = "key_create"   // key creations per owner
)

// AuthFailurePolicy names the failed-authentication policy in headers.
const AuthFailurePolicy = "auth_failures"

// RefreshPolicy names the key-refresh policy in headers.
const RefreshPolicy = "key_refreshes"

// CreatePolicy names the key-creation policy in headers.
const CreatePolicy = "key_creations"

// Config assembles Limits.
type Config struct {
	// TierRPM overrides the tier table's requests per minute
	// (keyhub.TierLimits.RequestsPerMinute) per tier.
	TierRPM map[keyhub.Tier]int
	// AuthFailures limits failed authentications per client IP.
	AuthFailures Limit
	// Refreshes limits key refreshes per acting API key lineage (zero:
	// unlimited).
	Refreshes Limit
	// Creations limits key creations per owner (zero: unlimited).
	Creations Limit
	// Redis, when set, makes every limit global across the processes
	// sharing it; nil limits each process on its own.
	Redis *redis.Client
	// Size bounds the keys remembered in process (buckets without Redis,
	// remembered refusals with it).
	Size int
	Log  *slog.Logger
	// OnReject, if set, is called with the limiter's name on every refusal
	// (keep it quick: a caller may hold a lock).
	OnReject func(limiter string)
	// OnRedisError, if set, is called on every failed Redis round trip.
	OnRedisError func()
}

// Limits is keyhub's request rate-limit policy: which bucket a request
// spends from, and what a Redis outage means for each.
type Limits struct {
	limiter Limiter
	// outage counts failed authentications in process while Redis cannot
	// (nil without Redis): failing closed refuses them, and this lets
	// AuthBlocked stop a guesser before its keys reach the database.
	outage       *Local
	tiers        map[keyhub.Tier]Limit
	authFailures Limit
	refreshes    Limit
	creations    Limit
	onReject     func(string)
	// failuresUntil (unix nanos) is a window after the last failed
	// authentication this process saw: past it no address can be blocked,
	// so AuthBlocked, on every request with credentials, skips the lookup.
	failuresUntil atomic.Int64
	now           func() time.Time
}

// Decision is the answer for one request, with what its RateLimit
// headers say.
type Decision struct {
	Result
	// Policy names the limit in the RateLimit headers.
	Policy string
	Limit  Limit
	// Err is the Redis error behind a decision taken without Redis (open
	// for principals, closed for failed authentications).
	Err error
}

// New returns the policy of cfg.
func New(cfg Config) *Limits {
	size := cfg.Size
	if size <= 0 {
		size = 100_000
	}
	l := &Limits{tiers: make(map[keyhub.Tier]Limit), authFailures: cfg.AuthFailures, refreshes: cfg.Refreshes, creations: cfg.Creations, onReject: cfg.OnReject, now: time.Now}
	for _, tier := range []keyhub.Tier{keyhub.TierFree, keyhub.TierPro, keyhub.TierTeam, keyhub.TierEnterprise} {
		rpm := tier.Limits().RequestsPerMinute
		if n, ok := cfg.TierRPM[tier]; ok && n > 0 {
			rpm = n
		}
		l.tiers[tier] = PerMinute(rpm)
	}
	if cfg.Redis != nil {
		l.limiter = NewRedis(RedisConfig{Client: cfg.Redis, RefusedSize: size, Log: cfg.Log, OnError: cfg.OnRedisError})
		l.outage = NewLocal(size)
	} else {
		l.limiter = NewLocal(size)
	}
	return l
}

// TierLimit is the request limit of a tier (an unknown tier gets free's).
func (l *Limits) TierLimit(t keyhub.Tier) Limit {
	if lim, ok := l.tiers[t]; ok {
		return lim
	}
	return l.tiers[keyhub.TierFree]
}

// RequestsPerMinute is the REST request rate this server enforces on a
// tier: the tier table's figure unless configuration overrides it. A nil
// Limits (no rate limiting wired) states the tier table's.
func (l *Limits) RequestsPerMinute(t keyhub.Tier) int {
	if l == nil {
		return t.Limits().RequestsPerMinute
	}
	return l.TierLimit(t).Rate
}

// Principal spends one request of p's bucket (see PrincipalBucket). A
// Redis outage fails open: the request is allowed, and Err says why.
func (l *Limits) Principal(ctx context.Context, p *keyhub.Principal) Decision {
	return l.allowOpen(ctx, PrincipalBucket(p), l.TierLimit(p.Tier), string(p.Tier), LimiterPrincipal)
}

// allowOpen spends one unit of bucket under lim, failing open when Redis
// cannot answer (the decision allows, and Err says why).
func (l *Limits) allowOpen(ctx context.Context, bucket string, lim Limit, policy, limiter string) Decision {
	res, err := l.limiter.Allow(ctx, bucket, lim)
	if err != nil {
		return Decision{Result: Result{Allowed: true, Remaining: lim.Burst}, Policy: policy, Limit: lim, Err: err}
	}
	if !res.Allowed {
		l.rejected(limiter)
	}
	return Decision{Result: res, Policy: policy, Limit: lim}
}

// Refresh spends one key refresh of an acting API key's refresh budget,
// a bucket of its lineage beside its request bucket (PrincipalBucket
// names both): a refresh is a write with an audit trail, and a key
// refreshing itself in a loop must not turn its request budget into a
// stream of new keys. A user session's refreshes (the dashboard) are
// bounded by its request bucket alone: a person rotating many keys at
// once is not the automated loop this guards against. A Redis outage
// fails open, like Principal: a rotation after a leak must not wait for
// Redis.
func (l *Limits) Refresh(ctx context.Context, p *keyhub.Principal) Decision {
	if !l.refreshes.Valid() || !p.IsKey() {
		return Decision{Result: Result{Allowed: true}, Policy: RefreshPolicy}
	}
	return l.allowOpen(ctx, "refresh:"+PrincipalBucket(p), l.refreshes, RefreshPolicy, LimiterRefresh)
}

// Create spends one key creation of the owner's creation budget, whoever
// creates (a dashboard session, a key with keys:write, the seed service's
// create): a new key starts with a full request bucket of its own, so a
// loop of create, spend, revoke would otherwise turn a session's requests
// into fresh buckets (a free user reached ≈1,800 requests a minute through
// keys of 60). The budget is the owner's, not the user's or the acting
// key's, since every key of an owner spends its tier. A Redis outage fails
// open, like Principal.
func (l *Limits) Create(ctx context.Context, p *keyhub.Principal) Decision {
	if !l.creations.Valid() {
		return Decision{Result: Result{Allowed: true}, Policy: CreatePolicy}
	}
	return l.allowOpen(ctx, "create:"+bucketName("owner:", p.OwnerID), l.creations, CreatePolicy, LimiterKeyCreate)
}

// WSMessage spends one WebSocket message of p's budget: its tier's
// messages per minute, in a bucket beside its request bucket (the same
// key lineage or user), shared by all its connections and, with Redis, by
// every process. A budget per connection would start afresh on every
// reconnect. A Redis outage fails open, like Principal.
func (l *Limits) WSMessage(ctx context.Context, p *keyhub.Principal) Decision {
	lim := PerMinute(p.Tier.Limits().WSMessagesPerMinute)
	return l.allowOpen(ctx, "ws:"+PrincipalBucket(p), lim, string(p.Tier), LimiterWSMessage)
}

// AuthFailure spends one failed authentication of ip's bucket. A Redis
// outage fails closed: the failure is refused as if over the limit, since
// the point of this limit is that guessing can never run unchecked.
func (l *Limits) AuthFailure(ctx context.Context, ip netip.Addr) Decision {
	// A bucket drained now refills within one window: until then
	// AuthBlocked must look.
	until := l.now().Add(l.authFailures.Window()).UnixNano()
	for prev := l.failuresUntil.Load(); prev < until && !l.failuresUntil.CompareAndSwap(prev, until); prev = l.failuresUntil.Load() {
	}
	res, err := l.limiter.Allow(ctx, ipKey(ip), l.authFailures)
	if err != nil {
		if l.outage != nil && ctx.Err() == nil {
			_, _ = l.outage.Allow(ctx, ipKey(ip), l.authFailures) // never fails
		}
		// One emission interval: when Redis is back, the client may try again.
		res = Result{RetryAfter: l.authFailures.emission(), ResetAfter: l.authFailures.Window()}
	}
	if !res.Allowed {
		l.rejected(LimiterAuthFailure)
	}
	return Decision{Result: res, Policy: AuthFailurePolicy, Limit: l.authFailures, Err: err}
}

// AuthBlocked reports, without any round trip, whether ip is over its
// failed-authentication limit as far as this process knows: such a
// client's credentials are not even looked at, so guessing costs nothing.
func (l *Limits) AuthBlocked(ip netip.Addr) (Decision, bool) {
	if l.now().UnixNano() >= l.failuresUntil.Load() {
		return Decision{}, false // no failure lately: nobody is blocked
	}
	key := ipKey(ip)
	wait, blocked := l.limiter.Blocked(key, l.authFailures)
	if !blocked && l.outage != nil {
		wait, blocked = l.outage.Blocked(key, l.authFailures)
	}
	if !blocked {
		return Decision{}, false
	}
	l.rejected(LimiterAuthFailure)
	return Decision{Result: Result{RetryAfter: wait, ResetAfter: l.authFailures.Window()}, Policy: AuthFailurePolicy, Limit: l.authFailures}, true
}

// PrincipalBucket names the request bucket p spends from, the one place
// that decides it: an API key's lineage (a key and every successor its
// refreshes made share one bucket, so a key refreshing itself cannot
// start afresh), or the user's for a session token.
func PrincipalBucket(p *keyhub.Principal) string {
	if !p.IsKey() {
		return bucketName("user:", p.UserID)
	}
	if p.LineageID == uuid.Nil { // a principal built without its lineage: its key is the lineage
		return bucketName("key:", p.KeyID)
	}
	// "key:": a key that was never refreshed is its own lineage, so its
	// bucket is the one it had before lineages existed.
	return bucketName("key:", p.LineageID)
}

// bucketName is prefix + id in hex, built with one allocation: it is on
// every authenticated request.
func bucketName(prefix string, id uuid.UUID) string {
	var buf [8 + 2*len(uuid.UUID{})]byte
	n := copy(buf[:8], prefix)
	n += hex.Encode(buf[n:], id[:])
	return string(buf[:n])
}

// Rejected reports a refusal decided outside Limits (the WebSocket
// pending caps) to OnReject.
func (l *Limits) Rejected(limiter string) { l.rejected(limiter) }

func (l *Limits) rejected(limiter string) {
	if l.onReject != nil {
		l.onReject(limiter)
	}
}

// ipKey is the failed-authentication bucket of a client address (its
// clientip.Block).
func ipKey(ip netip.Addr) string {
	var buf [64]byte // "authfail:" and the longest IPv6 prefix fit
	return string(clientip.Block(ip).AppendTo(append(buf[:0], "authfail:"...)))
}

// retrySeconds rounds a wait up to whole seconds, as Retry-After and the
// RateLimit headers count them.
func retrySeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// RetryAfterSeconds is the Retry-After value of a refusal (at least 1).
func (d Decision) RetryAfterSeconds() int64 { return max(retrySeconds(d.RetryAfter), 1) }

// ResetSeconds is the t of the RateLimit header.
func (d Decision) ResetSeconds() int64 { return retrySeconds(d.ResetAfter) }
