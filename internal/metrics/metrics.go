// Package metrics holds keyhub's Prometheus collectors, the HTTP
// middleware that feeds the request histogram, and the handler of GET
// /metrics. Every collector lives on one *Metrics with its own registry
// (no global state: tests run several servers in one process).
//
// Recording methods are safe on a nil *Metrics (they do nothing), so a
// package given no Metrics needs no checks. Labels never hold a key, a
// token, an email or a raw path: requests are labelled by chi's route
// pattern, auth by method and error code, WebSocket closes by code.
//
// The hot path does not allocate for labels: the child of a labelled
// collector is resolved once per label set and kept in a copy-on-write map.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// Metrics is keyhub's set of collectors.
type Metrics struct {
	registry *prometheus.Registry

	requestDuration *prometheus.HistogramVec
	requests        children[requestKey, prometheus.Observer]

	authOutcomes *prometheus.CounterVec
	auths        children[authLabels, prometheus.Counter]

	keyCacheHit, keyCacheMiss, keyCacheNegativeHit prometheus.Counter

	jwksRefreshes, jwksRefreshFailures prometheus.Counter

	wsConnections  *prometheus.GaugeVec
	wsByTier       children[keyhub.Tier, prometheus.Gauge]
	wsCloses       *prometheus.CounterVec
	wsClosesByCode children[int, prometheus.Counter]
	wsMessagesIn   prometheus.Counter
	wsMessagesOut  prometheus.Counter

	lastUsedFlushFailures *prometheus.CounterVec

	// RateLimitRejections counts requests refused by a rate limiter, by
	// limiter name (e.g. "key", "user", "ip_failed_auth", "ws_pending"):
	// keyhub_ratelimit_rejections_total{limiter}. RateLimitRejected records
	// one without allocating; limiter names must be constants.
	RateLimitRejections *prometheus.CounterVec
	rateLimiters        children[string, prometheus.Counter]
	// RedisErrors counts failed Redis calls, by operation:
	// keyhub_redis_errors_total{operation}; see RedisError.
	RedisErrors *prometheus.CounterVec
	// ChangeFeedNotifications counts change-feed notifications received,
	// by kind: keyhub_changefeed_notifications_total{kind}.
	ChangeFeedNotifications *prometheus.CounterVec
	// ChangeFeedLag is the time from a change's commit to its notification
	// being handled here: keyhub_changefeed_lag_seconds.
	ChangeFeedLag prometheus.Histogram
	// ChangeFeedReconnects counts reconnects of the change-feed listener:
	// keyhub_changefeed_reconnects_total.
	ChangeFeedReconnects prometheus.Counter
	// ChangeFeedEventReads counts the reads of events other processes
	// announced, one per batch: keyhub_changefeed_event_reads_total.
	ChangeFeedEventReads prometheus.Counter

	gatewayRequests *prometheus.CounterVec
	gatewayDuration *prometheus.HistogramVec
	gatewayByRoute  children[gatewayKey, gatewayChildren]
}

// gatewayKey labels one proxied request: its route's prefix and the status
// its client got.
type gatewayKey struct {
	route  string
	status int
}

type gatewayChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// requestBuckets span a cached-key request (tens of microseconds) to the
// request deadline.
var requestBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// lagBuckets span a local commit-to-notify (milliseconds) to a listener
// that fell seconds behind.
var lagBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns keyhub's collectors, registered with a fresh registry along
// with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry()}
	f := factory{m.registry}

	m.requestDuration = f.histogramVec("keyhub_http_request_duration_seconds",
		"HTTP requests by chi route pattern (never the raw path), method and status; WebSocket sessions are not requests and are left out.",
		requestBuckets, "route", "method", "status")
	m.requests.make = func(k requestKey) prometheus.Observer {
		return m.requestDuration.WithLabelValues(k.route(), k.method, strconv.Itoa(k.status))
	}

	m.authOutcomes = f.counterVec("keyhub_auth_outcomes_total",
		`Authentication attempts by method (jwt, api_key, ticket, first_message; unknown for a malformed header), outcome code ("OK" or the error code) and reason (which check refused the credential, where the code covers several; empty otherwise).`,
		"method", "code", "reason")
	m.auths.make = func(l authLabels) prometheus.Counter {
		return m.authOutcomes.WithLabelValues(l.method, l.code, l.reason)
	}

	keyCache := f.counterVec("keyhub_key_cache_lookups_total",
		"API key cache lookups: hit (verified key in memory), miss (read from the database), negative_hit (a recently unknown key, refused without the database).",
		"result")
	m.keyCacheHit = keyCache.WithLabelValues("hit")
	m.keyCacheMiss = keyCache.WithLabelValues("miss")
	m.keyCacheNegativeHit = keyCache.WithLabelValues("negative_hit")

	m.jwksRefreshes = f.counter("keyhub_jwks_refreshes_total", "JWKS fetches (at start, periodic, and on an unknown kid).")
	m.jwksRefreshFailures = f.counter("keyhub_jwks_refresh_failures_total", "JWKS fetches that failed (network error or a status other than 2xx); the last good keys stay in use.")

	m.wsConnections = f.gaugeVec("keyhub_ws_connections", "Open authenticated WebSocket connections by tier.", "tier")
	m.wsByTier.make = func(tier keyhub.Tier) prometheus.Gauge { return m.wsConnections.WithLabelValues(string(tier)) }
	for _, tier := range []keyhub.Tier{keyhub.TierFree, keyhub.TierPro, keyhub.TierTeam, keyhub.TierEnterprise} {
		m.wsByTier.get(tier) // shown at 0 before the first connection
	}
	m.wsCloses = f.counterVec("keyhub_ws_closes_total",
		"WebSocket connections ended, by close code (sent by the server, or received from the peer; 1006: no close frame; other: a code keyhub does not use).",
		"code")
	m.wsClosesByCode.make = func(code int) prometheus.Counter { return m.wsCloses.WithLabelValues(closeCodeLabel(code)) }
	wsMessages := f.counterVec("keyhub_ws_messages_total", "WebSocket messages by direction (in: from clients, out: to clients).", "direction")
	m.wsMessagesIn = wsMessages.WithLabelValues("in")
	m.wsMessagesOut = wsMessages.WithLabelValues("out")

	m.lastUsedFlushFailures = f.counterVec("keyhub_last_used_flush_failures_total",
		"Failed batched writes of last_used_at / last_seen_at, by table; the timestamps are kept and retried.",
		"table")
	for _, table := range []string{"api_keys", "users"} {
		m.lastUsedFlushFailures.WithLabelValues(table) // shown at 0
	}

	m.RateLimitRejections = f.counterVec("keyhub_ratelimit_rejections_total", "Requests refused by a rate limiter, by limiter.", "limiter")
	m.rateLimiters.make = func(limiter string) prometheus.Counter { return m.RateLimitRejections.WithLabelValues(limiter) }
	m.RedisErrors = f.counterVec("keyhub_redis_errors_total", "Failed Redis calls, by operation.", "operation")
	m.ChangeFeedNotifications = f.counterVec("keyhub_changefeed_notifications_total", "Change-feed notifications received, by kind.", "kind")
	m.ChangeFeedLag = f.histogram("keyhub_changefeed_lag_seconds", "Time from a change's commit to its notification being handled by this process.", lagBuckets)
	m.ChangeFeedReconnects = f.counter("keyhub_changefeed_reconnects_total", "Reconnects of the change-feed listener (caches are flushed after each).")
	m.ChangeFeedEventReads = f.counter("keyhub_changefeed_event_reads_total", "Database reads of events other processes announced (one per batch of events).")

	m.gatewayRequests = f.counterVec("keyhub_gateway_requests_total",
		"Requests to GATEWAY_ROUTES, by route prefix and the status the client got (refusals, 502 and 504 included).",
		"route", "code")
	m.gatewayDuration = f.histogramVec("keyhub_gateway_request_duration_seconds",
		"Time from a gateway request's arrival to the end of its answer (admission, upstream and streaming), by route prefix.",
		requestBuckets, "route")
	m.gatewayByRoute.make = func(k gatewayKey) gatewayChildren {
		return gatewayChildren{
			requests: m.gatewayRequests.WithLabelValues(k.route, statusLabel(k.status)),
			duration: m.gatewayDuration.WithLabelValues(k.route),
		}
	}

	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Register adds collectors that keyhub does not define itself (e.g. the
// database pool's, see PoolCollector).
func (m *Metrics) Register(cs ...prometheus.Collector) { m.registry.MustRegister(cs...) }

// AuthOutcome records one authentication attempt: method is "jwt",
// "api_key", "ticket", "first_message", "verify" (a key an operator asks
// about) or "unknown"; err nil is "OK". The
// reason label is the error's Reason, a fixed set of constants (never a
// value from the request).
func (m *Metrics) AuthOutcome(method string, err error) {
	if m == nil {
		return
	}
	labels := authLabels{method: method, code: "OK"}
	if err != nil {
		kerr, ok := err.(*keyhub.Error) // the usual case, without errors.As's allocation
		if !ok {
			kerr = asError(err)
		}
		labels.code, labels.reason = string(kerr.Code), kerr.Reason
	}
	m.auths.get(labels).Inc()
}

// asError finds the *keyhub.Error in err's chain, or stands for an
// internal error; apart from AuthOutcome so that only this rare path pays
// for errors.As's escaping pointer.
func asError(err error) *keyhub.Error {
	var kerr *keyhub.Error
	if errors.As(err, &kerr) {
		return kerr
	}
	return &keyhub.Error{Code: keyhub.CodeInternal}
}

// KeyCacheHit records a key verified from memory.
func (m *Metrics) KeyCacheHit() {
	if m != nil {
		m.keyCacheHit.Inc()
	}
}

// KeyCacheMiss records a key looked up in the database.
func (m *Metrics) KeyCacheMiss() {
	if m != nil {
		m.keyCacheMiss.Inc()
	}
}

// KeyCacheNegativeHit records an unknown key refused from memory.
func (m *Metrics) KeyCacheNegativeHit() {
	if m != nil {
		m.keyCacheNegativeHit.Inc()
	}
}

// WSOpened records an authenticated WebSocket connection of tier.
func (m *Metrics) WSOpened(tier keyhub.Tier) {
	if m != nil {
		m.wsByTier.get(tier).Inc()
	}
}

// WSEnded records the end of a connection WSOpened recorded.
func (m *Metrics) WSEnded(tier keyhub.Tier) {
	if m != nil {
		m.wsByTier.get(tier).Dec()
	}
}

// WSClosed records a WebSocket connection ending with code.
func (m *Metrics) WSClosed(code int) {
	if m != nil {
		m.wsClosesByCode.get(code).Inc()
	}
}

// WSMessageIn records a message read from a client.
func (m *Metrics) WSMessageIn() {
	if m != nil {
		m.wsMessagesIn.Inc()
	}
}

// WSMessageOut records a message sent to a client.
func (m *Metrics) WSMessageOut() {
	if m != nil {
		m.wsMessagesOut.Inc()
	}
}

// LastUsedFlushFailed records a failed batched write of last-used
// timestamps to table ("api_keys" or "users").
func (m *Metrics) LastUsedFlushFailed(table string) {
	if m != nil {
		m.lastUsedFlushFailures.WithLabelValues(table).Inc() // rare: no cached child
	}
}

// ChangeFeedNotice records a change-feed notice of kind and its lag from
// the sender's commit; it has the shape of postgres.ChangeFeed.OnNotice.
func (m *Metrics) ChangeFeedNotice(kind string, lag time.Duration) {
	if m != nil {
		m.ChangeFeedNotifications.WithLabelValues(kind).Inc()
		m.ChangeFeedLag.Observe(lag.Seconds())
	}
}

// ChangeFeedReconnected records a lost change-feed connection; it has the
// shape of postgres.ChangeFeed.OnReconnect.
func (m *Metrics) ChangeFeedReconnected() {
	if m != nil {
		m.ChangeFeedReconnects.Inc()
	}
}

// ChangeFeedEventsRead records one read of a batch of announced events; it
// has the shape of postgres.ChangeFeed.OnEventsRead.
func (m *Metrics) ChangeFeedEventsRead(int) {
	if m != nil {
		m.ChangeFeedEventReads.Inc()
	}
}

// RateLimitRejected records a request refused by limiter.
func (m *Metrics) RateLimitRejected(limiter string) {
	if m != nil {
		m.rateLimiters.get(limiter).Inc()
	}
}

// GatewayRequest records a request to the gateway route with prefix
// route (a fixed, configured set), answered with status after d.
func (m *Metrics) GatewayRequest(route string, status int, d time.Duration) {
	if m != nil {
		c := m.gatewayByRoute.get(gatewayKey{route: route, status: status})
		c.requests.Inc()
		c.duration.Observe(d.Seconds())
	}
}

// statusLabel keeps a status label to three-digit codes: an upstream's
// answer is relayed as it is, and a label must come from a bounded set.
func statusLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

// RedisError records a failed Redis call of operation.
func (m *Metrics) RedisError(operation string) {
	if m != nil {
		m.RedisErrors.WithLabelValues(operation).Inc() // rare: no cached child
	}
}

// closeCodeLabel keeps the close-code label to the codes keyhub and the
// protocol use, so a peer cannot mint label values.
func closeCodeLabel(code int) string {
	switch code {
	case 1000, 1001, 1006, 1008, 1009, 1011, 1013, 4000, 4001, 4002:
		return strconv.Itoa(code)
	}
	return "other"
}

type authLabels struct{ method, code, reason string }

// factory registers what it makes.
type factory struct{ r *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.r.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.r.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.r.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.r.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.r.MustRegister(h)
	return h
}
