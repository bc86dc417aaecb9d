// Package forwardauth holds the configurations that put nginx and Caddy in
// front of a product with keyhub's forward auth (GET /v1/authz), exactly
// as the README shows them and as the tests run them against the real
// servers. Traefik's and Envoy's are in the README, marked untested.
//
// Each configuration names keyhub at 127.0.0.1:8080, the product at
// 127.0.0.1:9000 and the gateway's own listener at 127.0.0.1:8000; the
// tests replace those addresses, and nothing else.
package forwardauth

import (
	_ "embed"
	"fmt"
)

// The addresses the configurations name.
const (
	KeyhubAddr   = "127.0.0.1:8080"
	UpstreamAddr = "127.0.0.1:9000"
	ListenAddr   = "127.0.0.1:8000"
)

// Nginx is a server block for nginx's http context (auth_request).
//
//go:embed nginx.conf
var Nginx string

// Caddyfile is a Caddy site (forward_auth).
//
//go:embed Caddyfile
var Caddyfile string

// NginxMain is the main configuration a packaged nginx.conf would hold,
// for running Nginx's server block (keyhub.conf in prefix) as one
// foreground process of the current user, everything it writes in prefix:
// what the tests and the load harness run.
func NginxMain(prefix string) string {
	return fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # A load test's client keeps each connection for its whole run (nginx
    # closes one after 1000 requests by default).
    keepalive_requests 1000000;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/keyhub.conf;
}
`, prefix)
}
