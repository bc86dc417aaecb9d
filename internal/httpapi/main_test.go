package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/keyhub/keyhub/internal/apitest"
)

// specPath is the contract every response of this package's tests is
// checked against.
const specPath = "../../openapi.yaml"

var (
	spec       *openapi3.T
	specRouter routers.Router
)

// TestMain loads openapi.yaml and makes every request sent through
// apitest.Env.Do a conformance check: a handler that answers something the
// spec does not document fails the test that made the call.
func TestMain(m *testing.M) {
	// kin-openapi checks date-time by default but not uuid.
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`))
	// The dashboard's files are text the spec describes as strings.
	for _, ctype := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(ctype, func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			raw, err := io.ReadAll(body)
			return string(raw), err
		})
	}
	doc, err := loadSpec()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Test servers listen on random ports: match paths on any host.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		fmt.Fprintf(os.Stderr, "openapi router: %v\n", err)
		os.Exit(1)
	}
	spec, specRouter = doc, router
	apitest.Observer = checkConformance
	os.Exit(m.Run())
}

func loadSpec() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", specPath, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate %s: %w", specPath, err)
	}
	return doc, nil
}

// checkConformance is apitest.Observer. It fails t when
//   - the method and path match no operation of the spec, unless the server
//     answered it with a documented error (404 NOT_FOUND or 405
//     METHOD_NOT_ALLOWED in the one error shape);
//   - the request breaks the spec and the server still answered 2xx (a
//     request that breaks it on purpose must be refused);
//   - the response's status, content type or body is not what the
//     operation documents.
func checkConformance(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	ctx := context.Background()
	route, params, err := findRoute(req)
	if err != nil {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			checkErrorBody(t, req, resp, body)
			return
		}
		t.Errorf("openapi: %s %s: route not in spec (%v), yet answered %d", req.Method, req.URL.Path, err, resp.StatusCode)
		return
	}

	// The request body was consumed by the client: validate a copy.
	reqCopy := req.Clone(ctx)
	if req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			reqCopy.Body = rc
		}
	} else {
		reqCopy.Body = http.NoBody
	}
	reqInput := &openapi3filter.RequestValidationInput{
		Request:    reqCopy,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		},
	}
	if err := openapi3filter.ValidateRequest(ctx, reqInput); err != nil && resp.StatusCode < 400 {
		t.Errorf("openapi: %s %s: the request breaks the spec (%v), yet answered %d", req.Method, req.URL, err, resp.StatusCode)
	}

	respInput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, respInput); err != nil {
		t.Errorf("openapi: %s %s: response %d does not match the spec: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

// findRoute finds the operation of req. chi serves the seed API's
// "/api/v1/auth/api-keys/" as well as the documented path without the
// trailing slash, so a trailing slash is tried without too.
func findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := specRouter.FindRoute(req)
	if err == nil || len(req.URL.Path) < 2 || !strings.HasSuffix(req.URL.Path, "/") {
		return route, params, err
	}
	trimmed := req.Clone(req.Context())
	trimmed.URL.Path = strings.TrimSuffix(req.URL.Path, "/")
	trimmed.URL.RawPath = ""
	if route, params, err2 := specRouter.FindRoute(trimmed); err2 == nil {
		return route, params, nil
	}
	return route, params, err
}

// checkErrorBody checks an answer to an undocumented route: the one error
// shape with a code the spec lists.
func checkErrorBody(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	if req.Method == http.MethodHead {
		return
	}
	var decoded any
	if err := json.Unmarshal(body, &decoded); err != nil {
		t.Errorf("openapi: %s %s: %d is not JSON: %s", req.Method, req.URL.Path, resp.StatusCode, body)
		return
	}
	schema := spec.Components.Schemas["Error"].Value
	if err := schema.VisitJSON(decoded); err != nil {
		t.Errorf("openapi: %s %s: %d is not the error shape: %v", req.Method, req.URL.Path, resp.StatusCode, err)
	}
}
