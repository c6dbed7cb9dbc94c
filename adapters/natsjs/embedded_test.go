package natsjs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/adapters/natsjs"
)

// TestEmbeddedWebsocket checks that the WebSocket listener refuses a
// non-loopback address without TLS, and on loopback carries NATS
// (request-reply) for a WebSocket client.
func TestEmbeddedWebsocket(t *testing.T) {
	bad := natsjs.EmbeddedConfig{Listen: "127.0.0.1:-1", DataDir: t.TempDir(), Websocket: "0.0.0.0:-1"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "not a loopback address, and no TLS") {
		t.Fatalf("a WebSocket listener on 0.0.0.0 without TLS: %v", err)
	}
	srv, err := natsjs.StartEmbedded(natsjs.EmbeddedConfig{Listen: "127.0.0.1:-1", DataDir: t.TempDir(), Websocket: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	url := srv.WebsocketURL()
	if !strings.HasPrefix(url, "ws://127.0.0.1:") || strings.HasSuffix(url, ":-1") {
		t.Fatalf("WebSocket URL %q", url)
	}
	responder, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer responder.Close()
	if _, err := responder.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := responder.Flush(); err != nil {
		t.Fatal(err)
	}
	ws, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect over WebSocket: %v", err)
	}
	defer ws.Close()
	m, err := ws.Request("echo", []byte("hello"), 10*time.Second)
	if err != nil {
		t.Fatalf("request over WebSocket: %v", err)
	}
	if string(m.Data) != "hello" {
		t.Fatalf("request over WebSocket answered %q", m.Data)
	}
}
