package harness

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSConfig configures an in-process nats-server with JetStream on
// 127.0.0.1: the external broker of a damage test, or the plain
// pipeline's broker in the benchmark.
type NATSConfig struct {
	// Port is the client port; default (0) a random one. A fixed port
	// (from FreePort) lets a restart on the same StoreDir keep it. Never
	// 4222, the NATS default.
	Port int
	// StoreDir holds the JetStream store. Required.
	StoreDir string
	// ServerName is the server's name; default one nats-server makes up.
	ServerName string
	// Configure, if set, adjusts the options last (authorization, TLS,
	// operator mode, ...).
	Configure []func(*server.Options)
	// ReadyTimeout bounds the wait until the server accepts clients;
	// default 30 seconds.
	ReadyTimeout time.Duration
}

func (c *NATSConfig) setDefaults() {
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 30 * time.Second
	}
}

// Validate reports every missing or unusable setting at once (nil when
// there is none).
func (c NATSConfig) Validate() error {
	var errs []error
	if c.StoreDir == "" {
		errs = append(errs, errors.New("harness: NATSConfig needs StoreDir"))
	}
	if c.Port < 0 || c.Port > 65535 || c.Port == natsDefaultPort {
		errs = append(errs, fmt.Errorf("harness: NATSConfig.Port %d: want 0 (random) or a free port other than %d", c.Port, natsDefaultPort))
	}
	return errors.Join(errs...)
}

// StartNATS starts the server and returns it once it accepts clients
// (srv.ClientURL() says where); the caller shuts it down. On failure (an
// invalid cfg, options nats-server refuses, not ready in time) it returns
// nil and the error; no server is left running.
func StartNATS(cfg NATSConfig) (*server.Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: cfg.ServerName, Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: cfg.StoreDir, NoSigs: true, NoLog: true,
	}
	for _, f := range cfg.Configure {
		f(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("harness: nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(cfg.ReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("harness: nats-server on port %d not ready within %s", cfg.Port, cfg.ReadyTimeout)
	}
	return srv, nil
}
