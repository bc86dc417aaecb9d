package client_test

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/keyhub/keyhub"
	"github.com/keyhub/keyhub/api/client"
)

// notClientOperations are the operations of openapi.yaml the client
// deliberately leaves out, with the reason.
var notClientOperations = map[string]string{
	"root":              "a redirect to the dashboard, for browsers",
	"dashboard":         "a redirect to the dashboard page, for browsers",
	"dashboardPage":     "the dashboard's HTML page, for browsers",
	"dashboardConfig":   "the dashboard's own settings, read by its page",
	"dashboardFile":     "the dashboard's scripts and styles",
	"authzGet":          forwardAuth,
	"authzPathGet":      forwardAuth,
	"authzHead":         forwardAuth,
	"authzPathHead":     forwardAuth,
	"authzPost":         forwardAuth,
	"authzPathPost":     forwardAuth,
	"authzPut":          forwardAuth,
	"authzPathPut":      forwardAuth,
	"authzPatch":        forwardAuth,
	"authzPathPatch":    forwardAuth,
	"authzDelete":       forwardAuth,
	"authzPathDelete":   forwardAuth,
	"authzOptions":      forwardAuth,
	"authzPathOptions":  forwardAuth,
	"reportGitHubLeaks": "GitHub's secret scanning calls it, signed with GitHub's key; no keyhub client does",
}

// forwardAuth is why GET /v1/authz (every method, both forms) is left out.
const forwardAuth = "forward auth: a gateway in front of a product (nginx, Caddy, Traefik, Envoy) calls it, not a client"

// specRecorder is an http.RoundTripper that matches every request the
// client sends to an operation of openapi.yaml, validates the request
// and its answer against the spec, and records the operation.
type specRecorder struct {
	t      testing.TB
	next   http.RoundTripper
	router routers.Router

	mu   sync.Mutex
	seen map[string]bool
}

func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("validate openapi.yaml: %v", err)
	}
	return doc
}

func newSpecRecorder(t testing.TB, doc *openapi3.T, next http.RoundTripper) *specRecorder {
	t.Helper()
	routed := *doc
	routed.Servers = nil // test servers listen on random ports
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		t.Fatalf("openapi router: %v", err)
	}
	return &specRecorder{t: t, next: next, router: router, seen: map[string]bool{}}
}

func (s *specRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		s.t.Errorf("the client sent %s %s, which openapi.yaml does not document: %v", req.Method, req.URL.Path, err)
		return s.next.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	input := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	// A request that breaks the spec on purpose must be refused.
	badRequest := openapi3filter.ValidateRequest(context.Background(), input)
	req.Body = io.NopCloser(bytes.NewReader(reqBody))

	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if badRequest != nil && resp.StatusCode < 400 {
		s.t.Errorf("%s (%s %s): the request breaks openapi.yaml and was served: %v", route.Operation.OperationID, req.Method, req.URL.Path, badRequest)
	}
	s.mu.Lock()
	s.seen[route.Operation.OperationID] = true
	s.mu.Unlock()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, nil // the body is the WebSocket now
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		s.t.Errorf("%s: the answer %d breaks openapi.yaml: %v", route.Operation.OperationID, resp.StatusCode, err)
	}
	return resp, nil
}

// checkCoverage fails t unless the recorder saw every operation of the
// spec but those in notClientOperations, and those name real operations.
func (s *specRecorder) checkCoverage(t testing.TB, doc *openapi3.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	inSpec := map[string]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			inSpec[op.OperationID] = true
		}
	}
	var missing []string
	for id := range inSpec {
		if !s.seen[id] && notClientOperations[id] == "" {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("operations of openapi.yaml the client never called: %v", missing)
	}
	for id := range notClientOperations {
		if !inSpec[id] {
			t.Errorf("notClientOperations names %q, which openapi.yaml does not have", id)
		}
		if s.seen[id] {
			t.Errorf("%q is listed as left out, but the client called it", id)
		}
	}
	if len(missing) == 0 && len(s.seen)+len(notClientOperations) != len(inSpec) {
		t.Errorf("saw %d operations + %d left out, spec has %d", len(s.seen), len(notClientOperations), len(inSpec))
	}
}

// TestClientMethodsNameOperations is the static half: every exported
// method of Client in ops.go names, in its doc comment, the operationId
// it calls, each operation of the spec (but those left out) is named by
// exactly one method, and Client has no other exported methods than
// these and its plumbing. The dynamic half (TestClientCoversEveryOperation)
// checks that each call really is that operation.
func TestClientMethodsNameOperations(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	inSpec := map[string]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			inSpec[op.OperationID] = true
		}
	}
	f, err := parser.ParseFile(token.NewFileSet(), "ops.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	opInDoc := regexp.MustCompile(`\((\w+)\)`)
	named := map[string]string{} // operationId → method
	methods := map[string]bool{}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Recv == nil || !fn.Name.IsExported() {
			continue
		}
		methods[fn.Name.Name] = true
		var ops []string
		for _, m := range opInDoc.FindAllStringSubmatch(fn.Doc.Text(), -1) {
			if inSpec[m[1]] {
				ops = append(ops, m[1])
			}
		}
		if len(ops) != 1 {
			t.Errorf("%s: its doc names %d operations of openapi.yaml (%v), want 1", fn.Name.Name, len(ops), ops)
			continue
		}
		if other, dup := named[ops[0]]; dup {
			t.Errorf("%s and %s both name %s", other, fn.Name.Name, ops[0])
		}
		named[ops[0]] = fn.Name.Name
	}
	for id := range inSpec {
		if named[id] == "" && notClientOperations[id] == "" && !webSocketOperations[id] {
			t.Errorf("no method of Client names %s", id)
		}
	}
	plumbing := map[string]bool{"BaseURL": true, "Connector": true, "SetAPIKey": true}
	typ := reflect.TypeOf(&client.Client{})
	for i := range typ.NumMethod() {
		if name := typ.Method(i).Name; !methods[name] && !plumbing[name] {
			t.Errorf("Client.%s is neither an operation in ops.go nor known plumbing", name)
		}
	}
}

// webSocketOperations are the upgrades, which Client.Connector opens
// (Path chooses which): no method of their own.
var webSocketOperations = map[string]bool{"websocket": true, "websocketDaemon": true, "websocketSeedTicket": true}
