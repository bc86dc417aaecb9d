package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/coder/websocket"

	"github.com/keyhub/keyhub/internal/keyhub"
)

// isUpgrade reports whether r asks to become a WebSocket.
func isUpgrade(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, token := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return true
			}
		}
	}
	return false
}

// handshakeHeaders are the client's headers that belong to its own
// handshake or hop, never to the upstream's: the dialer writes its own.
var handshakeHeaders = map[string]bool{
	"Connection": true, "Upgrade": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Content-Length": true, "Host": true,
	// keyhub checked the Origin; the upstream's check would compare it
	// with its own host and refuse every browser.
	"Origin":            true,
	"Sec-Websocket-Key": true, "Sec-Websocket-Version": true, "Sec-Websocket-Extensions": true, "Sec-Websocket-Protocol": true, "Sec-Websocket-Accept": true,
}

// dialUpstream opens the upstream side of a relayed socket: the route's
// upstream and path (as for any request), the client's headers without
// its credentials, its hop or its handshake, the forwarded client, and the
// signed identity of p.
func (rp *routeProxy) dialUpstream(ctx context.Context, r *http.Request, p *keyhub.Principal, subprotocols []string) (*websocket.Conn, error) {
	out := &http.Request{Header: make(http.Header, len(r.Header)+8)}
	for name, values := range r.Header {
		if !handshakeHeaders[name] {
			out.Header[name] = values
		}
	}
	for _, v := range r.Header.Values("Connection") { // names the client made hop-by-hop
		for _, name := range strings.Split(v, ",") {
			out.Header.Del(strings.TrimSpace(name))
		}
	}
	stripCredentials(out.Header)
	rp.setForwarded(r, out)
	if ids := rp.cfg.Identities; ids != nil {
		v, err := ids.Headers(p, rp.route.Audience)
		if err != nil {
			return nil, err
		}
		v.Set(out.Header)
	}
	target := rp.upstreamURL(r.URL)
	c, _, err := websocket.Dial(ctx, target.String(), &websocket.DialOptions{
		HTTPHeader:   out.Header,
		Subprotocols: subprotocols,
	})
	return c, err
}

// upstreamURL is where a request for in goes: the upstream's scheme and
// host, its path joined with the request's (less the prefix with
// strip_prefix), and the query without tickets.
func (rp *routeProxy) upstreamURL(in *url.URL) *url.URL {
	path := in.Path
	if rp.route.StripPrefix && strings.HasPrefix(path, rp.route.Prefix) {
		path = path[len(rp.route.Prefix)-1:]
	}
	up := *rp.route.Upstream
	up.Path = strings.TrimSuffix(up.Path, "/") + path
	up.RawPath = ""
	up.RawQuery = withoutTicket(in.RawQuery)
	return &up
}
