package service

import (
	"fmt"

	"github.com/nats-io/nkeys"

	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/ports/contract"
)

// This file wires access control (docs/security.md): what only the
// service may do on a NATS server configured by AUDITQ_NATS_CONFIG, and
// the service's own user there.

// accessRules are the subjects and streams of the contract as the
// checker of a NATS configuration needs them.
func accessRules(cfg config.Config) natsjs.AccessRules {
	return natsjs.AccessRules{
		Account:      cfg.NATSAccount,
		Owned:        []string{contract.ResultSubjects, contract.PoisonSubjects, contract.SubjectCheckpoints, contract.ScheduleSubjects},
		Requests:     contract.RequestSubjects(),
		Jobs:         []string{contract.SubjectLog, contract.SubjectBulk, contract.SubjectCleanup, contract.SubjectReportGenerate},
		Acks:         []string{contract.ExportAckPrefix + ">"},
		Results:      []string{contract.ResultSubjects, contract.SubjectCheckpoints},
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
