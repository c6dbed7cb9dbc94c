package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// SigningKeyPath returns where the checkpoint signing key lives:
// AUDITQ_SIGNING_KEY_FILE, else signing-key.pem under AUDITQ_DATA_DIR.
func (c Config) SigningKeyPath() string {
	if c.SigningKeyFile != "" {
		return c.SigningKeyFile
	}
	return filepath.Join(c.DataDir, "signing-key.pem")
}

func (c Config) validateEvidence() []error {
	var errs []error
	if c.TamperEvidence {
		if c.SigningKeyFile == "" && c.DataDir == "" {
			errs = append(errs, fmt.Errorf("AUDITQ_SIGNING_KEY_FILE: set it, or AUDITQ_DATA_DIR, when AUDITQ_TAMPER_EVIDENCE is on"))
		}
		if c.CheckpointInterval < time.Second {
			errs = append(errs, fmt.Errorf("AUDITQ_CHECKPOINT_INTERVAL: must be at least 1s"))
		}
	}
	return errs
}

// onOff reads a switch: on/true/1 or off/false/0.
func (p *parser) onOff(name string) bool {
	switch v := strings.ToLower(p.str(name)); v {
	case "on", "true", "1", "yes":
		return true
	case "off", "false", "0", "no":
		return false
	default:
		p.errs = append(p.errs, fmt.Errorf("%s: must be on or off, got %q", name, v))
		return false
	}
}
