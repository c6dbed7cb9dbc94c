package cli

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

// NotRunningError says that no NATS server answered where the client
// commands look for auditq.
type NotRunningError struct {
	URL string // without any user or password
	Err error
}

// Error says that auditq is not running at URL and how to start it.
func (e *NotRunningError) Error() string {
	return fmt.Sprintf(`auditq is not running at %s (no NATS server answered); start it with "auditq serve", or set AUDITQ_NATS_URL to where it runs`, e.URL)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// NewConnector returns the Connector of the client commands: dial opens
// the connection to natsURL (the configured AUDITQ_NATS_URL, or the
// embedded server's nats://AUDITQ_NATS_LISTEN). When no server answers
// there, the error is a *NotRunningError, still wrapping
// nats.ErrNoServers.
func NewConnector(natsURL string, dial func() (*nats.Conn, error)) Connector {
	return func() (*nats.Conn, error) {
		nc, err := dial()
		if err != nil {
			if errors.Is(err, nats.ErrNoServers) {
				return nil, &NotRunningError{URL: redactURL(natsURL), Err: err}
			}
			return nil, err
		}
		return nc, nil
	}
}

// redactURL drops any user, password or token from each URL of a
// comma-separated NATS server list.
func redactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if u, err := url.Parse(p); err == nil && u.Host != "" {
				u.User = nil
				p = u.String()
			} else {
				scheme, _, ok := strings.Cut(p, "://")
				p = p[at+1:]
				if ok {
					p = scheme + "://" + p
				}
			}
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
