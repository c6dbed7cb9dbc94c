package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/app/query"
)

// VerifyRuns keeps the results of whole-trail verifications in
// audit_verify_runs.
type VerifyRuns struct {
	db *bun.DB
}

var (
	_ query.VerifyRecorder   = (*VerifyRuns)(nil)
	_ query.LastVerifyReader = (*VerifyRuns)(nil)
)

// NewVerifyRuns returns a VerifyRuns over db, whose schema must be
// migrated.
func NewVerifyRuns(db *bun.DB) *VerifyRuns { return &VerifyRuns{db: db} }

type verifyRunRow struct {
	bun.BaseModel `bun:"table:audit_verify_runs"`

	ID            int64          `bun:"id,pk,autoincrement"`
	StartedAt     time.Time      `bun:"started_at"`
	FinishedAt    time.Time      `bun:"finished_at"`
	OK            bool           `bun:"ok"`
	Events        int64          `bun:"events"`
	Batches       int64          `bun:"batches"`
	BatchSeq      int64          `bun:"batch_seq"`
	Checkpoints   int64          `bun:"checkpoints"`
	CheckpointSeq int64          `bun:"checkpoint_seq"`
	Uncovered     int64          `bun:"uncovered"`
	FailureCount  int64          `bun:"failure_count"`
	FirstFailure  sql.NullString `bun:"first_failure"`
	Trigger       string         `bun:"trigger"`
}

// RecordVerify stores run; the error is transient.
func (v *VerifyRuns) RecordVerify(ctx context.Context, run query.VerifyRun) error {
	row := verifyRunRow{
		StartedAt: run.StartedAt, FinishedAt: run.FinishedAt, OK: run.OK, Events: run.Events, Batches: run.Batches,
		BatchSeq: run.BatchSeq, Checkpoints: run.Checkpoints, CheckpointSeq: run.CheckpointSeq, Uncovered: run.Uncovered,
		FailureCount: run.FailureCount, FirstFailure: sql.NullString{String: run.FirstFailure, Valid: run.FirstFailure != ""},
		Trigger: run.Trigger,
	}
	if _, err := v.db.NewInsert().Model(&row).ExcludeColumn("id").Returning("NULL").Exec(ctx); err != nil {
		return fmt.Errorf("insert verify run: %w", err)
	}
	return nil
}

// LastVerify returns the newest recorded run by finish time, nil when
// none; the error is transient.
func (v *VerifyRuns) LastVerify(ctx context.Context) (*query.VerifyRun, error) {
	var row verifyRunRow
	err := v.db.NewSelect().Model(&row).OrderExpr("finished_at DESC, id DESC").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last verify run: %w", err)
	}
	return &query.VerifyRun{
		StartedAt: row.StartedAt.UTC(), FinishedAt: row.FinishedAt.UTC(), OK: row.OK, Events: row.Events, Batches: row.Batches,
		BatchSeq: row.BatchSeq, Checkpoints: row.Checkpoints, CheckpointSeq: row.CheckpointSeq, Uncovered: row.Uncovered,
		FailureCount: row.FailureCount, FirstFailure: row.FirstFailure.String, Trigger: row.Trigger,
	}, nil
}
