package natsjs

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ConnConfig says how to reach NATS: an embedded server (in process, no TCP
// hop) or a URL, with the authentication options nats.go supports.
type ConnConfig struct {
	Embedded *server.Server
	URL      string

	User, Password, Token string
	CredsFile             string // NATS decentralised-auth credentials
	TLSCA                 string // CA bundle to verify the server
	TLSCert, TLSKey       string // client certificate
	// Nkey, when set, authenticates with this key pair instead of User,
	// Password or Token: the service's own user on an embedded server
	// with a configuration file.
	Nkey nkeys.KeyPair
	// InboxPrefix replaces _INBOX for the connection's reply subjects
	// (a user allowed only a private inbox); "" keeps _INBOX.
	InboxPrefix string
	Logger      *slog.Logger
}

// Connect opens a NATS connection named name that reconnects for ever; it
// returns an error that never includes a password or token.
func Connect(cfg ConnConfig, name string) (*nats.Conn, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "conn", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "conn", name, "url", c.ConnectedUrlRedacted()) }),
		// Asynchronous errors (a slow consumer dropping messages, a
		// permissions violation) are otherwise silent.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS asynchronous error", "conn", name, "subject", subject, "err", err)
		}),
	}
	switch {
	case cfg.Nkey != nil:
		pub, err := cfg.Nkey.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("connect to NATS: nkey: %w", err)
		}
		opts = append(opts, nats.Nkey(pub, cfg.Nkey.Sign))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	url := cfg.URL
	if cfg.Embedded != nil {
		opts = append(opts, nats.InProcessServer(cfg.Embedded))
		url = cfg.Embedded.ClientURL()
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS (%s): %w", redactURL(url), err)
	}
	return nc, nil
}

// ServerVersion returns the version the connected server reports.
func ServerVersion(nc *nats.Conn) string { return nc.ConnectedServerVersion() }

// redactURL hides any user:password@ part of a NATS URL, in each URL of a
// comma-separated list.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		parts[i] = redactOne(p)
	}
	return strings.Join(parts, ",")
}

// redactOne hides the user:password@ part of one URL.
func redactOne(u string) string {
	at := strings.LastIndex(u, "@")
	if at < 0 {
		return u
	}
	if scheme := strings.Index(u[:at], "://"); scheme >= 0 {
		return u[:scheme+3] + "REDACTED" + u[at:]
	}
	return "REDACTED" + u[at:]
}
