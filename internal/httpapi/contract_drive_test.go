package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"

	"github.com/keyhub/keyhub/api"
	"github.com/keyhub/keyhub/internal/apitest"
	"github.com/keyhub/keyhub/internal/secretscan"
	"github.com/keyhub/keyhub/internal/secretscan/githubtest"
)

// The contract driven from the document: every operation of openapi.yaml
// gets requests generated from its own parameter and body schemas, some
// valid, some broken on purpose, sent over real HTTP to a real keyhub on a
// real PostgreSQL. The observer of TestMain checks every answer (status
// documented, body valid against its schema, no 2xx for a request the
// document refuses); this test adds: no 5xx, the Cache-Control the
// document claims, every schema-invalid input refused with 400, and the
// minimal valid request of each operation answered 2xx.

// contractSeed seeds the generator; KEYHUB_CONTRACT_SEED replays another.
const contractSeed = 20261206

// validCases is how many schema-valid requests each operation gets; every
// way to break a request is sent too (about 900 requests in all, a few
// seconds).
const validCases = 5

// genMode is how much of the optional a generated request holds.
type genMode int

const (
	genMinimal genMode = iota // only what is required, examples first
	genRandom                 // each optional thing by a coin, null sometimes
	genMaximal                // every optional thing, never null: the base every mutation breaks
)

// credKind is the credential a driven operation is sent with.
type credKind int

const (
	credNone     credKind = iota // public routes
	credAny                      // the user's JWT and an mk_ key of the user, in turn
	credUser                     // the user's JWT only (dashboard-session routes)
	credOperator                 // a VERIFY_TOKENS secret
	credGitHub                   // no credential; the body is signed as GitHub signs it
)

// opDriver says how to drive one operation.
type opDriver struct {
	cred credKind
	// pathParams returns the path parameters of one case: ids of objects
	// the op's user owns, made fresh for each case.
	pathParams func(c *opContext) map[string]string
	// values replace what the generator would take for these parameter or
	// property names, where the document's example cannot work in a test
	// (say why at the entry).
	values map[string]any
	// noSuccess says why the minimal valid request cannot be answered 2xx;
	// empty means it must be.
	noSuccess string
	// noActor: the user has no key before the cases (credUser only).
	noActor bool
	// sessionOnly: the route refuses API keys (403 USER_SESSION_REQUIRED).
	sessionOnly bool
}

// notDriven are the operations this test does not send, each with why.
var notDriven = map[string]string{}

// contractDrivers is every operation of openapi.yaml; a new operation
// fails the test until it is added here or to notDriven.
func contractDrivers() map[string]opDriver {
	key := func(c *opContext) map[string]string { return map[string]string{"id": c.newKey()} }
	webhook := func(c *opContext) map[string]string { return map[string]string{"id": c.newWebhook()} }
	drivers := map[string]opDriver{
		"healthz":           {cred: credNone},
		"readyz":            {cred: credNone},
		"openapi":           {cred: credNone},
		"identityJWKS":      {cred: credNone},
		"devJWKS":           {cred: credNone},
		"devToken":          {cred: credNone},
		"root":              {cred: credNone},
		"dashboard":         {cred: credNone},
		"dashboardPage":     {cred: credNone},
		"dashboardConfig":   {cred: credNone},
		"dashboardFile":     {cred: credNone},
		"reportGitHubLeaks": {cred: credGitHub},
		"verifyKey":         {cred: credOperator},
		"getMe":             {cred: credAny},
		"listKeys":          {cred: credAny},
		"createKey":         {cred: credAny},
		"getKey":            {cred: credAny, pathParams: key},
		"revokeKey":         {cred: credAny, pathParams: key},
		"updateKey":         {cred: credAny, pathParams: key},
		"disableKey":        {cred: credAny, pathParams: key},
		"enableKey":         {cred: credAny, pathParams: key},
		"refreshKey":        {cred: credAny, pathParams: key},
		"listKeyEvents":     {cred: credAny, pathParams: key},
		"getKeyUsage":       {cred: credAny, pathParams: key},
		"listEvents":        {cred: credAny},
		"getOwnerPolicy":    {cred: credUser, sessionOnly: true},
		"updateOwnerPolicy": {cred: credUser, sessionOnly: true},
		"listWebhooks":      {cred: credUser, sessionOnly: true},
		// The server resolves the host and refuses a private address
		// (WEBHOOKS_ALLOW_INSECURE lets the test's loopback receiver in);
		// the document's example host does not resolve here.
		"createWebhook":         {cred: credUser, sessionOnly: true, values: map[string]any{"url": "receiver"}},
		"deleteWebhook":         {cred: credUser, sessionOnly: true, pathParams: webhook},
		"listWebhookDeliveries": {cred: credUser, sessionOnly: true, pathParams: webhook},
		"issueSeedWSTicket":     {cred: credAny},
		"issueWSTicket":         {cred: credAny},
		"listWSConnections":     {cred: credAny},
		"closeWSConnection":     {cred: credAny, pathParams: func(c *opContext) map[string]string { return map[string]string{"id": c.newConnection()} }},
		// The seed API acts on the caller's one active key: the session's
		// (a key revoking or refreshing itself would end the credential
		// of the later cases), and no key before the create.
		"seedGetKey":     {cred: credAny},
		"seedCreateKey":  {cred: credUser, noActor: true},
		"seedRevokeKey":  {cred: credUser},
		"seedRefreshKey": {cred: credUser},
	}
	// The upgrades are sent as plain HTTP: their refusals before the
	// upgrade are REST answers; the 101 needs a WebSocket client, which
	// TestOpenAPIWebSocketRoutes and closeWSConnection's cases dial.
	for _, op := range []string{"websocket", "websocketDaemon", "websocketSeedTicket"} {
		drivers[op] = opDriver{cred: credAny, noSuccess: "a plain GET is not a handshake: 426"}
	}
	for _, method := range []string{"Get", "Head", "Post", "Put", "Patch", "Delete", "Options"} {
		drivers["authz"+method] = opDriver{cred: credAny}
		drivers["authzPath"+method] = opDriver{cred: credAny}
	}
	return drivers
}

// operation is one method and path of the document.
type operation struct {
	method, path string
	op           *openapi3.Operation
	params       openapi3.Parameters // the path's and the operation's
}

func specOperations() map[string]operation {
	ops := map[string]operation{}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			params := slices.Clone(item.Parameters)
			for _, p := range op.Parameters {
				params = slices.DeleteFunc(params, func(q *openapi3.ParameterRef) bool {
					return q.Value.Name == p.Value.Name && q.Value.In == p.Value.In
				})
				params = append(params, p)
			}
			ops[op.OperationID] = operation{method: method, path: path, op: op, params: params}
		}
	}
	return ops
}

func TestOpenAPIContractDriven(t *testing.T) {
	t.Parallel()
	seed := uint64(contractSeed)
	if s := os.Getenv("KEYHUB_CONTRACT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("KEYHUB_CONTRACT_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with KEYHUB_CONTRACT_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	started := time.Now()

	ops := specOperations()
	drivers := contractDrivers()
	for id := range ops {
		_, driven := drivers[id]
		_, listed := notDriven[id]
		if !driven && !listed {
			t.Errorf("operation %s is neither driven (contractDrivers) nor listed with a reason (notDriven)", id)
		}
	}
	for id := range drivers {
		if _, ok := ops[id]; !ok {
			t.Errorf("contractDrivers names %s, which openapi.yaml no longer has", id)
		}
	}

	gh := githubtest.New(t, "k1")
	const verifyToken = "contract-verify-token-0123456789abcdef"
	env := apitest.NewDev(t, map[string]string{
		"PRODUCT_SCOPES":                  "app:read,app:write",
		"VERIFY_TOKENS":                   verifyToken,
		"GITHUB_SECRET_SCANNING_KEYS_URL": gh.URL,
		"WEBHOOKS_ALLOW_INSECURE":         "1",
		"RATE_LIMIT_TIER_RPM":             "free=1000000,enterprise=1000000",
		"AUTH_FAILURE_RATE_LIMIT":         "1000000", // every op sends a request without a credential
		"AUTH_FAILURE_BURST":              "1000000",
		"KEY_REFRESH_RATE_LIMIT":          "1000000",
		"KEY_REFRESH_BURST":               "1000000",
	})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(receiver.Close)

	ids := make([]string, 0, len(ops))
	for id := range ops {
		if _, ok := drivers[id]; ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // the seed replays the same cases
	total := 0
	for _, id := range ids {
		c := &opContext{t: t, env: env, rng: rng, id: id, op: ops[id], driver: drivers[id], gh: gh, verifyToken: verifyToken, receiver: receiver.URL}
		total += c.run()
	}
	t.Logf("%d requests over %d operations in %v", total, len(ids), time.Since(started).Round(time.Millisecond))
}

// opContext drives one operation, as one user of its own.
type opContext struct {
	t           *testing.T
	env         *apitest.Env
	rng         *rand.Rand
	id          string
	op          operation
	driver      opDriver
	gh          *githubtest.GitHub
	verifyToken string
	receiver    string

	jwt, apiKey string
	conns       []*websocket.Conn
}

// contractCase is one generated request.
type contractCase struct {
	what    string // how it was made, for failure messages
	query   url.Values
	headers map[string]string
	body    any // nil: no body
	hasBody bool
	cred    string
}

func (c *opContext) run() int {
	t := c.t
	t.Helper()
	c.jwt = c.env.Token(t, c.id+"@contract.example")
	setTier(t, c.env, c.jwt, "enterprise")
	// The tier reaches the caches through the change feed: wait for it,
	// or a cached free tier caps the cases (one socket, one key).
	waitFor(t, func() string {
		var me api.Me
		c.env.Get(t, "/v1/me", c.jwt).Want(t, http.StatusOK, "").JSON(t, &me)
		if me.Tier != "enterprise" {
			return c.id + ": the tier change was not seen within 20 s"
		}
		return ""
	})
	if !c.driver.noActor {
		var actor api.CreatedKey
		c.env.Post(t, "/v1/keys", c.jwt, map[string]any{"name": "actor"}).Want(t, http.StatusCreated, "").JSON(t, &actor)
		c.apiKey = actor.Secret
	}
	defer func() {
		for _, conn := range c.conns {
			conn.CloseNow()
		}
	}()

	sent := 0
	for i := range validCases {
		mode := genRandom
		if i == 0 {
			mode = genMinimal
		}
		cs := c.validCase(mode, i)
		resp := c.send(cs, c.params())
		sent++
		if i == 0 && c.driver.noSuccess == "" && (resp.Status < 200 || resp.Status > 399) {
			t.Errorf("%s: the minimal valid request (%s) answered %d: %s", c.id, cs.what, resp.Status, resp.Body)
		}
		// (A HEAD answer has no body to say its code.)
		if resp.Status == http.StatusBadRequest && i > 0 && c.op.method != http.MethodHead && !refusableValid(resp) {
			t.Errorf("%s: a schema-valid request (%s) was refused %d %s: %s", c.id, cs.what, resp.Status, resp.ErrorCode(), resp.Body)
		}
	}
	if c.driver.cred != credNone && c.driver.cred != credGitHub {
		cs := c.validCase(genMinimal, 0)
		cs.cred, cs.what = "", "no credential"
		if resp := c.send(cs, c.params()); resp.Status != http.StatusUnauthorized && !c.publicToo() {
			t.Errorf("%s: without a credential answered %d: %s", c.id, resp.Status, resp.Body)
		}
		sent++
	}
	if c.driver.sessionOnly {
		// A dashboard-session route refuses an API key, before its input.
		cs := c.validCase(genMinimal, 0)
		cs.cred, cs.what = c.otherKey(), "an API key"
		if resp := c.send(cs, c.params()); resp.Status != http.StatusForbidden || resp.ErrorCode() != "USER_SESSION_REQUIRED" {
			t.Errorf("%s: with an API key answered %d: %s", c.id, resp.Status, resp.Body)
		}
		sent++
	}
	params := c.params() // one target for every invalid case: they change nothing
	// Every way to break the request (on a base holding every optional
	// part, so the ways are the same each time), in an order the seed
	// decides.
	base := c.validCase(genMaximal, 0)
	ways := len(c.mutations(&base))
	made := 0
	for _, way := range c.rng.Perm(ways) {
		cs, ok := c.invalidCase(way)
		if !ok {
			continue
		}
		made++
		sent++
		resp := c.send(cs, params)
		// Forward auth's refuse_as=403 answers every refusal 403 with the
		// real status in Keyhub-Status (for nginx): the query decides.
		refusedAs403 := cs.query.Get("refuse_as") == "403" && resp.Status == http.StatusForbidden && resp.Header.Get("Keyhub-Status") == "400"
		if resp.Status != http.StatusBadRequest && resp.Status != http.StatusUnprocessableEntity && !refusedAs403 {
			t.Errorf("%s: a schema-invalid request (%s) answered %d, want 400: %s", c.id, cs.what, resp.Status, resp.Body)
		}
	}
	t.Logf("%s: %d requests, %d schema-invalid of %d ways", c.id, sent, made, ways)
	return sent
}

// refusableCodes are the codes a schema-valid request may still get: what
// depends on state (an expiry later than the owner's policy, a cursor this
// API did not issue, a scope PRODUCT_SCOPES does not define).
var refusableCodes = []string{"INVALID_CURSOR", "INVALID_SCOPE", "KEY_LIFETIME_EXCEEDS_POLICY"}

// crossFieldRules are the VALIDATION_FAILED messages a schema-valid request
// may still get: rules across fields that a schema cannot state. Any other
// VALIDATION_FAILED for a schema-valid request means the document is looser
// than the server, and fails the test.
var crossFieldRules = []string{
	"must be shorter than the key's lifetime", // auto_rotate_before against expires_*
	"from must be before to",                  // the usage window
	"needs a key that expires",                // auto_rotate_before without an expiry
	"needs a grace_period",                    // deliver: connections without one
}

// refusableValid: a 400 a schema-valid request may get.
func refusableValid(resp apitest.Response) bool {
	if slices.Contains(refusableCodes, resp.ErrorCode()) {
		return true
	}
	if resp.ErrorCode() != "VALIDATION_FAILED" {
		return false
	}
	var body struct {
		Error struct{ Message string } `json:"error"`
	}
	if json.Unmarshal(resp.Body, &body) != nil {
		return false
	}
	return slices.ContainsFunc(crossFieldRules, func(rule string) bool { return strings.Contains(body.Error.Message, rule) })
}

// publicToo: a credential is optional (the WebSocket upgrades read it
// after the upgrade too).
func (c *opContext) publicToo() bool {
	for _, req := range *c.op.op.Security {
		if len(req) == 0 {
			return true
		}
	}
	return false
}

func (c *opContext) params() map[string]string {
	if c.driver.pathParams != nil {
		return c.driver.pathParams(c)
	}
	out := map[string]string{}
	for _, p := range c.op.params {
		if p.Value.In == "path" {
			out[p.Value.Name] = fmt.Sprint(c.gen(p.Value.Schema.Value, p.Value.Name, genMinimal))
		}
	}
	return out
}

// cred is the credential of case i.
func (c *opContext) cred(i int) string {
	switch c.driver.cred {
	case credAny:
		if i%2 == 1 {
			return c.apiKey
		}
		return c.jwt
	case credUser:
		return c.jwt
	case credOperator:
		return c.verifyToken
	}
	return ""
}

// validCase generates a request the document accepts; minimal sends only
// what is required.
func (c *opContext) validCase(mode genMode, i int) contractCase {
	c.t.Helper()
	for range 50 {
		cs := contractCase{query: url.Values{}, headers: map[string]string{}, cred: c.cred(i), what: "valid"}
		if mode == genMinimal {
			cs.what = "minimal valid"
		}
		for _, p := range c.op.params {
			pv := p.Value
			if pv.In == "path" || (!pv.Required && !c.include(mode)) {
				continue
			}
			v := fmt.Sprint(c.gen(pv.Schema.Value, pv.Name, mode))
			if pv.In == "query" {
				cs.query.Set(pv.Name, v)
			} else if pv.In == "header" {
				cs.headers[pv.Name] = v
			}
		}
		if rb := c.op.op.RequestBody; rb != nil && (rb.Value.Required || c.include(mode)) {
			cs.body, cs.hasBody = c.gen(rb.Value.Content.Get("application/json").Schema.Value, "", mode), true
		}
		if err := c.validate(cs, c.examplePath()); err == nil {
			return cs
		}
	}
	c.t.Fatalf("%s: could not generate a valid request in 50 tries (a pattern without an example?)", c.id)
	return contractCase{}
}

// examplePath fills the path parameters for validation only.
func (c *opContext) examplePath() map[string]string {
	out := map[string]string{}
	for _, p := range c.op.params {
		if p.Value.In == "path" {
			out[p.Value.Name] = uuid.NewString()
		}
	}
	return out
}

// gen returns a value s accepts (the validation of the whole request is
// the judge; gen only has to be right most of the time).
func (c *opContext) gen(s *openapi3.Schema, name string, mode genMode) any {
	if v, ok := c.driver.values[name]; ok {
		if v == "receiver" {
			return c.receiver + "/hook"
		}
		return v
	}
	r := c.rng
	if len(s.AllOf) == 1 && !(s.Nullable && mode == genRandom && r.IntN(8) == 0) {
		return c.gen(s.AllOf[0].Value, name, mode) // a $ref made nullable
	}
	if len(s.AllOf) > 0 {
		out := map[string]any{}
		for _, part := range s.AllOf {
			if m, ok := c.gen(part.Value, name, mode).(map[string]any); ok {
				for k, v := range m {
					out[k] = v
				}
			}
		}
		return out
	}
	if len(s.Enum) > 0 {
		return s.Enum[r.IntN(len(s.Enum))]
	}
	if s.Example != nil && (mode == genMinimal || s.Pattern != "" || r.IntN(2) == 0) {
		return s.Example
	}
	if s.Nullable && mode == genRandom && r.IntN(8) == 0 {
		return nil
	}
	switch {
	case s.Type.Is("string"):
		switch s.Format {
		case "date-time":
			return time.Now().Add(time.Duration(2+r.IntN(24*30)) * time.Hour).UTC().Format(time.RFC3339)
		case "uuid":
			return uuid.NewString()
		}
		n := 1 + r.IntN(12)
		if s.MaxLength != nil && uint64(n) > *s.MaxLength {
			n = int(*s.MaxLength)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	case s.Type.Is("integer"), s.Type.Is("number"):
		lo, hi := 0.0, 1000.0
		if s.Min != nil {
			lo = *s.Min
		}
		if s.Max != nil {
			hi = *s.Max
		}
		if hi > lo+100000 && r.IntN(2) == 0 {
			hi = lo + 100000 // small values too, not only huge ones
		}
		return int64(lo) + r.Int64N(int64(hi-lo)+1)
	case s.Type.Is("boolean"):
		return r.IntN(2) == 0
	case s.Type.Is("array"):
		n := int(s.MinItems)
		switch mode {
		case genRandom:
			n += r.IntN(3)
		case genMaximal:
			n++
		}
		if s.MaxItems != nil && uint64(n) > *s.MaxItems {
			n = int(*s.MaxItems)
		}
		out := make([]any, n)
		for i := range out {
			out[i] = c.gen(s.Items.Value, "", mode)
		}
		return out
	case s.Type.Is("object"):
		out := map[string]any{}
		for _, prop := range slices.Sorted(mapKeys(s.Properties)) {
			if !slices.Contains(s.Required, prop) && !c.include(mode) {
				continue
			}
			out[prop] = c.gen(s.Properties[prop].Value, prop, mode)
		}
		if s.Not != nil && mode == genMaximal {
			// Every optional property but one of a combination the
			// document excludes (expires_at with expires_in).
			delete(out, s.Not.Value.Required[len(s.Not.Value.Required)-1])
		}
		if len(s.Properties) == 0 && s.AdditionalProperties.Has != nil && *s.AdditionalProperties.Has && mode != genMinimal {
			out["note"] = "contract"
		}
		return out
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// include says whether an optional part goes into a request of mode.
func (c *opContext) include(mode genMode) bool {
	switch mode {
	case genMinimal:
		return false
	case genMaximal:
		return true
	}
	return c.rng.IntN(2) == 0
}

// mutations are the ways to break cs (a parameter, the body, a value in
// it), each as a function that breaks it and says how.
func (c *opContext) mutations(cs *contractCase) []func() string {
	var sites []func() string
	for _, p := range c.op.params {
		pv := p.Value
		if pv.In != "query" {
			continue // path ids are free strings; header parameters are free text
		}
		for _, bad := range queryMutations(pv.Schema.Value) {
			sites = append(sites, func() string {
				cs.query.Set(pv.Name, bad)
				return fmt.Sprintf("query %s=%q", pv.Name, bad)
			})
		}
	}
	if rb := c.op.op.RequestBody; rb != nil {
		schema := rb.Value.Content.Get("application/json").Schema.Value
		for _, root := range []any{[]any{}, 42, "text", true} {
			sites = append(sites, func() string {
				cs.body, cs.hasBody = root, true
				return fmt.Sprintf("body %v", root)
			})
		}
		if !schema.Type.Is("array") {
			sites = append(sites, func() string {
				cs.body, cs.hasBody = nil, true
				return "body null"
			})
		}
		sites = append(sites, c.bodyMutations(&cs.body, schema, "body")...)
	}
	return sites
}

// invalidCase breaks a request holding every optional part the way-th
// way. ok is false when that left the request valid (a pattern breaker
// that the pattern at hand accepts, say).
func (c *opContext) invalidCase(way int) (contractCase, bool) {
	c.t.Helper()
	cs := c.validCase(genMaximal, c.rng.IntN(2))
	sites := c.mutations(&cs)
	if way >= len(sites) {
		c.t.Fatalf("%s: %d ways to break a request, then %d", c.id, way+1, len(sites))
	}
	cs.what = "invalid: " + sites[way]()
	if err := c.validate(cs, c.examplePath()); err == nil {
		return contractCase{}, false
	}
	return cs, true
}

// queryMutations are values a query parameter of schema s refuses.
func queryMutations(s *openapi3.Schema) []string {
	var out []string
	switch {
	case s.Type.Is("integer"):
		out = append(out, "", "abc", "1.5")
		if s.Min != nil {
			out = append(out, strconv.FormatInt(int64(*s.Min)-1, 10))
		}
		if s.Max != nil {
			out = append(out, strconv.FormatInt(int64(*s.Max)+1, 10))
		}
	case s.Type.Is("string"):
		if len(s.Enum) > 0 {
			out = append(out, "", "not-one-of-them")
		}
		if s.Format == "date-time" {
			out = append(out, "", "yesterday", "2026-13-01T00:00:00Z")
		}
		if s.Pattern != "" {
			out = append(out, patternBreakers...)
		}
		if s.MaxLength != nil {
			out = append(out, strings.Repeat("x", int(*s.MaxLength)+1))
		}
	}
	return out
}

// patternBreakers are strings most patterns of the document refuse; the
// validation keeps only those that break the one at hand.
var patternBreakers = []string{"", " ", "\u0000", "a\x7fb", "UPPER:CASE", "no-colon", "x@y@z", "plain", "created,deleted", "\u202egnp", "a\u0085b", strings.Repeat("x", 101)}

// bodyMutations are the ways to break the value at *v, of schema s, and
// of what it holds.
func (c *opContext) bodyMutations(v *any, s *openapi3.Schema, where string) []func() string {
	set := func(bad any, why string) func() string {
		return func() string {
			*v = bad
			return fmt.Sprintf("%s %s", where, why)
		}
	}
	var out []func() string
	if !s.Nullable && *v != nil {
		out = append(out, set(nil, "null"))
	}
	switch {
	case len(s.Enum) > 0:
		out = append(out, set("not-one-of-them", "outside its enum"))
	case s.Type.Is("string"):
		out = append(out, set(12345, "a number"), set(true, "a boolean"))
		if s.MaxLength != nil {
			out = append(out, set(strings.Repeat("x", int(*s.MaxLength)+1), "too long"))
		}
		if s.MinLength > 0 {
			out = append(out, set("", "empty"))
		}
		switch s.Format {
		case "date-time":
			out = append(out, set("yesterday", "not a date-time"), set("2026-02-30T00:00:00Z", "not a date"))
		case "uuid":
			out = append(out, set("not-a-uuid", "not a uuid"))
		}
		if s.Pattern != "" {
			for _, bad := range patternBreakers {
				out = append(out, set(bad, fmt.Sprintf("%q against its pattern", bad)))
			}
		}
	case s.Type.Is("integer"), s.Type.Is("number"):
		out = append(out, set("12", "a string"), set([]any{1}, "an array"))
		if s.Type.Is("integer") {
			out = append(out, set(1.5, "a fraction"))
		}
		if s.Min != nil {
			out = append(out, set(int64(*s.Min)-1, "below its minimum"))
		}
		if s.Max != nil {
			out = append(out, set(int64(*s.Max)+1, "above its maximum"))
		}
	case s.Type.Is("boolean"):
		out = append(out, set("true", "a string"))
	case s.Type.Is("array"):
		out = append(out, set(map[string]any{}, "an object"), set("x", "a string"))
		if s.MinItems > 0 {
			out = append(out, set([]any{}, "empty"))
		}
		if s.MaxItems != nil {
			items := make([]any, *s.MaxItems+1)
			for i := range items {
				items[i] = c.gen(s.Items.Value, "", genMinimal)
			}
			out = append(out, set(items, "with too many items"))
		}
		if arr, ok := (*v).([]any); ok && len(arr) > 0 {
			out = append(out, c.bodyMutations(&arr[0], s.Items.Value, where+"[0]")...)
		} else {
			item := []any{c.gen(s.Items.Value, "", genMinimal)}
			for _, m := range c.bodyMutations(&item[0], s.Items.Value, where+"[0]") {
				out = append(out, func() string { why := m(); *v = item; return why })
			}
		}
	case s.Type.Is("object") || len(s.AllOf) > 0:
		out = append(out, set("x", "a string"), set([]any{}, "an array"))
		obj, ok := (*v).(map[string]any)
		if !ok {
			break
		}
		if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
			out = append(out, func() string { obj["zz_unknown"] = 1; return where + " with an unknown field" })
		}
		for _, req := range s.Required {
			out = append(out, func() string { delete(obj, req); return where + " without its required " + req })
		}
		for _, prop := range slices.Sorted(mapKeys(s.Properties)) {
			ps := s.Properties[prop].Value
			cur, present := obj[prop]
			if !present {
				cur = c.gen(ps, prop, genMinimal)
			}
			holder := []any{cur}
			for _, m := range c.bodyMutations(&holder[0], ps, where+"."+prop) {
				out = append(out, func() string { why := m(); obj[prop] = holder[0]; return why })
			}
		}
		if s.Not != nil {
			// A combination the document excludes (expires_at with expires_in).
			out = append(out, func() string {
				for _, prop := range s.Not.Value.Required {
					obj[prop] = c.gen(s.Properties[prop].Value, prop, genMinimal)
				}
				return where + " with " + strings.Join(s.Not.Value.Required, " and ")
			})
		}
	}
	return out
}

// request builds the HTTP request of cs (for validation and sending).
func (c *opContext) request(cs contractCase, params map[string]string) (apitest.Request, []byte) {
	path := c.op.path
	for name, v := range params {
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
	}
	if len(cs.query) > 0 {
		path += "?" + cs.query.Encode()
	}
	req := apitest.Request{Method: c.op.method, Path: path, Cred: cs.cred, Headers: map[string]string{}}
	for k, v := range cs.headers {
		req.Headers[k] = v
	}
	var raw []byte
	if cs.hasBody {
		var err error
		if raw, err = json.Marshal(cs.body); err != nil {
			c.t.Fatalf("%s: encode body: %v", c.id, err)
		}
		req.Body = raw
	}
	if c.driver.cred == credGitHub {
		req.Headers[secretscan.HeaderKeyIdentifier] = "k1"
		req.Headers[secretscan.HeaderSignature] = c.gh.Sign(c.t, "k1", raw)
	}
	return req, raw
}

// validate checks cs against the document, as a client would.
func (c *opContext) validate(cs contractCase, params map[string]string) error {
	req, raw := c.request(cs, params)
	hr, err := http.NewRequest(req.Method, c.env.URL+req.Path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if cs.hasBody {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.Headers {
		hr.Header.Set(k, v)
	}
	route, pathParams, err := findRoute(hr)
	if err != nil {
		return err
	}
	if route.Operation.OperationID != c.id {
		return fmt.Errorf("%s routes to %s", req.Path, route.Operation.OperationID)
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: hr, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	})
}

// send sends cs and checks what the observer does not: no 5xx and the
// Cache-Control the document claims for JSON answers.
func (c *opContext) send(cs contractCase, params map[string]string) apitest.Response {
	t := c.t
	t.Helper()
	req, _ := c.request(cs, params)
	resp := c.env.Do(t, req)
	if resp.Status >= 500 {
		t.Errorf("%s %s (%s): %d: %s", req.Method, req.Path, cs.what, resp.Status, resp.Body)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		want := "no-store"
		switch c.op.path {
		case "/dashboard/config.json":
			want = "no-cache"
		case "/.well-known/jwks.json", "/auth/v1/.well-known/jwks.json":
			want = "public, max-age=300"
		}
		if resp.Status >= 400 {
			want = "no-store" // errors are never cached, whatever the route
		}
		if got := resp.Header.Get("Cache-Control"); got != want {
			t.Errorf("%s %s: %d with Cache-Control %q, want %q", req.Method, req.Path, resp.Status, got, want)
		}
	}
	return resp
}

// otherKey is an API key of another user (credUser routes refuse any).
func (c *opContext) otherKey() string {
	var k api.CreatedKey
	c.env.Post(c.t, "/v1/keys", c.env.Token(c.t, "other-"+c.id+"@contract.example"), map[string]any{"name": "other"}).Want(c.t, http.StatusCreated, "").JSON(c.t, &k)
	return k.Secret
}

// newKey creates a key of the op's user and returns its id.
func (c *opContext) newKey() string {
	var k api.CreatedKey
	c.env.Post(c.t, "/v1/keys", c.jwt, map[string]any{"name": "target", "expires_in": 86400}).Want(c.t, http.StatusCreated, "").JSON(c.t, &k)
	return k.ID.String()
}

// newWebhook registers a webhook of the op's user and returns its id.
func (c *opContext) newWebhook() string {
	var w api.CreatedWebhook
	c.env.Post(c.t, "/v1/webhooks", c.jwt, map[string]any{"url": c.receiver + "/hook", "event_types": []string{"created"}}).Want(c.t, http.StatusCreated, "").JSON(c.t, &w)
	return w.ID.String()
}

// newConnection opens a WebSocket of the op's user and returns its id.
func (c *opContext) newConnection() string {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var before api.WSConnectionList
	c.env.Get(t, "/v1/ws/connections", c.jwt).Want(t, http.StatusOK, "").JSON(t, &before)
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(c.env.URL, "http")+"/v1/ws", &websocket.DialOptions{
		HTTPClient: c.env.Server.Client(), HTTPHeader: http.Header{"Authorization": {"Bearer " + c.jwt}},
	})
	if err != nil {
		var body []byte
		if resp != nil {
			body, _ = io.ReadAll(resp.Body)
		}
		t.Fatalf("dial: %v: %s", err, body)
	}
	c.conns = append(c.conns, conn)
	// The hub lists the connection just after the 101.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var list api.WSConnectionList
		c.env.Get(t, "/v1/ws/connections", c.jwt).Want(t, http.StatusOK, "").JSON(t, &list)
		for _, got := range list.Data {
			if !slices.ContainsFunc(before.Data, func(b api.WSConnection) bool { return b.ID == got.ID }) {
				return got.ID.String()
			}
		}
	}
	t.Fatal("the new connection was not listed within 30 s")
	return ""
}
