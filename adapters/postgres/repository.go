package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

// Repository stores and reads audit events in the audit_logs table.
type Repository struct {
	db       *bun.DB
	sealer   *Sealer   // nil: tamper evidence off
	personal *Personal // nil: personal data stored as sent
}

var _ audit.Writer = (*Repository)(nil)

// NewRepository returns a Repository over db, whose schema must be migrated.
func NewRepository(db *bun.DB) *Repository { return &Repository{db: db} }

// WithSealer returns a Repository over the same database whose writes are
// sealed by s (tamper evidence, see Sealer); nil turns sealing off.
func (r *Repository) WithSealer(s *Sealer) *Repository {
	return &Repository{db: r.db, sealer: s, personal: r.personal}
}

// WithPersonal returns a Repository over the same database that stores
// personal data as p says and reveals it on every read (see Personal);
// nil stores and reads events as they are.
func (r *Repository) WithPersonal(p *Personal) *Repository {
	return &Repository{db: r.db, sealer: r.sealer, personal: p}
}

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
	Pseudonymous bool            `bun:"pseudonymous,nullzero"`
	Personal     []byte          `bun:"personal,nullzero"`
	Tenant       string          `bun:"tenant,pk"`
}

// toEvent returns the row as an event in its stored form (see
// storedForm); readers get it through Personal.Reveal.
func (r eventRow) toEvent() audit.Event {
	return storedForm(audit.Event{
		ID: r.ID, UserID: r.UserID, Action: r.Action, ResourceType: r.ResourceType,
		ResourceID: r.ResourceID, Details: r.Details, IPAddress: r.IPAddress,
		UserAgent: r.UserAgent, SessionID: r.SessionID, RequestID: r.RequestID,
		Success: r.Success, ErrorMessage: r.ErrorMessage,
		OccurredAt: r.OccurredAt.UTC(), ReceivedAt: r.ReceivedAt.UTC(), Personal: r.Personal,
		Tenant: r.Tenant,
	}, r.Pseudonymous)
}

// storedForm returns e, read from a row whose user_id holds a pseudonym
// when pseudonymous, in the form that was hashed: the pseudonym in
// Pseudonym, UserID empty.
func storedForm(e audit.Event, pseudonymous bool) audit.Event {
	if pseudonymous {
		e.Pseudonym, e.UserID = e.UserID, ""
	}
	return e
}

// Write stores events in one transaction, without duplicates: an event
// whose (tenant, id) is already stored (or repeated within events) is
// skipped and counted as a duplicate; the same id in another tenant is
// another event. It first COPYs straight into audit_logs, the cheapest path;
// when an id collides it rolls back and goes through a staging table with
// INSERT ... ON CONFLICT DO NOTHING. Errors caused by row content (SQLSTATE
// classes 22 and 23) wrap audit.ErrPermanent; all others are transient.
// Nothing reads events once Write has returned, whatever the outcome.
func (r *Repository) Write(ctx context.Context, events []audit.Event) (audit.WriteResult, error) {
	ins, err := r.WriteReturning(ctx, events)
	if err != nil {
		return audit.WriteResult{}, err
	}
	return audit.WriteResult{Inserted: len(ins), Duplicates: len(events) - len(ins)}, nil
}

// WriteReturning is Write, returning the indexes (into events) of the events
// that were newly stored, in order.
func (r *Repository) WriteReturning(ctx context.Context, events []audit.Event) ([]int, error) {
	if len(events) == 0 {
		return nil, nil
	}
	for i, e := range events {
		if err := e.CheckNoNUL(); err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i, e.ID, err)
		}
	}
	// Every seal job this write starts hashes events (or their stored
	// form, which shares their bytes) in the background; a failed
	// transaction does not wait for it. The write returns only once
	// each job is done, so that events are the caller's again whatever
	// the outcome.
	var jobs []*sealJob
	defer func() {
		for _, j := range jobs {
			<-j.done
		}
	}()
	prepare := func(tx pgx.Tx) (prepared, error) {
		p, err := r.prepare(ctx, tx, events)
		if p.seal != nil {
			jobs = append(jobs, p.seal)
		}
		return p, err
	}
	// With encryption, the events are protected inside the write's
	// transaction (their subject keys are found and held there); else
	// before it, so that hashing overlaps the connection's round trips.
	var pre *prepared
	if !r.personal.encrypts() {
		p, err := prepare(nil)
		if err != nil {
			return nil, err
		}
		pre = &p
	}
	plan := func(tx pgx.Tx) (prepared, error) {
		if pre != nil {
			return *pre, nil
		}
		return prepare(tx)
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("insert %d events: %w", len(events), err)
	}
	// Close only hands the connection back to the pool: the outcome of
	// the write is known by then.
	defer func() { _ = conn.Close() }()
	var inserted []int
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		var err error
		inserted, err = copyDirect(ctx, pc, events, plan)
		if isUniqueViolation(err) {
			inserted, err = copyStaged(ctx, pc, events, plan)
		}
		return err
	})
	if err != nil {
		return nil, classify(fmt.Errorf("insert %d events: %w", len(events), err))
	}
	return inserted, nil
}

// prepared is what one write copies: the events in their stored form,
// their COPY rows and, with tamper evidence, the seal job hashing them.
type prepared struct {
	rows [][]any
	seal *sealJob
}

// prepare protects events (within tx when encrypting, see
// Personal.protect), converts them into COPY rows and starts hashing them.
func (r *Repository) prepare(ctx context.Context, tx pgx.Tx, events []audit.Event) (prepared, error) {
	stored, err := r.personal.protect(ctx, tx, events)
	if err != nil {
		return prepared{}, err
	}
	rows, err := copyRows(stored)
	if err != nil {
		return prepared{}, err
	}
	var seal *sealJob
	if r.sealer != nil {
		seal = r.sealer.begin(stored) // hashes while the rows are copied
	}
	return prepared{rows: rows, seal: seal}, nil
}

var copyColumns = []string{"id", "user_id", "action", "resource_type", "resource_id", "details", "ip_address",
	"user_agent", "session_id", "request_id", "success", "error_message", "occurred_at", "received_at", "pseudonymous", "personal", "tenant"}

// sealedColumns are copyColumns plus the seal position (batch id, leaf).
var sealedColumns = append(copyColumns[:len(copyColumns):len(copyColumns)], "seal_batch", "seal_leaf")

// columns returns the columns a write copies: sealed or not.
func columns(seal *sealJob) []string {
	if seal != nil {
		return sealedColumns
	}
	return copyColumns
}

// withSeal sets the seal position (batch id, the row's index as its leaf)
// in the two cells copyRows left free after copyColumns; rows without
// seal stay as they are. The batch id is boxed once for every row, the
// leaves sit in one array.
func withSeal(rows [][]any, seal *sealJob) [][]any {
	if seal == nil {
		return rows
	}
	id := any(seal.id)
	leaves := make([]int32, len(rows))
	for i, r := range rows {
		leaves[i] = int32(i)
		rows[i] = append(r[:len(copyColumns)], id, int4Cell{&leaves[i]})
	}
	return rows
}

// rowCap is a COPY row's capacity: copyColumns, the seal position and the
// staging path's order column, so that neither has to copy the row.
const rowCap = 20

// copyRows converts events in their stored form into COPY rows; empty
// optional strings are NULL, a pseudonym goes into user_id with
// pseudonymous true. All rows share one backing array. The cells point
// into events (which must not change until the rows are copied) instead
// of holding copies: a string or a time.Time put into an interface is
// copied to the heap, a pointer is not, so a row costs no allocation per
// cell.
func copyRows(events []audit.Event) ([][]any, error) {
	rows := make([][]any, len(events))
	cells := make([]any, len(events)*rowCap)
	var addrs []netip.Addr // the parsed IP addresses, allocated at the first
	for i := range events {
		e := &events[i]
		var ip any
		if e.IPAddress != "" {
			a, err := netip.ParseAddr(e.IPAddress)
			if err != nil {
				return nil, fmt.Errorf("event %d (%s): %w", i, e.ID, audit.Invalid("ipAddress", "must be an IP address"))
			}
			if addrs == nil {
				addrs = make([]netip.Addr, len(events))
			}
			addrs[i] = a
			ip = inetCell{&addrs[i]}
		}
		var details any
		if e.Details != nil {
			details = e.Details // json.RawMessage: pgx copies its bytes as they are
		}
		user, pseudonymous := null(&e.UserID), any(nil)
		if e.Pseudonym != "" {
			user, pseudonymous = textCell{&e.Pseudonym}, true
		}
		var personal any
		if e.Personal != nil {
			personal = e.Personal
		}
		r := cells[i*rowCap : i*rowCap : (i+1)*rowCap]
		rows[i] = append(r, textCell{&e.ID}, user, textCell{&e.Action}, textCell{&e.ResourceType}, textCell{&e.ResourceID}, details, ip,
			null(&e.UserAgent), null(&e.SessionID), null(&e.RequestID), e.Success, null(&e.ErrorMessage),
			timeCell{&e.OccurredAt}, timeCell{&e.ReceivedAt}, pseudonymous, personal, textCell{&e.Tenant})
	}
	return rows, nil
}

// null is the cell of an optional string: NULL when it is empty.
func null(s *string) any {
	if *s == "" {
		return nil
	}
	return textCell{s}
}

// Cells of COPY rows that point at their value. Each is a struct of one
// pointer, which an interface holds without an allocation, and pgx
// encodes it through the valuer interface of its column's type (text,
// timestamptz, inet, integer) without boxing it again.
type (
	textCell struct{ s *string }
	timeCell struct{ t *time.Time }
	inetCell struct{ a *netip.Addr }
	int4Cell struct{ n *int32 }
)

func (c textCell) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: *c.s, Valid: true}, nil
}

func (c timeCell) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: *c.t, Valid: true}, nil
}

// NetipPrefixValue is the address as a prefix of its full length, as pgx
// encodes a netip.Addr.
func (c inetCell) NetipPrefixValue() (netip.Prefix, error) {
	return netip.PrefixFrom(*c.a, c.a.BitLen()), nil
}

func (c int4Cell) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*c.n), Valid: true}, nil
}

// copyDirect COPYs the rows plan gives into audit_logs in one
// transaction; every row is new if it succeeds. The hours of the rows are
// marked changed for the report rollups (markHours) in the same
// transaction.
// With a seal job, the batch record goes with the COMMIT (see sealedTx).
func copyDirect(ctx context.Context, c *pgx.Conn, events []audit.Event, plan func(pgx.Tx) (prepared, error)) ([]int, error) {
	all := make([]int, len(events))
	for i := range all {
		all[i] = i
	}
	err := sealedTx(ctx, c, func(tx pgx.Tx) (*sealJob, error) {
		p, err := plan(tx)
		if err != nil {
			return nil, err
		}
		seal := p.seal
		if seal != nil {
			if err := seal.allocate(ctx, tx); err != nil {
				return nil, err
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_logs"}, columns(seal), pgx.CopyFromRows(withSeal(p.rows, seal))); err != nil {
			return nil, err
		}
		if seal != nil {
			seal.prepare(all)
		}
		return seal, markHours(ctx, tx, events, all)
	})
	if err != nil {
		return nil, err
	}
	return all, nil
}

// copyStaged COPYs the rows plan gives into a per-session staging table
// and moves the new ones into audit_logs, returning which were new; it
// marks their hours changed (markHours) as copyDirect does.
func copyStaged(ctx context.Context, c *pgx.Conn, events []audit.Event, plan func(pgx.Tx) (prepared, error)) ([]int, error) {
	var inserted []int
	err := sealedTx(ctx, c, func(tx pgx.Tx) (*sealJob, error) {
		p, err := plan(tx)
		if err != nil {
			return nil, err
		}
		seal, rows := p.seal, p.rows
		if seal != nil {
			if err := seal.allocate(ctx, tx); err != nil {
				return nil, err
			}
			rows = withSeal(rows, seal)
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS audit_logs_staging
			(LIKE audit_logs INCLUDING DEFAULTS, ord int) ON COMMIT DELETE ROWS`); err != nil {
			return nil, err
		}
		staged := make([][]any, len(rows))
		for i, r := range rows {
			staged[i] = append(r, i) // within rowCap: no copy
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_logs_staging"}, append(columns(seal)[:len(columns(seal)):len(columns(seal))], "ord"), pgx.CopyFromRows(staged)); err != nil {
			return nil, err
		}
		cols := strings.Join(columns(seal), ", ")
		// DISTINCT ON keeps the first of events repeated within the batch:
		// an event is its (tenant, id), the primary key.
		res, err := tx.Query(ctx, `INSERT INTO audit_logs (`+cols+`)
			SELECT `+cols+` FROM (SELECT DISTINCT ON (id, tenant) * FROM audit_logs_staging ORDER BY id, tenant, ord) s ORDER BY ord
			ON CONFLICT (id, tenant) DO NOTHING RETURNING tenant, id`)
		if err != nil {
			return nil, err
		}
		keys, err := pgx.CollectRows(res, pgx.RowToStructByPos[eventKey])
		if err != nil {
			return nil, err
		}
		isNew := make(map[eventKey]bool, len(keys))
		for _, k := range keys {
			isNew[k] = true
		}
		inserted = inserted[:0]
		for i, e := range events {
			if k := (eventKey{e.Tenant, e.ID}); isNew[k] {
				inserted = append(inserted, i)
				delete(isNew, k) // a repeated event counts once
			}
		}
		if seal != nil {
			seal.prepare(inserted)
		}
		return seal, markHours(ctx, tx, events, inserted)
	})
	if err != nil {
		return nil, err
	}
	return inserted, nil
}

// eventKey is what identifies a stored event: its tenant and its id.
type eventKey struct{ Tenant, ID string }

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// Get returns the event of tenant with id, or audit.ErrNotFound.
func (r *Repository) Get(ctx context.Context, tenant, id string) (audit.Event, error) {
	var row eventRow
	err := r.db.NewSelect().Model(&row).Where("id = ? AND tenant = ?", id, tenant).Scan(ctx)
	if err != nil {
		if errors.Is(err, sqlErrNoRows) {
			return audit.Event{}, audit.ErrNotFound
		}
		return audit.Event{}, fmt.Errorf("get event %s: %w", audit.EventRef(tenant, id), err)
	}
	out := []audit.Event{row.toEvent()}
	if err := r.personal.Reveal(ctx, out); err != nil {
		return audit.Event{}, fmt.Errorf("get event %s: %w", audit.EventRef(tenant, id), err)
	}
	return out[0], nil
}

// classify marks errors that retrying cannot fix as permanent.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23") {
		return fmt.Errorf("%w: database rejected the data (SQLSTATE %s): %s", audit.ErrPermanent, pgErr.Code, pgErr.Message)
	}
	return err
}
