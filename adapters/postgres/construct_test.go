package postgres_test

import (
	"testing"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
)

// mustRetention returns a Retention over db, failing the test on a bad
// configuration.
func mustRetention(t testing.TB, db *bun.DB, cfg postgres.RetentionConfig) *postgres.Retention {
	t.Helper()
	r, err := postgres.NewRetention(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mustRoller returns a Roller over db, failing the test on a bad
// configuration.
func mustRoller(t testing.TB, db *bun.DB, cfg postgres.RollerConfig) *postgres.Roller {
	t.Helper()
	r, err := postgres.NewRoller(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mustBatcher starts a Batcher over w, failing the test on a bad
// configuration.
func mustBatcher(t testing.TB, w postgres.BatchWriter, cfg postgres.BatcherConfig) *postgres.Batcher {
	t.Helper()
	b, err := postgres.NewBatcher(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfigsRefuseNegativeSettings(t *testing.T) {
	if _, err := postgres.NewRetention(nil, postgres.RetentionConfig{Chunk: -1}); err == nil {
		t.Error("RetentionConfig{Chunk: -1} accepted")
	}
	if _, err := postgres.NewRoller(nil, postgres.RollerConfig{Lag: -1}); err == nil {
		t.Error("RollerConfig{Lag: -1} accepted")
	}
	if _, err := postgres.NewBatcher(nil, postgres.BatcherConfig{MaxDelay: -1}); err == nil {
		t.Error("BatcherConfig{MaxDelay: -1} accepted")
	}
}
