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
func openPersonal(ctx context.Context, cfg config.Config, db *bun.DB) (*postgres.Personal, error) {
	pc := postgres.PersonalConfig{Mode: postgres.PersonalMode(cfg.PersonalData), DetailKeys: cfg.PersonalDetailKeys}
	if cfg.KEKFile != "" {
		f := keyfile.NewFile(cfg.KEKFile)
		if _, _, err := f.Keys(); err != nil {
			return nil, fmt.Errorf("AUDITQ_KEK_FILE: %w", err)
		}
		if pc.Mode == postgres.PersonalEncrypt {
			if err := f.CheckWritable(); err != nil {
				return nil, fmt.Errorf("AUDITQ_KEK_FILE: %w", err)
			}
		}
		pc.KEK = f
	}
	return postgres.OpenPersonal(ctx, db, pc)
}

// erasureStore is what erasures go through: nil unless personal data is
// encrypted.
func erasureStore(p *postgres.Personal) audit.ErasureStore {
	if p.Mode() != postgres.PersonalEncrypt {
		return nil
	}
	return p
}
