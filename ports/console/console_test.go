package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/auditq/auditq/app/query"
)

func get(t *testing.T, h http.Handler, host, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Host = host
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestHandlerServesTheBundle checks the page, its assets, revalidation,
// the security headers and the unknown paths.
func TestHandlerServesTheBundle(t *testing.T) {
	h, err := Handler(Config{WebsocketURL: "ws://127.0.0.1:4224"})
	if err != nil {
		t.Fatal(err)
	}
	page := get(t, h, "127.0.0.1:8080", "/", nil)
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), `<script type="module" src="/console/app.js">`) {
		t.Fatalf("GET / answered %d: %.200s", page.Code, page.Body)
	}
	csp := page.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' ws://127.0.0.1:4224;") || !strings.Contains(csp, "script-src 'self';") {
		t.Errorf("Content-Security-Policy %q: want scripts from this origin only and the WebSocket listener", csp)
	}
	for path, ctype := range map[string]string{"/console/app.js": "text/javascript", "/console/app.css": "text/css", "/console/licenses.txt": "text/plain"} {
		w := get(t, h, "127.0.0.1:8080", path, nil)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Body.Len() < 1000 {
			t.Errorf("GET %s answered %d, %s, %d bytes", path, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
		etag := w.Header().Get("ETag")
		if again := get(t, h, "127.0.0.1:8080", path, map[string]string{"If-None-Match": etag}); etag == "" || again.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q answered %d, want 304", path, etag, again.Code)
		}
	}
	for _, path := range []string{"/console/index.html", "/console/nope.js", "/other"} {
		if w := get(t, h, "127.0.0.1:8080", path, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s answered %d, want 404", path, w.Code)
		}
	}
}

// TestConfigJSON checks what the browser is told: the WebSocket URL (an
// unspecified host replaced by the one the browser used), the inbox
// prefix, or no URL at all.
func TestConfigJSON(t *testing.T) {
	cases := []struct {
		cfg      Config
		host     string
		wantURL  string
		wantInbx string
		wantTnts bool
	}{
		{Config{WebsocketURL: "ws://127.0.0.1:4224"}, "127.0.0.1:8080", "ws://127.0.0.1:4224", "", false},
		{Config{WebsocketURL: "ws://127.0.0.1:4224", Tenants: true}, "127.0.0.1:8080", "ws://127.0.0.1:4224", "", true},
		{Config{WebsocketURL: "wss://0.0.0.0:4224", InboxPrefix: "_INBOX_console"}, "audit.example.com:8443", "wss://audit.example.com:4224", "_INBOX_console", false},
		{Config{WebsocketURL: "wss://[::]:4224"}, "[2001:db8::1]:8080", "wss://[2001:db8::1]:4224", "", false},
		{Config{WebsocketURL: "wss://nats.example.com/ws"}, "localhost:8080", "wss://nats.example.com/ws", "", false},
		{Config{}, "localhost:8080", "", "", false},
	}
	for _, c := range cases {
		h, err := Handler(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		w := get(t, h, c.host, "/console/config.json", nil)
		var got struct {
			WebsocketURL, InboxPrefix string
			Tenants                   bool
			ReadActions               []string
		}
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
			t.Fatalf("config.json answered %d %s: %v", w.Code, w.Body, err)
		}
		if got.WebsocketURL != c.wantURL || got.InboxPrefix != c.wantInbx || got.Tenants != c.wantTnts {
			t.Errorf("%+v from host %s: config.json %+v, want %s, %q and tenants %v", c.cfg, c.host, got, c.wantURL, c.wantInbx, c.wantTnts)
		}
		if !slices.Equal(got.ReadActions, query.ReadActions()) {
			t.Errorf("config.json's readActions %v, want the service's %v", got.ReadActions, query.ReadActions())
		}
	}
	if _, err := Handler(Config{WebsocketURL: "http://127.0.0.1:4224"}); err == nil {
		t.Error("an http:// WebSocket URL was accepted")
	}
}
