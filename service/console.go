package service

import (
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports/console"
)

// websocketConfig sets the embedded server's WebSocket listener for the
// console from AUDITQ_NATS_WEBSOCKET and its TLS files; it returns an
// error when the certificate or key cannot be loaded.
func websocketConfig(cfg config.Config, e *natsjs.EmbeddedConfig) error {
	if cfg.NATSWebsocket == config.Off {
		return nil
	}
	e.Websocket = cfg.NATSWebsocket
	if cfg.NATSWebsocketTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.NATSWebsocketTLSCert, cfg.NATSWebsocketTLSKey)
		if err != nil {
			return fmt.Errorf("AUDITQ_NATS_WEBSOCKET_TLS_CERT, AUDITQ_NATS_WEBSOCKET_TLS_KEY: %w", err)
		}
		e.WebsocketTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return nil
}

// console returns the handler of the admin console, nil when
// AUDITQ_CONSOLE is off. The browser connects to
// AUDITQ_CONSOLE_WEBSOCKET_URL, else to the embedded server's WebSocket
// listener.
func (s *Service) console() (http.Handler, error) {
	if !s.cfg.Console {
		return nil, nil
	}
	ws := s.cfg.ConsoleWebsocketURL
	if ws == "" {
		ws = s.wsURL
	}
	return console.Handler(console.Config{WebsocketURL: ws, InboxPrefix: s.cfg.ConsoleInboxPrefix, Tenants: s.cfg.Tenants})
}
