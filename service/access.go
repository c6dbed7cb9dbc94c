package service

import (
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports"
	"github.com/auditq/auditq/ports/contract"
)

// This file wires access control (docs/security.md): what only the
// service may do on a NATS server configured by AUDITQ_NATS_CONFIG, and
// the service's own user there.

// accessRules are the subjects and streams of the contract as the
// checker of a NATS configuration needs them. The cleanup and report job
// subjects are the service's own: operators start those jobs through
// audit.admin.cleanup and audit.admin.report.generate, which carry the
// identity the server vouched for into the job, and so a job on those
// subjects can believe the identity it carries.
func accessRules(cfg config.Config) natsjs.AccessRules {
	owned := []string{contract.ResultSubjects, contract.PoisonSubjects, contract.SubjectCheckpoints, contract.ScheduleSubjects,
		contract.SubjectCleanup, contract.SubjectReportGenerate}
	results := []string{contract.ResultSubjects, contract.SubjectCheckpoints}
	var tenants []natsjs.TenantPattern
	if cfg.Tenants {
		owned = append(owned, contract.TenantBulkResults)
		results = append(results, contract.TenantBulkResults)
		tenants = []natsjs.TenantPattern{
			{Subject: contract.TenantLogSubjects, Token: contract.TenantToken},
			{Subject: contract.TenantBulkSubjects, Token: contract.TenantToken},
			{Subject: contract.TenantBulkResults, Token: contract.TenantToken},
		}
	}
	return natsjs.AccessRules{
		Tenants:      tenants,
		Account:      cfg.NATSAccount,
		Owned:        owned,
		Requests:     contract.RequestSubjects(),
		Jobs:         []string{contract.SubjectLog, contract.SubjectBulk},
		Acks:         []string{contract.ExportAckPrefix + "*", contract.ExportAckPrefix + ">"},
		Results:      results,
		Streams:      []string{natsjs.StreamAudit, natsjs.StreamPoison, natsjs.StreamResults, natsjs.StreamCheckpoints},
		PoisonStream: natsjs.StreamPoison,
	}
}

// embeddedConfig is the embedded server's configuration: auditq's own
// settings, and either the single user or token of AUDITQ_NATS_AUTH_* or
// the file AUDITQ_NATS_CONFIG with a service user of a key generated now,
// in memory, which it returns (nil without a file).
func embeddedConfig(cfg config.Config) (natsjs.EmbeddedConfig, nkeys.KeyPair, error) {
	ec := natsjs.EmbeddedConfig{
		Listen: cfg.NATSListen, DataDir: cfg.DataDir, MaxPayload: cfg.NATSMaxPayload,
	}
	if cfg.NATSConfigFile == "" {
		ec.User, ec.Password, ec.Token = cfg.NATSUser, cfg.NATSPassword, cfg.NATSToken
		return ec, nil, nil
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return ec, nil, fmt.Errorf("embedded NATS: create the service's key: %w", err)
	}
	ec.ConfigFile, ec.Access, ec.ServiceKey = cfg.NATSConfigFile, accessRules(cfg), kp
	return ec, kp, nil
}

// externalConfig is how the service connects to an external server:
// with AUDITQ_NATS_SERVICE_NKEY, as that nkey user (the client commands'
// AUDITQ_NATS_AUTH_* and AUDITQ_NATS_CREDS are then not used), else as
// the client commands do. With AUDITQ_NATS_CONFIG, the server's own
// configuration file, it checks the file as for the embedded server,
// with the service's nkey as the one user of its account, and says that
// the identity in requests can be trusted; the running server is checked
// by probeExternal once connected.
func externalConfig(cfg config.Config, conn natsjs.ConnConfig) (natsjs.ConnConfig, ports.Identity, error) {
	if cfg.NATSServiceNkey == "" {
		if cfg.NATSConfigFile != "" {
			return conn, ports.Identity{}, fmt.Errorf("AUDITQ_NATS_SERVICE_NKEY: required with AUDITQ_NATS_URL and AUDITQ_NATS_CONFIG: the nkey seed file of auditq's own user in account %s (docs/security.md)", cfg.NATSAccount)
		}
		return conn, ports.Identity{}, nil
	}
	kp, err := readNkey(cfg.NATSServiceNkey)
	if err != nil {
		return conn, ports.Identity{}, err
	}
	svc := natsjs.ConnConfig{URL: conn.URL, TLSCA: conn.TLSCA, TLSCert: conn.TLSCert, TLSKey: conn.TLSKey, Nkey: kp, Logger: conn.Logger}
	if cfg.NATSConfigFile == "" {
		return svc, ports.Identity{}, nil
	}
	pub, _ := kp.PublicKey()
	opts, tree, err := natsjs.LoadExternalServerConfig(cfg.NATSConfigFile)
	if err != nil {
		return conn, ports.Identity{}, err
	}
	rules := accessRules(cfg)
	rules.ServiceUsers = []string{pub}
	if err := natsjs.CheckAccess(opts, tree, rules); err != nil {
		return conn, ports.Identity{}, fmt.Errorf("NATS configuration %s refused:\n%w", cfg.NATSConfigFile, err)
	}
	return svc, ports.Identity{Trusted: true, Account: cfg.NATSAccount}, nil
}

// readNkey reads a user's nkey seed (SU...) from path, bare or in a
// credentials file's decorated block.
func readNkey(path string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("AUDITQ_NATS_SERVICE_NKEY: %w", err)
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, fmt.Errorf("AUDITQ_NATS_SERVICE_NKEY %s: not an nkey seed: %w", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("AUDITQ_NATS_SERVICE_NKEY %s: not the seed of a user nkey (SU...)", path)
	}
	return kp, nil
}

// probeExternal checks the running external server when the service
// trusts identities on it: its connection nc must be the service's
// nkey user in its account, and a client without credentials must be
// refused or in another account.
func probeExternal(cfg config.Config, nc *nats.Conn, conn natsjs.ConnConfig) error {
	pub, err := conn.Nkey.PublicKey()
	if err != nil {
		return err
	}
	return natsjs.ProbeExternal(nc, conn, cfg.NATSAccount, pub)
}
