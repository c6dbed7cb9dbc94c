package natsjs

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures the in-process nats-server.
type EmbeddedConfig struct {
	Listen     string // host:port for NATS clients; port -1 picks a free one
	DataDir    string // JetStream store lives under DataDir/jetstream
	MaxPayload int32  // bytes; 0 keeps the server default (1 MiB)
	User       string // with Password: clients must authenticate
	Password   string
	Token      string // alternative to User/Password
}

// StartEmbedded starts a nats-server with JetStream in this process and
// waits until it accepts connections. Shut it down with Shutdown.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS listen port %q: %w", portStr, err)
	}
	opts := &server.Options{
		ServerName:    "auditq",
		Host:          host,
		Port:          port,
		JetStream:     true,
		StoreDir:      filepath.Join(cfg.DataDir, "jetstream"),
		MaxPayload:    cfg.MaxPayload,
		Username:      cfg.User,
		Password:      cfg.Password,
		Authorization: cfg.Token,
		NoSigs:        true,
		NoLog:         true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start listening on %s within 15s", cfg.Listen)
	}
	return srv, nil
}
