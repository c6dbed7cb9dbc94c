package natsjs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// subjectUserInfo is the request every NATS client may send to learn its
// own user, account and permissions as the server sees them (answered by
// the server through its system account, nats-server 2.10+).
const subjectUserInfo = "$SYS.REQ.USER.INFO"

// UserInfo is a connection's identity as the server reports it.
type UserInfo struct {
	User        string          `json:"user"`
	Account     string          `json:"account"`
	Permissions json.RawMessage `json:"permissions,omitempty"`
}

// WhoAmI asks the server who nc is. It returns an error when the server
// does not answer (no system account) or answers with an error.
func WhoAmI(nc *nats.Conn, timeout time.Duration) (UserInfo, error) {
	reply, err := nc.Request(subjectUserInfo, nil, timeout)
	if err != nil {
		return UserInfo{}, fmt.Errorf("ask the NATS server who this connection is (%s): %w", subjectUserInfo, err)
	}
	var r struct {
		Data  UserInfo `json:"data"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &r); err != nil {
		return UserInfo{}, fmt.Errorf("%s: unreadable answer %q: %w", subjectUserInfo, reply.Data, err)
	}
	if r.Error != nil {
		return UserInfo{}, fmt.Errorf("%s: %d %s", subjectUserInfo, r.Error.Code, r.Error.Description)
	}
	return r.Data, nil
}

// ProbeExternal checks a running external server against what the
// service's identity rests on: that svc, the service's connection, is
// user userKey in account, and that a client without credentials (anon
// says how to reach the server: URL and TLS, no user) is refused or lands
// in another account. It returns an error naming the broken rule.
// Nothing is published but the two questions to the server.
func ProbeExternal(svc *nats.Conn, anon ConnConfig, account, userKey string) error {
	const timeout = 5 * time.Second
	me, err := WhoAmI(svc, timeout)
	if err != nil {
		return fmt.Errorf("check the external NATS server: %w (auditq needs the server's system account, on by default)", err)
	}
	if me.Account != account || me.User != userKey {
		return fmt.Errorf(`check the external NATS server: rule "auditq has its own account": auditq's connection is user %s in account %q, want user %s (AUDITQ_NATS_SERVICE_NKEY) in account %q (AUDITQ_NATS_ACCOUNT)`,
			me.User, me.Account, userKey, account)
	}
	anon.User, anon.Password, anon.Token, anon.CredsFile, anon.Nkey = "", "", "", "", nil
	nc, err := connectOnce(anon)
	if err != nil {
		return nil // a client without credentials is refused (authorization, TLS client certificate)
	}
	defer nc.Close()
	who, err := WhoAmI(nc, timeout)
	if err != nil {
		return fmt.Errorf("check the external NATS server: a client without credentials is admitted, and its account cannot be told: %w", err)
	}
	if who.Account == account {
		return fmt.Errorf(`check the external NATS server: rule "no user in auditq's account": a client without credentials is admitted into account %q (no_auth_user %s): it could answer auditq's requests and forge what auditq publishes`, account, who.User)
	}
	return nil
}

// connectOnce connects once, without reconnecting, with cfg's URL and TLS.
func connectOnce(cfg ConnConfig) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("auditq-probe"), nats.NoReconnect(), nats.Timeout(5 * time.Second)}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	return nats.Connect(cfg.URL, opts...)
}
