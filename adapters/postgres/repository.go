package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

// Repository stores and reads audit events in the audit_logs table.
type Repository struct {
	db *bun.DB
}

var _ audit.Writer = (*Repository)(nil)

// NewRepository returns a Repository over db, whose schema must be migrated.
func NewRepository(db *bun.DB) *Repository { return &Repository{db: db} }

// eventRow is the audit_logs row; it never leaves this package.
type eventRow struct {
	bun.BaseModel `bun:"table:audit_logs"`

	ID           string          `bun:"id,pk"`
	UserID       string          `bun:"user_id,nullzero"`
	Action       string          `bun:"action,notnull"`
	ResourceType string          `bun:"resource_type,notnull"`
	ResourceID   string          `bun:"resource_id,notnull"`
	Details      json.RawMessage `bun:"details,type:jsonb,nullzero"`
	IPAddress    string          `bun:"ip_address,type:inet,nullzero"`
	UserAgent    string          `bun:"user_agent,nullzero"`
	SessionID    string          `bun:"session_id,nullzero"`
	RequestID    string          `bun:"request_id,nullzero"`
	Success      bool            `bun:"success,notnull"`
	ErrorMessage string          `bun:"error_message,nullzero"`
	OccurredAt   time.Time       `bun:"occurred_at,notnull"`
	ReceivedAt   time.Time       `bun:"received_at,notnull"`
}

func toRow(e audit.Event) eventRow {
	return eventRow{
		ID: e.ID, UserID: e.UserID, Action: e.Action, ResourceType: e.ResourceType,
		ResourceID: e.ResourceID, Details: e.Details, IPAddress: e.IPAddress,
		UserAgent: e.UserAgent, SessionID: e.SessionID, RequestID: e.RequestID,
		Success: e.Success, ErrorMessage: e.ErrorMessage,
		OccurredAt: e.OccurredAt, ReceivedAt: e.ReceivedAt,
	}
}

func (r eventRow) toEvent() audit.Event {
	return audit.Event{
		ID: r.ID, UserID: r.UserID, Action: r.Action, ResourceType: r.ResourceType,
		ResourceID: r.ResourceID, Details: r.Details, IPAddress: r.IPAddress,
		UserAgent: r.UserAgent, SessionID: r.SessionID, RequestID: r.RequestID,
		Success: r.Success, ErrorMessage: r.ErrorMessage,
		OccurredAt: r.OccurredAt.UTC(), ReceivedAt: r.ReceivedAt.UTC(),
	}
}

// maxRowsPerStatement keeps a multi-row INSERT under Postgres' limits
// whatever the configured bulk size.
const maxRowsPerStatement = 1000

// Write inserts events in one transaction; ids already stored are skipped and
// counted as duplicates. Errors caused by the row content (SQLSTATE classes
// 22 and 23) wrap audit.ErrPermanent; all others are transient.
func (r *Repository) Write(ctx context.Context, events []audit.Event) (audit.WriteResult, error) {
	if len(events) == 0 {
		return audit.WriteResult{}, nil
	}
	for i, e := range events {
		if err := e.CheckNoNUL(); err != nil {
			return audit.WriteResult{}, fmt.Errorf("event %d (%s): %w", i, e.ID, err)
		}
	}
	var res audit.WriteResult
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res = audit.WriteResult{}
		for start := 0; start < len(events); start += maxRowsPerStatement {
			chunk := events[start:min(start+maxRowsPerStatement, len(events))]
			rows := make([]eventRow, len(chunk))
			for i, e := range chunk {
				rows[i] = toRow(e)
			}
			// Returning("NULL"): without it Bun scans the shorter RETURNING set
			// back into rows and misaligns them (stack-facts.md).
			out, err := tx.NewInsert().Model(&rows).On("CONFLICT (id) DO NOTHING").Returning("NULL").Exec(ctx)
			if err != nil {
				return err
			}
			n, err := out.RowsAffected()
			if err != nil {
				return err
			}
			res.Inserted += int(n)
			res.Duplicates += len(chunk) - int(n)
		}
		return nil
	})
	if err != nil {
		return audit.WriteResult{}, classify(fmt.Errorf("insert %d events: %w", len(events), err))
	}
	return res, nil
}

// Get returns the event with id, or audit.ErrNotFound.
func (r *Repository) Get(ctx context.Context, id string) (audit.Event, error) {
	var row eventRow
	err := r.db.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx)
	if err != nil {
		if errors.Is(err, sqlErrNoRows) {
			return audit.Event{}, audit.ErrNotFound
		}
		return audit.Event{}, fmt.Errorf("get event %q: %w", id, err)
	}
	return row.toEvent(), nil
}

// classify marks errors that retrying cannot fix as permanent.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23") {
		return fmt.Errorf("%w: database rejected the data (SQLSTATE %s): %s", audit.ErrPermanent, pgErr.Code, pgErr.Message)
	}
	return err
}
