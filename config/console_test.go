package config_test

import (
	"strings"
	"testing"
)

func TestConsoleDefaults(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Console || c.NATSWebsocket != "127.0.0.1:4224" || c.ConsoleWebsocketURL != "" || c.ConsoleInboxPrefix != "" {
		t.Fatalf("defaults: console %v, websocket %q, URL %q, inbox %q", c.Console, c.NATSWebsocket, c.ConsoleWebsocketURL, c.ConsoleInboxPrefix)
	}
}

// TestConsoleSettingsRejected checks that each bad console setting is
// refused, naming the variable, and that the good ones pass.
func TestConsoleSettingsRejected(t *testing.T) {
	checkLoads(t, []loadCase{
		{map[string]string{"AUDITQ_NATS_WEBSOCKET": "off"}, ""},
		{map[string]string{"AUDITQ_NATS_WEBSOCKET": "[::1]:4224"}, ""},
		{map[string]string{"AUDITQ_NATS_WEBSOCKET": "localhost:4224"}, ""},
		{map[string]string{"AUDITQ_NATS_WEBSOCKET": "4224"}, "AUDITQ_NATS_WEBSOCKET: must be host:port"},
		{map[string]string{"AUDITQ_NATS_WEBSOCKET": "0.0.0.0:4224"}, "AUDITQ_NATS_WEBSOCKET: 0.0.0.0:4224 is not a loopback address"},
		{map[string]string{"AUDITQ_NATS_WEBSOCKET": "0.0.0.0:4224", "AUDITQ_NATS_WEBSOCKET_TLS_CERT": "c.pem", "AUDITQ_NATS_WEBSOCKET_TLS_KEY": "k.pem"}, ""},
		// An external server: the embedded listener is not opened.
		{map[string]string{"AUDITQ_NATS_WEBSOCKET": "0.0.0.0:4224", "AUDITQ_NATS_URL": "nats://nats:4222"}, ""},
		{map[string]string{"AUDITQ_NATS_WEBSOCKET_TLS_CERT": "c.pem"}, "AUDITQ_NATS_WEBSOCKET_TLS_CERT and AUDITQ_NATS_WEBSOCKET_TLS_KEY: set both"},
		{map[string]string{"AUDITQ_CONSOLE_WEBSOCKET_URL": "wss://nats.example.com:443/ws"}, ""},
		{map[string]string{"AUDITQ_CONSOLE_WEBSOCKET_URL": "https://nats.example.com"}, "AUDITQ_CONSOLE_WEBSOCKET_URL: must be a ws:// or wss:// URL"},
		{map[string]string{"AUDITQ_CONSOLE_INBOX_PREFIX": "_INBOX_console"}, ""},
		{map[string]string{"AUDITQ_CONSOLE_INBOX_PREFIX": "_INBOX.>"}, "AUDITQ_CONSOLE_INBOX_PREFIX: must be a subject without wildcards"},
		{map[string]string{"AUDITQ_CONSOLE": "maybe"}, "AUDITQ_CONSOLE: must be on or off"},
	})
}

// loadCase is a configuration and the error Load must give for it.
type loadCase struct {
	vars map[string]string
	want string // "" = valid
}

// checkLoads fails for each case whose configuration Load does not
// accept, or refuses without the error wanted.
func checkLoads(t *testing.T, cases []loadCase) {
	t.Helper()
	for _, c := range cases {
		_, err := load(c.vars)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.vars, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: error %v, want %q", c.vars, err, c.want)
		}
	}
}
