// Command example-product is the smallest product behind keyhub, the one
// the README's "Put your product behind keyhub" walkthrough runs: an HTTP
// service that trusts nothing but keyhub's signed identity. It verifies
// every request's Keyhub-Identity with api/identity (keyhub's JWKS, the
// gateway's audience, keyhub's address as the issuer) and answers with
// the caller keyhub vouched for, as JSON; a request without a valid
// identity, one that did not come through keyhub, is 401
// INVALID_IDENTITY.
//
//	go run ./cmd/example-product -keyhub http://localhost:8080 -listen 127.0.0.1:9000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keyhub/keyhub/api/identity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "example-product:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("example-product", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyhubURL := fs.String("keyhub", "http://localhost:8080", "keyhub's address as it signs identities (its PUBLIC_URL): the required iss, and where its JWKS is")
	listen := fs.String("listen", "127.0.0.1:9000", "address to serve on (the UPSTREAM_URL of keyhub's route)")
	audience := fs.String("audience", identity.DefaultAudience, "the identity's required aud (the route's audience=)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	issuer := strings.TrimRight(*keyhubURL, "/")
	verify, err := identity.Middleware(issuer+identity.JWKSPath, *audience, identity.WithIssuer(issuer))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "example-product: serving on %s, trusting identities from %s\n", ln.Addr(), issuer)
	srv := &http.Server{Handler: verify(http.HandlerFunc(answer)), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// caller is the answer: the request and who keyhub says made it.
type caller struct {
	Method     string   `json:"method"`
	Path       string   `json:"path"`
	UserID     string   `json:"user_id"`
	OwnerID    string   `json:"owner_id"`
	KeyID      string   `json:"key_id,omitempty"`
	Scopes     []string `json:"scopes"`
	Tier       string   `json:"tier"`
	AuthMethod string   `json:"auth_method"`
}

// answer runs behind the middleware, so the principal is always there.
func answer(w http.ResponseWriter, r *http.Request) {
	p, _ := identity.FromContext(r.Context())
	c := caller{
		Method: r.Method, Path: r.URL.Path,
		UserID: p.UserID.String(), OwnerID: p.OwnerID.String(),
		Scopes: p.Scopes, Tier: p.Tier, AuthMethod: p.AuthMethod,
	}
	if p.AuthMethod == identity.MethodAPIKey {
		c.KeyID = p.KeyID.String()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(c)
}
