package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// DefaultNATSWebsocket is where the embedded server's WebSocket listener
// for the console listens unless AUDITQ_NATS_WEBSOCKET says otherwise.
const DefaultNATSWebsocket = "127.0.0.1:4224"

// IsLoopbackHost reports whether host (a name or an address, as in
// host:port) only reaches this machine: "localhost" or a loopback IP.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c Config) validateConsole() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NATSWebsocket != Off {
		host, _, err := net.SplitHostPort(c.NATSWebsocket)
		switch {
		case err != nil:
			bad("AUDITQ_NATS_WEBSOCKET: must be host:port or \"off\", got %q", c.NATSWebsocket)
		case c.NATSURL == "" && !IsLoopbackHost(host) && c.NATSWebsocketTLSCert == "":
			bad("AUDITQ_NATS_WEBSOCKET: %s is not a loopback address: a WebSocket listener beyond this machine needs TLS (AUDITQ_NATS_WEBSOCKET_TLS_CERT and AUDITQ_NATS_WEBSOCKET_TLS_KEY)", c.NATSWebsocket)
		}
	}
	if (c.NATSWebsocketTLSCert == "") != (c.NATSWebsocketTLSKey == "") {
		bad("AUDITQ_NATS_WEBSOCKET_TLS_CERT and AUDITQ_NATS_WEBSOCKET_TLS_KEY: set both or neither")
	}
	if c.ConsoleWebsocketURL != "" {
		u, err := url.Parse(c.ConsoleWebsocketURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			bad("AUDITQ_CONSOLE_WEBSOCKET_URL: must be a ws:// or wss:// URL, got %q", c.ConsoleWebsocketURL)
		}
	}
	if p := c.ConsoleInboxPrefix; p != "" && (strings.ContainsAny(p, " \t\r\n*>") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".")) {
		bad("AUDITQ_CONSOLE_INBOX_PREFIX: must be a subject without wildcards, spaces or a leading or trailing dot, got %q", p)
	}
	return errs
}
