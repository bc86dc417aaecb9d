// Package dashboard serves keyhub's web dashboard: plain HTML, CSS and
// JavaScript modules embedded in the binary (no build step, no CDN). The
// page uses only the public REST API and the WebSocket with a ticket,
// exactly as a dashboard hosted elsewhere would; it learns where the API is
// and how to sign in from config.json.
package dashboard

import (
	"embed"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/keyhub/keyhub/internal/httpjson"
	"github.com/keyhub/keyhub/internal/keyhub"
)

//go:embed files
var embedded embed.FS

// Files are the dashboard's static files, flat (no subfolders).
var Files, _ = fs.Sub(embedded, "files")

// Config is what the page needs to know, served as config.json. Nothing in
// it is secret: the Supabase anon key is meant for browsers.
type Config struct {
	// APIURL is the keyhub the page calls; empty means its own origin.
	APIURL string `json:"api_url"`
	// DevSignIn offers "sign in as" through POST /dev/token (dev mode).
	DevSignIn bool `json:"dev_sign_in"`
	// SupabaseURL and SupabaseAnonKey enable email + password sign-in
	// against Supabase Auth.
	SupabaseURL     string `json:"supabase_url,omitempty"`
	SupabaseAnonKey string `json:"supabase_anon_key,omitempty"`
}

// Handler serves the dashboard: the path's last element names the file
// ("" is index.html), config.json is cfg. Every answer carries a strict
// Content-Security-Policy: scripts only from files of this origin, no
// inline script or handler, and connections only to the API and Supabase.
func Handler(cfg Config) http.Handler {
	configJSON, err := json.Marshal(cfg)
	if err != nil {
		panic(err) // a struct of strings and a bool always encodes
	}
	connect := []string{"'self'"}
	for _, u := range []string{cfg.APIURL, cfg.SupabaseURL} {
		if o := originOf(u); o != "" {
			connect = append(connect, o)
		}
	}
	if o := originOf(cfg.APIURL); o != "" {
		connect = append(connect, "ws"+strings.TrimPrefix(o, "http"))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The page's own WebSocket: CSP 'self' covers ws: to the same host
		// only in newer browsers, so it is listed explicitly.
		sameHostWS := "ws://" + r.Host + " wss://" + r.Host
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src "+strings.Join(connect, " ")+" "+sameHostWS+"; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")

		name := path.Base(r.URL.Path)
		if strings.HasSuffix(r.URL.Path, "/") {
			name = "index.html"
		}
		if name == "config.json" {
			h.Set("Content-Type", "application/json")
			w.Write(configJSON)
			return
		}
		data, err := fs.ReadFile(Files, name)
		if err != nil {
			httpjson.Error(w, r, keyhub.Errorf(keyhub.CodeNotFound, "the dashboard has no file %q", name))
			return
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		h.Set("Content-Type", ctype)
		w.Write(data)
	})
}

// originOf is scheme://host of an http(s) URL, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
