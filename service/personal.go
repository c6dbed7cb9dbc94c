package service

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/keyfile"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/config"
	"github.com/auditq/auditq/domain/audit"
)

// openPersonal sets up personal data handling (AUDITQ_PERSONAL_DATA,
// docs/personal-data.md): nil when it is off and no key-encryption key is
// configured. A key-encryption key that is missing, malformed, or not the
// one the stored keys were wrapped under stops the start before any event
// is consumed, so none is ever stored unprotected. With encryption, the
// key file's directory must be writable: every erasure replaces the key.
// The pseudonym key is wrapped under its own key
// (AUDITQ_PSEUDONYM_KEY_FILE), created at the first start, which erasures
// never replace. Each tenant of AUDITQ_TENANT_PERSONAL_DATA has its mode.
func openPersonal(ctx context.Context, cfg config.Config, db *bun.DB) (*postgres.Personal, error) {
	pc := postgres.PersonalConfig{Mode: postgres.PersonalMode(cfg.PersonalData), DetailKeys: cfg.PersonalDetailKeys}
	encrypts := pc.Mode == postgres.PersonalEncrypt
	if modes := cfg.TenantPersonalModes(); len(modes) > 0 {
		pc.TenantModes = make(map[string]postgres.PersonalMode, len(modes))
		for t, m := range modes {
			pc.TenantModes[t] = postgres.PersonalMode(m)
			encrypts = encrypts || m == config.PersonalEncrypt
		}
	}
	if cfg.KEKFile != "" {
		f := keyfile.NewFile(cfg.KEKFile)
		if _, _, err := f.Keys(); err != nil {
			return nil, fmt.Errorf("AUDITQ_KEK_FILE: %w", err)
		}
		if encrypts {
			if err := f.CheckWritable(); err != nil {
				return nil, fmt.Errorf("AUDITQ_KEK_FILE: %w", err)
			}
		}
		pk, err := keyfile.LoadOrCreateKEK(cfg.PseudonymKeyPath())
		if err != nil {
			return nil, fmt.Errorf("AUDITQ_PSEUDONYM_KEY_FILE: %w", err)
		}
		pc.KEK, pc.PseudonymKEK = f, pk
	}
	return postgres.OpenPersonal(ctx, db, pc)
}

// erasureStore is what erasures go through: nil unless some tenant's
// personal data is encrypted.
func erasureStore(p *postgres.Personal) audit.ErasureStore {
	if !p.Erases() {
		return nil
	}
	return p
}
