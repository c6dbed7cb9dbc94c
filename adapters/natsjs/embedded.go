package natsjs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// EmbeddedConfig configures the in-process nats-server.
type EmbeddedConfig struct {
	Listen     string // host:port for NATS clients; port -1 picks a free one
	DataDir    string // JetStream store lives under DataDir/jetstream
	MaxPayload int32  // bytes; 0 keeps the server default (1 MiB)
	User       string // with Password: clients must authenticate
	Password   string
	Token      string // alternative to User/Password

	// Websocket is host:port of the WebSocket listener for browsers (the
	// console); "" opens none, port -1 picks a free one. Without
	// WebsocketTLS it must be a loopback address.
	Websocket    string
	WebsocketTLS *tls.Config
	// ConfigFile is a nats-server configuration file whose authorization,
	// accounts and websocket blocks apply (AUDITQ_NATS_CONFIG); User,
	// Password and Token are then not used. Access says what only the
	// service may do (checked before the server starts), and ServiceKey
	// is the nkey of the user StartEmbedded adds to Access.Account for the
	// service's own connections.
	ConfigFile string
	Access     AccessRules
	ServiceKey nkeys.KeyPair
}

// Validate returns an error naming a listen address that is not
// host:port, a WebSocket address beyond loopback without TLS, an empty
// DataDir, a negative MaxPayload, or a User without a Password.
func (c EmbeddedConfig) Validate() error {
	if _, _, err := c.hostPort(); err != nil {
		return err
	}
	if c.Websocket != "" {
		host, _, err := wsHostPort(c.Websocket)
		if err != nil {
			return err
		}
		if c.WebsocketTLS == nil && !isLoopback(host) {
			return fmt.Errorf("embedded NATS WebSocket address %q: not a loopback address, and no TLS", c.Websocket)
		}
	}
	if c.DataDir == "" {
		return errors.New("embedded NATS: DataDir must not be empty")
	}
	if c.MaxPayload < 0 {
		return fmt.Errorf("embedded NATS: MaxPayload must not be negative, got %d", c.MaxPayload)
	}
	if (c.User == "") != (c.Password == "") {
		return errors.New("embedded NATS: User and Password go together")
	}
	if c.ConfigFile != "" {
		if c.ServiceKey == nil {
			return errors.New("embedded NATS: a ConfigFile needs a ServiceKey for the service's own user")
		}
		return c.Access.Validate()
	}
	return nil
}

func (c EmbeddedConfig) hostPort() (string, int, error) {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", 0, fmt.Errorf("embedded NATS listen address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("embedded NATS listen port %q: %w", portStr, err)
	}
	return host, port, nil
}

func wsHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("embedded NATS WebSocket address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("embedded NATS WebSocket port %q: %w", portStr, err)
	}
	return host, port, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// EmbeddedMaxMemoryStore bounds the bytes all memory-backed streams of
// the embedded server may hold together.
const EmbeddedMaxMemoryStore = 32 << 20

// StartEmbedded starts a nats-server with JetStream in this process and
// waits until it accepts connections; it returns cfg's validation error,
// or why the server did not start. Shut it down with Shutdown.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	// A websocket block of ConfigFile wins: it carries its own settings
	// (TLS, authorization) that the operator wrote.
	if cfg.Websocket != "" && opts.Websocket.Port == 0 {
		wsHost, wsPort, _ := wsHostPort(cfg.Websocket)
		opts.Websocket = server.WebsocketOpts{Host: wsHost, Port: wsPort, TLSConfig: cfg.WebsocketTLS, NoTLS: cfg.WebsocketTLS == nil}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		if cfg.Websocket != "" {
			return nil, fmt.Errorf("embedded NATS did not start listening on %s and WebSocket %s within 15s (is an address in use?)", cfg.Listen, cfg.Websocket)
		}
		return nil, fmt.Errorf("embedded NATS did not start listening on %s within 15s", cfg.Listen)
	}
	return srv, nil
}

// serverOptions are the embedded server's options: the ones auditq owns
// (name, listen address, JetStream store, maximum payload, no signal
// handling, no log), over either the single user or token of cfg, or the
// authorization, accounts and websocket blocks of cfg.ConfigFile plus the
// service's own nkey user, once CheckAccess passes them.
func serverOptions(cfg EmbeddedConfig) (*server.Options, error) {
	opts := &server.Options{Username: cfg.User, Password: cfg.Password, Authorization: cfg.Token}
	if cfg.ConfigFile != "" {
		fileOpts, tree, err := LoadServerConfig(cfg.ConfigFile)
		if err != nil {
			return nil, err
		}
		if err := CheckAccess(fileOpts, tree, cfg.Access); err != nil {
			return nil, fmt.Errorf("NATS configuration %s refused:\n%w", cfg.ConfigFile, err)
		}
		var acc *server.Account
		for _, a := range fileOpts.Accounts {
			if a.GetName() == cfg.Access.Account {
				acc = a
			}
		}
		pub, err := cfg.ServiceKey.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: service key: %w", err)
		}
		// No permissions: the service's user may do everything in its
		// account, and nobody else is in it.
		fileOpts.Nkeys = append(fileOpts.Nkeys, &server.NkeyUser{Nkey: pub, Account: acc})
		opts = fileOpts
	}
	host, port, _ := cfg.hostPort()
	opts.ServerName = "auditq"
	opts.Host, opts.Port = host, port
	opts.JetStream = true
	opts.StoreDir = filepath.Join(cfg.DataDir, "jetstream")
	opts.MaxPayload = cfg.MaxPayload
	// auditq's streams are file-backed; memory-backed streams (which
	// nobody else should create here) get a small bound instead of the
	// server's default of three quarters of the machine's memory.
	opts.JetStreamMaxMemory = EmbeddedMaxMemoryStore
	opts.NoSigs, opts.NoLog = true, true
	return opts, nil
}
