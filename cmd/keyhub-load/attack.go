package main

// The attack mode (-attack, make attack): what a free-tier key (60
// requests and 60 WebSocket messages a minute) can reach by every route
// while two keyhub processes share one PostgreSQL and one Redis, and how
// long a token signed with a newly published JWKS key waits while forged
// unknown-kid tokens arrive every second. It re-measures the attack
// figures of issue 17, which earlier took a hand-run script.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/devissuer"
)

// attackIssuer is the iss of the harness's Supabase-shaped tokens (it is
// the auth server: it signs them and publishes the JWKS).
const attackIssuer = "https://attack.keyhub.invalid/auth/v1"

// attackDatabase is the database the attack creates (and drops at the end)
// on the server it is given.
const attackDatabase = "keyhub_attack"

// attackLimit is the free tier's requests and messages per minute, what
// every route's figure is held against.
const attackLimit = 60

// wsReconnects is how many connections the WebSocket route opens, one
// after the other, across the window.
const wsReconnects = 50

// attackCluster is two keyhub processes on one database and one Redis,
// each fetching its JWKS from its own endpoint (so fetches are counted
// per process), both serving the same key set.
type attackCluster struct {
	servers  [2]*keyhubServer
	jwks     [2]*jwksEndpoint
	signing  *devissuer.Issuer // the key published from the start
	rotated  *devissuer.Issuer // the key published mid-run
	upstream net.Listener
	dir      string
	next     atomic.Uint64 // round robin over the processes
	// dropDB drops the harness's database once the processes are gone.
	dropDB func()
}

// addr returns the next process's host:port, alternating.
func (c *attackCluster) addr() string { return c.servers[c.next.Add(1)%2].addr }

func (c *attackCluster) stop() {
	for _, s := range c.servers {
		if s != nil {
			s.stop()
		}
	}
	for _, j := range c.jwks {
		if j != nil {
			j.close()
		}
	}
	if c.upstream != nil {
		c.upstream.Close()
	}
	if c.dropDB != nil {
		c.dropDB()
	}
	os.RemoveAll(c.dir)
}

// startAttackCluster starts the JWKS endpoints and both processes with
// the limits as shipped (nothing raised), Redis, a shared ticket secret,
// and the loopback proxy trusted so that each route speaks from its own
// client address.
func startAttackCluster(ctx context.Context, o options, logf func(string, ...any)) (*attackCluster, error) {
	c := &attackCluster{}
	ok := false
	defer func() {
		if !ok {
			c.stop()
		}
	}()
	var err error
	if c.dir, err = os.MkdirTemp("", "keyhub-attack-"); err != nil {
		return nil, err
	}
	if c.signing, err = devissuer.LoadOrCreate(filepath.Join(c.dir, "signing")); err != nil {
		return nil, err
	}
	if c.rotated, err = devissuer.LoadOrCreate(filepath.Join(c.dir, "rotated")); err != nil {
		return nil, err
	}
	if c.upstream, err = startUpstream(); err != nil {
		return nil, err
	}
	dbURL, err := freshDatabase(ctx, o.databaseURL, attackDatabase)
	if err != nil {
		return nil, err
	}
	c.dropDB = func() {
		if err := dropDatabase(context.Background(), o.databaseURL, attackDatabase); err != nil {
			logf("drop database %s: %v", attackDatabase, err)
		}
	}
	verifyToken := rand.Text() + rand.Text()
	ticketSecret := rand.Text() + rand.Text()
	for i := range c.servers {
		if c.jwks[i], err = startJWKS(c.signing.JWKS()); err != nil {
			return nil, err
		}
		c.servers[i], err = launchKeyhub(ctx, o.keyhub, keyhubSetup{
			dbURL:       dbURL,
			upstream:    c.upstream.Addr().String(),
			verifyToken: verifyToken,
			migrate:     i == 0,
			env: []string{
				"REDIS_URL=" + o.redisURL,
				"SUPABASE_JWKS_URL=" + c.jwks[i].url,
				"JWT_ISSUER=" + attackIssuer,
				"WS_TICKET_SECRET=" + ticketSecret,
				"TRUSTED_PROXIES=127.0.0.1/32",
			},
		}, logf)
		if err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

// jwksEndpoint serves a key set that the harness can change, and records
// when it was fetched.
type jwksEndpoint struct {
	url     string
	srv     *http.Server
	mu      sync.Mutex
	body    []byte
	fetches []time.Time
}

func startJWKS(body []byte) (*jwksEndpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("JWKS endpoint: %w", err)
	}
	j := &jwksEndpoint{url: "http://" + ln.Addr().String() + "/auth/v1/.well-known/jwks.json", body: body}
	j.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.mu.Lock()
		body := j.body
		j.fetches = append(j.fetches, time.Now())
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go func() { _ = j.srv.Serve(ln) }() // ends at close
	return j, nil
}

func (j *jwksEndpoint) publish(body []byte) {
	j.mu.Lock()
	j.body = body
	j.mu.Unlock()
}

// fetched returns when the JWKS was fetched, oldest first.
func (j *jwksEndpoint) fetched() []time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.fetches)
}

func (j *jwksEndpoint) close() { j.srv.Close() }

// mergeJWKS joins key sets: the rotation publishes the new key beside the
// old one, as Supabase does.
func mergeJWKS(sets ...[]byte) ([]byte, error) {
	var all struct {
		Keys []json.RawMessage `json:"keys"`
	}
	for _, set := range sets {
		var one struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(set, &one); err != nil {
			return nil, err
		}
		all.Keys = append(all.Keys, one.Keys...)
	}
	return json.Marshal(all)
}

// attackRoute is one way a key's traffic reaches keyhub.
type attackRoute struct {
	name string
	// attack sends traffic at the offered rate until ctx ends and counts
	// what was allowed; drain spends the key's budget first, so that the
	// window measures the sustained rate, not the initial burst.
	attack func(ctx context.Context, lim *rate.Limiter) (allowed int, note string, err error)
	drain  func(ctx context.Context) error
	// freshKeys is set on a route that creates keys: each creation the
	// owner's budget refills in the window buys one more bucket.
	freshKeys bool
}

// shippedCreationsPerHour is KEY_CREATE_RATE_LIMIT as shipped: once the
// drain has spent the creation burst, a new key every minute.
const shippedCreationsPerHour = 60

// goal is what a route may reach in window: the free tier's refill, one
// more request at the window's edge, and for a route that creates keys a
// full bucket per creation the budget can refill in the window (rounded
// up: one may come due just inside it). Its per-minute figure is the
// README's steady state.
func (r attackRoute) goal(window time.Duration) (bound, perMinute int) {
	bound, perMinute = attackLimit*int(window/time.Second)/60+1, attackLimit
	if r.freshKeys {
		every := time.Hour / shippedCreationsPerHour
		bound += attackLimit * int((window+every-1)/every)
		perMinute += attackLimit * int(time.Minute/every)
	}
	return bound, perMinute
}

// attackResult is one route's line of the table.
type attackResult struct {
	route   attackRoute
	allowed int
	note    string
	err     error
}

// runAttack measures every route with its own free key (its own user, its
// own client address) at once for o.attackWindow, and the key rotation
// beside them, then prints the table.
func runAttack(ctx context.Context, o options, machine machine, stdout io.Writer, logf func(string, ...any)) error {
	if o.redisURL == "" {
		return errors.New("-attack needs Redis: set -redis or KEYHUB_TEST_REDIS_URL (make attack starts a throwaway one)")
	}
	cluster, err := startAttackCluster(ctx, o, logf)
	if err != nil {
		return err
	}
	defer cluster.stop()

	routes, err := attackRoutes(ctx, cluster)
	if err != nil {
		return err
	}
	for _, r := range routes {
		drainCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := r.drain(drainCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: spend the initial burst: %w", r.name, err)
		}
	}

	logf("attack window: %d routes at %d req/s each for %s, and a key rotation under forged kids", len(routes), o.attackRate, o.attackWindow)
	results := make([]attackResult, len(routes))
	var wg sync.WaitGroup
	windowCtx, cancel := context.WithTimeout(ctx, o.attackWindow)
	defer cancel()
	for i, r := range routes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lim := rate.NewLimiter(rate.Limit(o.attackRate), 1)
			allowed, note, err := r.attack(windowCtx, lim)
			if errors.Is(err, context.DeadlineExceeded) && windowCtx.Err() != nil {
				err = nil // the window ended mid-request
			}
			results[i] = attackResult{route: r, allowed: allowed, note: note, err: err}
		}()
	}
	var rotation rotationResult
	wg.Add(1)
	go func() {
		defer wg.Done()
		rotation = measureRotation(ctx, cluster, o.rotationLimit, logf)
	}()
	wg.Wait()
	machine.loadAfter = loadAverage()

	fmt.Fprintf(stdout, "keyhub attack run, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(stdout, "machine: %s\n", machine)
	fmt.Fprintf(stdout, "command: make attack (keyhub-load -attack -attack-window %s -attack-rate %d); two keyhub processes, one PostgreSQL, one Redis; each route its own free key (%d/min), its burst spent first, requests alternating between the processes\n\n", o.attackWindow, o.attackRate, attackLimit)
	var rows [][]string
	var failed []error
	for _, r := range results {
		perMinute := float64(r.allowed) * float64(time.Minute) / float64(o.attackWindow)
		// GCRA allows limit·window/minute in a window after the burst is
		// spent (see goal).
		bound, goalPerMinute := r.route.goal(o.attackWindow)
		goal := verdict(fmt.Sprintf("≤ %d/min", goalPerMinute), r.allowed <= bound)
		if r.err != nil {
			goal = "error: " + r.err.Error()
			failed = append(failed, fmt.Errorf("%s: %w", r.route.name, r.err))
		}
		rows = append(rows, []string{r.route.name, fmt.Sprintf("%d/s", o.attackRate), fmt.Sprintf("%d in %s", r.allowed, o.attackWindow), fmt.Sprintf("%.0f", perMinute), r.note, goal})
	}
	writeMarkdown(stdout, []string{"route (free key)", "offered", "allowed", "per minute", "traffic", "goal"}, rows)
	fmt.Fprintln(stdout)
	writeMarkdown(stdout, []string{"key rotation under one forged unknown-kid token a second per process", "process 1", "process 2", "goal"}, rotation.rows())
	return errors.Join(append(failed, rotation.err)...)
}

// attackRoutes creates one free user and key per route and returns the
// routes.
func attackRoutes(ctx context.Context, cluster *attackCluster) ([]attackRoute, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	type keyed struct {
		key   api.CreatedKey
		token string // the user's session
		from  string // X-Forwarded-For: the route's client address
	}
	names := []string{"rest", "refresh", "ws", "gateway", "verify", "authz", "churn"}
	keys := make(map[string]keyed)
	for i, name := range names {
		token, err := cluster.signing.Token(attackIssuer, "attack-"+name+"@example.com", time.Hour)
		if err != nil {
			return nil, err
		}
		c := apiClient{base: "http://" + cluster.servers[0].addr, http: hc}
		key, err := c.createKey(ctx, token, "attack-"+name)
		if err != nil {
			return nil, err
		}
		keys[name] = keyed{key: key, token: token, from: fmt.Sprintf("198.51.100.%d", 10+i)}
	}
	// send sends one request to the next process and returns its answer.
	send := func(ctx context.Context, method, path string, header http.Header, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, "http://"+cluster.addr()+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header = header
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		return resp.StatusCode, raw, err
	}
	withKey := func(k keyed, more ...string) http.Header {
		h := http.Header{"X-Api-Key": {k.key.Secret}, "X-Forwarded-For": {k.from}}
		for i := 0; i+1 < len(more); i += 2 {
			h.Set(more[i], more[i+1])
		}
		return h
	}
	// simple is a route of one request that 2xx (and, if set, ok) admits.
	simple := func(name, method, path string, header http.Header, body []byte, ok func([]byte) bool) attackRoute {
		allowed := func(ctx context.Context) (bool, error) {
			status, raw, err := send(ctx, method, path, header.Clone(), body)
			if err != nil {
				return false, err
			}
			if status/100 != 2 {
				if !rateLimited(status, raw) {
					return false, fmt.Errorf("HTTP %d %s", status, raw)
				}
				return false, nil
			}
			if ok != nil {
				return ok(raw), nil
			}
			return true, nil
		}
		return attackRoute{
			name: name,
			drain: func(ctx context.Context) error {
				for {
					if ok, err := allowed(ctx); err != nil || !ok {
						return err
					}
				}
			},
			attack: func(ctx context.Context, lim *rate.Limiter) (int, string, error) {
				n, sent, err := parallel(ctx, 4, lim, func() (bool, error) { return allowed(ctx) })
				return n, fmt.Sprintf("%d sent", sent), err
			},
		}
	}
	verifyBody, err := json.Marshal(api.VerifyKeyRequest{Key: keys["verify"].key.Secret})
	if err != nil {
		return nil, err
	}
	verifyHeader := http.Header{"Authorization": {"Bearer " + cluster.servers[0].verifyToken}, "X-Forwarded-For": {keys["verify"].from}}
	routes := []attackRoute{
		simple("plain REST (GET /v1/me)", http.MethodGet, "/v1/me", withKey(keys["rest"]), nil, nil),
		selfRefreshRoute(keys["refresh"].key, keys["refresh"].from, send),
		wsRoute(cluster, keys["ws"].key.Secret, keys["ws"].from),
		simple("gateway (GET /app/hello)", http.MethodGet, "/app/hello", withKey(keys["gateway"]), nil, nil),
		simple("POST /v1/keys/verify", http.MethodPost, "/v1/keys/verify", verifyHeader, verifyBody, func(raw []byte) bool {
			var v api.KeyRefused
			return json.Unmarshal(raw, &v) == nil && v.Valid
		}),
		simple("GET /v1/authz", http.MethodGet, "/v1/authz?scope=keys:read&refuse_as=403",
			withKey(keys["authz"], "X-Original-Method", "GET", "X-Original-URI", "/app/tasks"), nil, nil),
		churnRoute(keys["churn"].key, keys["churn"].token, keys["churn"].from, send),
	}
	return routes, nil
}

// parallel calls send from workers goroutines, each call waiting for
// lim, until ctx ends or send fails; it counts the calls and those that
// were allowed.
func parallel(ctx context.Context, workers int, lim *rate.Limiter, send func() (bool, error)) (allowed, sent int, err error) {
	var allowedN, sentN atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for {
				if lim.Wait(ctx) != nil {
					errs <- nil // the window is over
					return
				}
				ok, err := send()
				if err != nil {
					if ctx.Err() != nil {
						err = nil // cut off by the window's end
					}
					errs <- err
					return
				}
				sentN.Add(1)
				if ok {
					allowedN.Add(1)
				}
			}
		}()
	}
	for range workers {
		err = errors.Join(err, <-errs)
	}
	return int(allowedN.Load()), int(sentN.Load()), err
}

// rateLimited reports whether an answer refused the request for its rate:
// 429, or forward auth's refusal in the status it was asked for
// (refuse_as), whose error code says why.
func rateLimited(status int, raw []byte) bool {
	if status == http.StatusTooManyRequests {
		return true
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(raw, &e) == nil && e.Error.Code == "RATE_LIMITED"
}

// sendFunc sends one request to the next process.
type sendFunc func(ctx context.Context, method, path string, header http.Header, body []byte) (int, []byte, error)

// meAllowed sends GET /v1/me with header and reports whether it was
// allowed (200) or refused for its rate (429); any other answer is an error.
func meAllowed(ctx context.Context, send sendFunc, header http.Header) (bool, error) {
	status, raw, err := send(ctx, http.MethodGet, "/v1/me", header, nil)
	switch {
	case err != nil:
		return false, err
	case status == http.StatusOK:
		return true, nil
	case status == http.StatusTooManyRequests:
		return false, nil
	}
	return false, fmt.Errorf("GET /v1/me: HTTP %d %s", status, raw)
}

// selfRefreshRoute spends the key's budget on GET /v1/me and, each time
// it is refused, refreshes the key with its own credential and carries on
// with the successor: a bucket per key would start afresh each time. Both
// the requests and the refreshes that were allowed count.
func selfRefreshRoute(key api.CreatedKey, from string, send sendFunc) attackRoute {
	secret, id := key.Secret, key.ID
	header := func() http.Header { return http.Header{"X-Api-Key": {secret}, "X-Forwarded-For": {from}} }
	me := func(ctx context.Context) (bool, error) { return meAllowed(ctx, send, header()) }
	return attackRoute{
		name: "REST with self-refreshes (GET /v1/me, POST /v1/keys/{id}/refresh when refused)",
		drain: func(ctx context.Context) error {
			for {
				if ok, err := me(ctx); err != nil || !ok {
					return err
				}
			}
		},
		// One worker: each refresh changes the credential the next
		// request uses.
		attack: func(ctx context.Context, lim *rate.Limiter) (int, string, error) {
			allowed, refreshes, sent := 0, 0, 0
			for lim.Wait(ctx) == nil {
				ok, err := me(ctx)
				if err != nil {
					return allowed, "", err
				}
				sent++
				if ok {
					allowed++
					continue
				}
				if lim.Wait(ctx) != nil {
					break
				}
				sent++
				status, raw, err := send(ctx, http.MethodPost, "/v1/keys/"+id.String()+"/refresh", header(), []byte("{}"))
				if err != nil {
					return allowed, "", err
				}
				switch status {
				case http.StatusCreated:
					var out api.Refreshed
					if err := json.Unmarshal(raw, &out); err != nil {
						return allowed, "", err
					}
					secret, id = out.NewKey.Secret, out.NewKey.ID
					allowed++
					refreshes++
				case http.StatusTooManyRequests:
				default:
					return allowed, "", fmt.Errorf("refresh: HTTP %d %s", status, raw)
				}
			}
			return allowed, fmt.Sprintf("%d sent, %d refreshes", sent, refreshes), nil
		},
	}
}

// churnRoute spends the key's budget on GET /v1/me and, each time it is
// refused, revokes the key and creates another with the user's session:
// a new key starts with a full bucket, so only the owner's key-creation
// budget stands between this loop and a fresh 60 requests per creation
// (≈1,800 a minute before it). The drain spends the creation burst too
// (revoking, creating and spending each key), so the window measures the
// steady state. The allowed GET /v1/me count; creations are in the note.
func churnRoute(key api.CreatedKey, token, from string, send sendFunc) attackRoute {
	current := &key // nil: revoked, no successor yet
	session := http.Header{"Authorization": {"Bearer " + token}, "X-Forwarded-For": {from}}
	me := func(ctx context.Context) (bool, error) {
		return meAllowed(ctx, send, http.Header{"X-Api-Key": {current.Secret}, "X-Forwarded-For": {from}})
	}
	// renew revokes the current key (if any) and creates the next; false
	// when a limit refused either (the key stays revoked).
	renew := func(ctx context.Context) (bool, error) {
		if current != nil {
			status, raw, err := send(ctx, http.MethodDelete, "/v1/keys/"+current.ID.String(), session.Clone(), nil)
			if err != nil {
				return false, err
			}
			if status == http.StatusTooManyRequests {
				return false, nil
			}
			if status != http.StatusOK {
				return false, fmt.Errorf("revoke: HTTP %d %s", status, raw)
			}
			current = nil
		}
		status, raw, err := send(ctx, http.MethodPost, "/v1/keys", session.Clone(), []byte(`{"name":"churn"}`))
		switch {
		case err != nil:
			return false, err
		case status == http.StatusTooManyRequests:
			return false, nil
		case status != http.StatusCreated:
			return false, fmt.Errorf("create: HTTP %d %s", status, raw)
		}
		var created api.CreatedKey
		if err := json.Unmarshal(raw, &created); err != nil {
			return false, err
		}
		current = &created
		return true, nil
	}
	return attackRoute{
		name:      "REST through fresh keys (GET /v1/me; when refused, the session revokes the key and creates another)",
		freshKeys: true,
		drain: func(ctx context.Context) error {
			for {
				for {
					if ok, err := me(ctx); err != nil || !ok {
						if err != nil {
							return err
						}
						break
					}
				}
				if ok, err := renew(ctx); err != nil || !ok {
					return err
				}
			}
		},
		// One worker: each creation changes the credential the next
		// request uses.
		attack: func(ctx context.Context, lim *rate.Limiter) (int, string, error) {
			allowed, created, sent, renewals := 0, 0, 0, 0
			for lim.Wait(ctx) == nil {
				if current != nil {
					sent++
					ok, err := me(ctx)
					if err != nil {
						if ctx.Err() != nil {
							break // the window ended mid-request
						}
						return allowed, "", err
					}
					if ok {
						allowed++
						continue
					}
					if lim.Wait(ctx) != nil {
						break
					}
				}
				renewals++
				ok, err := renew(ctx)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					return allowed, "", err
				}
				if ok {
					created++
				}
			}
			return allowed, fmt.Sprintf("%d sent, %d revoke/create attempts, %d keys created", sent, renewals, created), nil
		},
	}
}

// wsRoute opens wsReconnects connections one after the other across the
// window, alternating processes (the free tier holds one at a time), and
// sends pings on each at the offered rate until its share of the window
// ends or the server closes it; answered pings count. A budget per
// connection would start afresh on every reconnect.
func wsRoute(cluster *attackCluster, secret, from string) attackRoute {
	header := http.Header{"X-Api-Key": {secret}, "X-Forwarded-For": {from}}
	dial := func(ctx context.Context) (*websocket.Conn, error) {
		for {
			conn, resp, err := websocket.Dial(ctx, "ws://"+cluster.addr()+"/v1/ws", &websocket.DialOptions{HTTPHeader: header})
			if err == nil {
				_, _, err = conn.Read(ctx) // the welcome
				if err != nil {
					conn.CloseNow()
				}
				return conn, err
			}
			// The previous connection's lease may not be released yet,
			// or the handshakes' own request budget is spent: retry.
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
				return nil, err
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// ping sends one ping and reports whether it was answered with a pong
	// (false: refused as rate limited).
	ping := func(ctx context.Context, conn *websocket.Conn, n int) (bool, error) {
		msg, err := json.Marshal(api.WSClientMessage{Type: "ping", ID: json.RawMessage(fmt.Sprint(n))})
		if err != nil {
			return false, err
		}
		if err := conn.Write(ctx, websocket.MessageText, msg); err != nil {
			return false, err
		}
		for {
			_, raw, err := conn.Read(ctx)
			if err != nil {
				return false, err
			}
			var answer api.WSMessage
			if err := json.Unmarshal(raw, &answer); err != nil {
				return false, err
			}
			switch answer.Type {
			case "pong":
				return true, nil
			case "error":
				return false, nil
			}
			// anything else (an event, a warning) is not the answer
		}
	}
	return attackRoute{
		name: fmt.Sprintf("WebSocket pings across %d reconnecting connections", wsReconnects),
		drain: func(ctx context.Context) error {
			conn, err := dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close(websocket.StatusNormalClosure, "")
			for n := 0; ; n++ {
				if ok, err := ping(ctx, conn, n); err != nil || !ok {
					return err
				}
			}
		},
		attack: func(ctx context.Context, lim *rate.Limiter) (int, string, error) {
			deadline, _ := ctx.Deadline()
			share := time.Until(deadline) / wsReconnects
			pongs, sent, opened, closedByServer := 0, 0, 0, 0
			for i := range wsReconnects {
				connCtx, cancel := context.WithDeadline(ctx, deadline.Add(-share*time.Duration(wsReconnects-1-i)))
				conn, err := dial(connCtx)
				if err != nil {
					cancel()
					if ctx.Err() != nil {
						break
					}
					if connCtx.Err() != nil {
						continue // no connection within this share
					}
					return pongs, "", err
				}
				opened++
				for lim.Wait(connCtx) == nil {
					sent++
					ok, err := ping(connCtx, conn, sent)
					if err != nil {
						if connCtx.Err() == nil {
							closedByServer++ // closed for too many refusals
							<-connCtx.Done()
						}
						break
					}
					if ok {
						pongs++
					}
				}
				conn.Close(websocket.StatusNormalClosure, "")
				cancel()
			}
			return pongs, fmt.Sprintf("%d sent on %d connections, %d closed by the server", sent, opened, closedByServer), nil
		},
	}
}

// rotationResult is how long each process took to accept a token signed
// with the newly published key, and how often it fetched the JWKS.
type rotationResult struct {
	accepted [2]time.Duration // 0: not within the limit
	limit    time.Duration
	forged   int
	fetches  [2][]time.Time
	since    time.Time // when the new key was published
	err      error
}

func (r rotationResult) rows() [][]string {
	accept := []string{"time to accept a token of the new key"}
	fetches := []string{"JWKS fetches in the whole run (the one at start included)"}
	gaps := []string{"shortest gap between two JWKS fetches"}
	acceptedOK, spacedOK := true, true
	for i := range r.accepted {
		if r.accepted[i] == 0 {
			accept = append(accept, fmt.Sprintf("not within %s", r.limit))
			acceptedOK = false
		} else {
			accept = append(accept, fmt.Sprintf("%.1f s", r.accepted[i].Seconds()))
			acceptedOK = acceptedOK && r.accepted[i] <= 35*time.Second
		}
		fetches = append(fetches, fmt.Sprint(len(r.fetches[i])))
		shortest := time.Duration(0)
		for j := 1; j < len(r.fetches[i]); j++ {
			if gap := r.fetches[i][j].Sub(r.fetches[i][j-1]); shortest == 0 || gap < shortest {
				shortest = gap
			}
		}
		if shortest == 0 {
			gaps = append(gaps, "–")
		} else {
			gaps = append(gaps, fmt.Sprintf("%.1f s", shortest.Seconds()))
			spacedOK = spacedOK && shortest >= 30*time.Second-time.Second
		}
	}
	accept = append(accept, verdict("≤ 35 s", acceptedOK))
	fetches = append(fetches, fmt.Sprintf("%d forged tokens sent meanwhile", r.forged))
	gaps = append(gaps, verdict("≥ 30 s", spacedOK))
	return [][]string{accept, fetches, gaps}
}

// measureRotation sends one forged token a second to each process (an
// unknown kid, a new one each time, from a new address each time so that
// the failure limit per address never stops them short of the verifier),
// publishes a new signing key a few seconds in (the forgeries have spent
// the fetch budget by then), and polls each process with a token of the
// new key until it is accepted.
func measureRotation(ctx context.Context, cluster *attackCluster, limit time.Duration, logf func(string, ...any)) rotationResult {
	res := rotationResult{limit: limit}
	hc := &http.Client{Timeout: 10 * time.Second}
	var addrs atomic.Uint32
	me := func(ctx context.Context, addr, token string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/me", nil)
		if err != nil {
			return 0, err
		}
		n := addrs.Add(1)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff))
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	forgeCtx, stopForging := context.WithCancel(ctx)
	defer stopForging()
	var forged atomic.Int64
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, s := range cluster.servers {
				if _, err := me(forgeCtx, s.addr, forgedToken()); err == nil {
					forged.Add(1)
				}
			}
			select {
			case <-forgeCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	select {
	case <-ctx.Done():
		res.err = ctx.Err()
		return res
	case <-time.After(3 * time.Second):
	}
	jwks, err := mergeJWKS(cluster.signing.JWKS(), cluster.rotated.JWKS())
	if err != nil {
		res.err = err
		return res
	}
	token, err := cluster.rotated.Token(attackIssuer, "attack-rotation@example.com", time.Hour)
	if err != nil {
		res.err = err
		return res
	}
	res.since = time.Now()
	for _, j := range cluster.jwks {
		j.publish(jwks)
	}
	logf("rotation: new key published; polling both processes with a token it signed")
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for res.accepted[0] == 0 || res.accepted[1] == 0 {
		if time.Since(res.since) > limit {
			break
		}
		for i, s := range cluster.servers {
			if res.accepted[i] != 0 {
				continue
			}
			status, err := me(ctx, s.addr, token)
			if err != nil {
				res.err = err
				return res
			}
			if status == http.StatusOK {
				res.accepted[i] = time.Since(res.since)
				logf("rotation: process %d accepted the new key after %.1f s", i+1, res.accepted[i].Seconds())
			}
		}
		select {
		case <-ctx.Done():
			res.err = ctx.Err()
			return res
		case <-poll.C:
		}
	}
	stopForging()
	res.forged = int(forged.Load())
	for i, j := range cluster.jwks {
		res.fetches[i] = j.fetched()
	}
	return res
}

// forgedToken is an ES256 token with a kid nobody published and a
// signature that is random bytes: what an attacker sends to make the
// verifier fetch the JWKS.
func forgedToken() string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT","kid":"forged-` + rand.Text() + `"}`))
	now := time.Now().Unix()
	payload := enc.EncodeToString(fmt.Appendf(nil, `{"iss":%q,"sub":"00000000-0000-4000-8000-000000000001","aud":"authenticated","role":"authenticated","iat":%d,"exp":%d}`, attackIssuer, now, now+3600))
	sig := make([]byte, 64)
	rand.Read(sig)
	return header + "." + payload + "." + enc.EncodeToString(sig)
}
