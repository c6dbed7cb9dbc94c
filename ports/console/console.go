// Package console serves the admin console: a browser application, built
// from web/ into dist/ and embedded in the binary, that reads the trail
// through the same NATS request subjects as every other client, over the
// NATS WebSocket listener (docs/console.md).
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/auditq/auditq/app/query"
)

//go:embed dist
var dist embed.FS

// Config is what the console is told at /console/config.json.
type Config struct {
	// WebsocketURL is the ws:// or wss:// URL of the NATS WebSocket
	// listener the browser connects to; "" when none is configured (the
	// console then says so). A host of 0.0.0.0 or :: is replaced by the
	// host name the browser used to reach the console.
	WebsocketURL string
	// InboxPrefix is the inbox prefix of the browser's connection; "" for
	// nats.js's default (_INBOX).
	InboxPrefix string
	// Tenants tells the console that the service runs with tenants
	// (docs/tenants.md): the trail then offers a tenant filter and shows
	// each event's tenant.
	Tenants bool
}

// asset is one embedded file with its content type and ETag.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the console: GET / (the page), GET /console/<file> (its
// script and style) and GET /console/config.json. It returns an error
// when the embedded bundle lacks index.html or cfg's URL is not a ws://
// or wss:// URL.
func Handler(cfg Config) (http.Handler, error) {
	if cfg.WebsocketURL != "" {
		u, err := url.Parse(cfg.WebsocketURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, fmt.Errorf("console: WebSocket URL %q: must be ws:// or wss://", cfg.WebsocketURL)
		}
	}
	assets := map[string]asset{}
	err := fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := dist.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		assets[strings.TrimPrefix(p, "dist/")] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: read the embedded bundle: %w", err)
	}
	if _, ok := assets["index.html"]; !ok {
		return nil, fmt.Errorf("console: the embedded bundle has no index.html (run go tool task ui)")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, assets["index.html"], cfg)
	})
	mux.HandleFunc("GET /console/config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"websocketUrl": browserURL(cfg.WebsocketURL, r.Host),
			"inboxPrefix":  cfg.InboxPrefix,
			"tenants":      cfg.Tenants,
			// The actions of the trail's own read records, which the
			// trail hides unless asked.
			"readActions": query.ReadActions(),
		})
	})
	mux.HandleFunc("GET /console/{file}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.PathValue("file")]
		if !ok || r.PathValue("file") == "index.html" {
			http.NotFound(w, r)
			return
		}
		serve(w, r, a, cfg)
	})
	return mux, nil
}

// serve writes a with revalidation (no-cache plus ETag: the file names
// carry no hash) and a Content-Security-Policy that allows nothing but
// this origin and the WebSocket listener.
func serve(w http.ResponseWriter, r *http.Request, a asset, cfg Config) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	connect := "'self'"
	if ws := browserURL(cfg.WebsocketURL, r.Host); ws != "" {
		connect += " " + ws
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src "+connect+"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}

// browserURL returns ws with an unspecified host (0.0.0.0, ::) replaced
// by the host name of requestHost, the Host the browser sent.
func browserURL(ws, requestHost string) string {
	if ws == "" {
		return ""
	}
	u, err := url.Parse(ws)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		host := requestHost
		if h, _, err := net.SplitHostPort(requestHost); err == nil {
			host = h
		}
		u.Host = net.JoinHostPort(host, u.Port())
	}
	return u.String()
}
