package postgres

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// EvidenceStore reads and writes the tamper-evidence records: batches,
// deletion records, checkpoints and chain heads, and streams the whole
// audit_logs table for verification.
type EvidenceStore struct {
	db   *bun.DB
	q    querier
	conn *sql.Conn // set inside Snapshot
}

// querier is *sql.DB or *sql.Conn: database/sql with $n placeholders
// (bun's own methods would format the arguments into the text).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// NewEvidenceStore returns an EvidenceStore over db, whose schema must be
// migrated.
func NewEvidenceStore(db *bun.DB) *EvidenceStore { return &EvidenceStore{db: db, q: db.DB} }

// Snapshot calls fn with a store whose reads all see one snapshot of the
// database (a read-only REPEATABLE READ transaction on one connection), so
// that rows, batches and checkpoints written meanwhile do not mix in.
func (s *EvidenceStore) Snapshot(ctx context.Context, fn func(*EvidenceStore) error) error {
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	err = fn(&EvidenceStore{db: s.db, q: conn, conn: conn})
	if _, cerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); cerr != nil && err == nil {
		err = fmt.Errorf("snapshot: end: %w", cerr)
	}
	return err
}

// checkpointLockKey is the advisory lock that serialises checkpoint writers
// of all instances ("auditqcp").
const checkpointLockKey = 0x6175646974716370

// LockCheckpoints takes the checkpoint writers' advisory lock on a
// connection of its own and returns the function releasing it. It waits
// while another writer holds it, up to ctx.
func (s *EvidenceStore) LockCheckpoints(ctx context.Context) (func(), error) {
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("checkpoint lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(checkpointLockKey)); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("checkpoint lock: %w", err)
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", int64(checkpointLockKey))
		_ = conn.Close()
	}, nil
}

// Heads returns the heads of the batch and deletion chains.
func (s *EvidenceStore) Heads(ctx context.Context) (batches, deletions evidence.Head, err error) {
	rows, err := s.q.QueryContext(ctx, `SELECT chain, seq, hash FROM audit_chain_heads`)
	if err != nil {
		return batches, deletions, fmt.Errorf("read chain heads: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var chain string
		var h evidence.Head
		var hash []byte
		if err := rows.Scan(&chain, &h.Seq, &hash); err != nil {
			return batches, deletions, fmt.Errorf("read chain heads: %w", err)
		}
		copy(h.Hash[:], hash)
		switch chain {
		case "batches":
			batches = h
		case "deletions":
			deletions = h
		}
	}
	return batches, deletions, rows.Err()
}

// BatchHashes returns the hashes of batches from..to (chain positions,
// inclusive), in order; fewer when the chain is shorter.
func (s *EvidenceStore) BatchHashes(ctx context.Context, from, to int64) ([]evidence.Hash, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT hash FROM audit_batches WHERE seq BETWEEN $1 AND $2 ORDER BY seq`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read batch hashes %d..%d: %w", from, to, err)
	}
	defer func() { _ = rows.Close() }()
	var out []evidence.Hash
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("read batch hashes: %w", err)
		}
		h, err := evidence.HashFromBytes(b)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

const batchCols = `seq, id, sealed_at, leaf_count, leaves, root, prev_hash, hash, signature`

// scanBatch reads a batch record; an unchained one has Seq 0 and zero
// Prev and Hash.
func scanBatch(sc interface{ Scan(...any) error }) (evidence.Batch, error) {
	var b evidence.Batch
	var seq sql.NullInt64
	var leaves, root, prev, hash []byte
	if err := sc.Scan(&seq, &b.ID, &b.SealedAt, &b.LeafCount, &leaves, &root, &prev, &hash, &b.Signature); err != nil {
		return b, err
	}
	b.Seq = seq.Int64
	b.SealedAt = b.SealedAt.UTC()
	b.Leaves = make([]evidence.Hash, len(leaves)/32)
	for i := range b.Leaves {
		copy(b.Leaves[i][:], leaves[32*i:])
	}
	copy(b.Root[:], root)
	copy(b.Prev[:], prev)
	copy(b.Hash[:], hash)
	return b, nil
}

// Batches calls fn with every chained batch, leaves included, in chain
// order.
func (s *EvidenceStore) Batches(ctx context.Context, fn func(evidence.Batch) error) error {
	return s.batches(ctx, fn, `SELECT `+batchCols+` FROM audit_batches WHERE seq IS NOT NULL ORDER BY seq`)
}

// PendingBatches calls fn with every batch committed but not yet chained
// (Seq 0).
func (s *EvidenceStore) PendingBatches(ctx context.Context, fn func(evidence.Batch) error) error {
	return s.batches(ctx, fn, `SELECT `+batchCols+` FROM audit_batches WHERE seq IS NULL ORDER BY sealed_at, id`)
}

func (s *EvidenceStore) batches(ctx context.Context, fn func(evidence.Batch) error, q string) error {
	rows, err := s.q.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("read batches: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			return fmt.Errorf("read batches: %w", err)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return rows.Err()
}

// BatchByID returns the batch rows with seal_batch id belong to, or
// audit.ErrNotFound.
func (s *EvidenceStore) BatchByID(ctx context.Context, id int64) (evidence.Batch, error) {
	b, err := scanBatch(s.q.QueryRowContext(ctx, `SELECT `+batchCols+` FROM audit_batches WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("batch id %d: %w", id, audit.ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("read batch id %d: %w", id, err)
	}
	return b, nil
}

// LastBatch returns the newest chained batch, else the newest batch not
// yet chained, without its leaves; nil when there is none.
func (s *EvidenceStore) LastBatch(ctx context.Context) (*evidence.BatchInfo, error) {
	for _, q := range []string{
		`SELECT ` + batchCols + ` FROM audit_batches WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1`,
		`SELECT ` + batchCols + ` FROM audit_batches WHERE seq IS NULL ORDER BY sealed_at DESC, id DESC LIMIT 1`,
	} {
		b, err := scanBatch(s.q.QueryRowContext(ctx, q))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the last batch: %w", err)
		}
		info := b.Info()
		return &info, nil
	}
	return nil, nil
}

// LastDeletion returns the newest deletion record, or nil when there is
// none.
func (s *EvidenceStore) LastDeletion(ctx context.Context) (*evidence.Deletion, error) {
	var last *evidence.Deletion
	err := s.deletions(ctx, func(d evidence.Deletion) error { last = &d; return nil }, `ORDER BY seq DESC LIMIT 1`)
	if err != nil {
		return nil, err
	}
	return last, nil
}

// Deletions calls fn with every deletion record in chain order.
func (s *EvidenceStore) Deletions(ctx context.Context, fn func(evidence.Deletion) error) error {
	return s.deletions(ctx, fn, `ORDER BY seq`)
}

func (s *EvidenceStore) deletions(ctx context.Context, fn func(evidence.Deletion) error, order string) error {
	rows, err := s.q.QueryContext(ctx, `SELECT seq, recorded_at, cutoff, criteria, batch_ids, leaf_idx, key_id, prev_hash, hash, signature
		FROM audit_deletions `+order)
	if err != nil {
		return fmt.Errorf("read deletion records: %w", err)
	}
	defer func() { _ = rows.Close() }()
	m := pgtype.NewMap()
	for rows.Next() {
		var d evidence.Deletion
		var ids []int64
		var idx []int32
		var prev, hash []byte
		if err := rows.Scan(&d.Seq, &d.RecordedAt, &d.Cutoff, &d.Criteria, m.SQLScanner(&ids), m.SQLScanner(&idx), &d.KeyID, &prev, &hash, &d.Signature); err != nil {
			return fmt.Errorf("read deletion records: %w", err)
		}
		d.RecordedAt, d.Cutoff = d.RecordedAt.UTC(), d.Cutoff.UTC()
		copy(d.Prev[:], prev)
		copy(d.Hash[:], hash)
		if len(ids) != len(idx) {
			idx = idx[:min(len(ids), len(idx))]
			ids = ids[:len(idx)]
		}
		d.Leaves = make([]evidence.DeletedLeaf, len(ids))
		for i := range ids {
			d.Leaves[i] = evidence.DeletedLeaf{Batch: ids[i], Leaf: int(idx[i])}
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return rows.Err()
}

const checkpointCols = `seq, created_at, reason, batch_seq, batch_hash, range_from, range_root, deletion_seq, deletion_hash, key_id, prev_hash, signature`

func scanCheckpoint(sc interface{ Scan(...any) error }) (evidence.Checkpoint, error) {
	var c evidence.Checkpoint
	var bh, rr, dh, prev []byte
	if err := sc.Scan(&c.Seq, &c.Time, &c.Reason, &c.BatchSeq, &bh, &c.RangeFrom, &rr, &c.DeletionSeq, &dh, &c.KeyID, &prev, &c.Signature); err != nil {
		return c, err
	}
	c.Time = c.Time.UTC()
	copy(c.BatchHash[:], bh)
	copy(c.RangeRoot[:], rr)
	copy(c.DeletionHash[:], dh)
	copy(c.Prev[:], prev)
	return c, nil
}

// Checkpoints calls fn with every checkpoint in chain order.
func (s *EvidenceStore) Checkpoints(ctx context.Context, fn func(evidence.Checkpoint) error) error {
	return s.checkpoints(ctx, fn, `SELECT `+checkpointCols+` FROM audit_checkpoints ORDER BY seq`)
}

func (s *EvidenceStore) checkpoints(ctx context.Context, fn func(evidence.Checkpoint) error, q string, args ...any) error {
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return fmt.Errorf("read checkpoints: %w", err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}

// CheckpointsAfter returns the checkpoints after seq, in order.
func (s *EvidenceStore) CheckpointsAfter(ctx context.Context, seq int64) ([]evidence.Checkpoint, error) {
	var out []evidence.Checkpoint
	err := s.checkpoints(ctx, func(c evidence.Checkpoint) error { out = append(out, c); return nil },
		`SELECT `+checkpointCols+` FROM audit_checkpoints WHERE seq > $1 ORDER BY seq`, seq)
	return out, err
}

// LastCheckpoint returns the newest checkpoint, or nil when there is none.
func (s *EvidenceStore) LastCheckpoint(ctx context.Context) (*evidence.Checkpoint, error) {
	c, err := scanCheckpoint(s.q.QueryRowContext(ctx, `SELECT `+checkpointCols+` FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last checkpoint: %w", err)
	}
	return &c, nil
}

// CheckpointCovering returns the first checkpoint that covers batch seq,
// or nil when none does yet.
func (s *EvidenceStore) CheckpointCovering(ctx context.Context, batchSeq int64) (*evidence.Checkpoint, error) {
	c, err := scanCheckpoint(s.q.QueryRowContext(ctx, `SELECT `+checkpointCols+` FROM audit_checkpoints
		WHERE batch_seq >= $1 ORDER BY seq LIMIT 1`, batchSeq))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the checkpoint covering batch %d: %w", batchSeq, err)
	}
	return &c, nil
}

// InsertCheckpoint stores c, which must be the next in the chain; it
// returns an error when a checkpoint with its seq exists.
func (s *EvidenceStore) InsertCheckpoint(ctx context.Context, c evidence.Checkpoint) error {
	h := c.Hash()
	_, err := s.q.ExecContext(ctx, `INSERT INTO audit_checkpoints (`+checkpointCols+`, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		c.Seq, c.Time, c.Reason, c.BatchSeq, c.BatchHash[:], c.RangeFrom, c.RangeRoot[:], c.DeletionSeq, c.DeletionHash[:],
		c.KeyID, c.Prev[:], c.Signature, h[:])
	if err != nil {
		return fmt.Errorf("store checkpoint %d: %w", c.Seq, err)
	}
	return nil
}

// SealedEvent returns the event of tenant with id in its stored form
// (personal fields sealed, pseudonym in place of the user id: what was
// hashed) and its seal position (sealed is false when the row has none),
// or audit.ErrNotFound.
func (s *EvidenceStore) SealedEvent(ctx context.Context, tenant, id string) (ev audit.Event, batchID int64, leaf int, sealed bool, err error) {
	var user, details, ip, ua, session, request, errMsg sql.NullString
	var mask sql.NullInt32
	var b sql.NullInt64
	var l sql.NullInt32
	var pseudonymous sql.NullBool
	err = s.q.QueryRowContext(ctx, `SELECT id, user_id, action, resource_type, resource_id, details::text, host(ip_address),
		masklen(ip_address), user_agent, session_id, request_id, success, error_message, occurred_at, received_at, seal_batch, seal_leaf,
		pseudonymous, personal, tenant
		FROM audit_logs WHERE id = $1 AND tenant = $2`, id, tenant).Scan(&ev.ID, &user, &ev.Action, &ev.ResourceType, &ev.ResourceID, &details, &ip,
		&mask, &ua, &session, &request, &ev.Success, &errMsg, &ev.OccurredAt, &ev.ReceivedAt, &b, &l, &pseudonymous, &ev.Personal, &ev.Tenant)
	if errors.Is(err, sql.ErrNoRows) {
		return ev, 0, 0, false, fmt.Errorf("event %s: %w", audit.EventRef(tenant, id), audit.ErrNotFound)
	}
	if err != nil {
		return ev, 0, 0, false, fmt.Errorf("read event %s: %w", audit.EventRef(tenant, id), err)
	}
	ev.UserID, ev.UserAgent, ev.SessionID, ev.RequestID, ev.ErrorMessage = user.String, ua.String, session.String, request.String, errMsg.String
	if details.Valid {
		ev.Details = []byte(details.String)
	}
	if ip.Valid {
		ev.IPAddress = ip.String
		if a, err := netip.ParseAddr(ip.String); err == nil {
			ev.IPAddress = a.String()
			if int(mask.Int32) != a.BitLen() {
				ev.IPAddress += fmt.Sprintf("/%d", mask.Int32) // a netmask no event has: the proof fails
			}
		}
	}
	ev.OccurredAt, ev.ReceivedAt = ev.OccurredAt.UTC(), ev.ReceivedAt.UTC()
	ev = storedForm(ev, pseudonymous.Bool)
	return ev, b.Int64, int(l.Int32), b.Valid && l.Valid, nil
}

// rowsSQL streams every row of audit_logs, in storage order, as binary COPY.
const rowsSQL = `COPY (SELECT id, user_id, action, resource_type, resource_id, details, ip_address, user_agent,
	session_id, request_id, success, error_message, occurred_at, received_at, seal_batch, seal_leaf, pseudonymous, personal, tenant FROM audit_logs)
	TO STDOUT (FORMAT binary)`

// RowChunk is how many rows Rows hands over at a time.
const RowChunk = 2048

// Rows streams every row of audit_logs with its seal position to fn, in
// chunks of up to RowChunk rows, from one snapshot, with no per-row query
// (binary COPY). fn may keep the chunk. It stops at fn's first error.
func (s *EvidenceStore) Rows(ctx context.Context, fn func([]evidence.SealedRow) error) error {
	conn := s.conn
	if conn == nil {
		c, err := s.db.DB.Conn(ctx)
		if err != nil {
			return fmt.Errorf("stream rows: %w", err)
		}
		defer func() { _ = c.Close() }()
		conn = c
	}
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn().PgConn()
		w := &copyRowWriter{fn: fn}
		if _, err := pc.CopyTo(ctx, w, rowsSQL); err != nil {
			if w.err != nil {
				return w.err
			}
			return fmt.Errorf("stream rows: %w", err)
		}
		if w.err != nil {
			return w.err
		}
		return w.flush()
	})
}

// copyRowWriter parses a binary COPY stream into SealedRows.
type copyRowWriter struct {
	fn      func([]evidence.SealedRow) error
	pending []byte
	header  bool
	arena   []byte
	offs    []int // tuple starts in arena
	err     error
}

var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// Write takes the next piece of the COPY stream (pgconn hands over one
// message at a time) and parses every tuple it completes.
func (w *copyRowWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.pending = append(w.pending, p...)
	buf := w.pending
	if !w.header {
		if len(buf) < 19 {
			return len(p), nil
		}
		if string(buf[:11]) != string(copySignature) {
			w.err = errors.New("stream rows: not a binary COPY stream")
			return 0, w.err
		}
		ext := int(binary.BigEndian.Uint32(buf[15:19]))
		if len(buf) < 19+ext {
			return len(p), nil
		}
		buf = buf[19+ext:]
		w.header = true
	}
	for len(buf) >= 2 {
		n := tupleLen(buf)
		if n < 0 {
			break // incomplete
		}
		if int16(binary.BigEndian.Uint16(buf)) == -1 {
			buf = buf[2:] // trailer
			continue
		}
		w.offs = append(w.offs, len(w.arena))
		w.arena = append(w.arena, buf[:n]...)
		buf = buf[n:]
		if len(w.offs) == RowChunk {
			if err := w.flush(); err != nil {
				w.err = err
				return 0, err
			}
		}
	}
	w.pending = append(w.pending[:0], buf...)
	return len(p), nil
}

// tupleLen returns the length of the complete tuple at the start of b, or
// -1 when b holds only part of it.
func tupleLen(b []byte) int {
	fields := int16(binary.BigEndian.Uint16(b))
	if fields == -1 {
		return 2
	}
	pos := 2
	for range fields {
		if len(b) < pos+4 {
			return -1
		}
		n := int32(binary.BigEndian.Uint32(b[pos:]))
		pos += 4
		if n > 0 {
			pos += int(n)
		}
	}
	if pos > len(b) {
		return -1
	}
	return pos
}

// flush decodes the collected tuples (their strings point into the arena,
// which is never written again) and hands them to fn.
func (w *copyRowWriter) flush() error {
	if len(w.offs) == 0 {
		return nil
	}
	arena := w.arena
	rows := make([]evidence.SealedRow, len(w.offs))
	for i, off := range w.offs {
		rows[i] = decodeTuple(arena[off:])
	}
	w.arena = make([]byte, 0, cap(arena))
	w.offs = w.offs[:0]
	return w.fn(rows)
}

// pgEpochMicros is 2000-01-01T00:00:00Z in Unix microseconds.
const pgEpochMicros = 946684800000000

// decodeTuple reads one binary COPY tuple of rowsSQL's columns.
func decodeTuple(b []byte) evidence.SealedRow {
	var r evidence.SealedRow
	pos := 2
	field := func() ([]byte, bool) {
		n := int32(binary.BigEndian.Uint32(b[pos:]))
		pos += 4
		if n < 0 {
			return nil, false
		}
		v := b[pos : pos+int(n)]
		pos += int(n)
		return v, true
	}
	str := func() string {
		v, ok := field()
		if !ok || len(v) == 0 {
			return ""
		}
		return unsafe.String(&v[0], len(v))
	}
	ts := func() time.Time {
		v, ok := field()
		if !ok || len(v) != 8 {
			return time.Time{}
		}
		return time.UnixMicro(int64(binary.BigEndian.Uint64(v)) + pgEpochMicros).UTC()
	}
	e := &r.Event
	e.ID = str()
	e.UserID = str()
	e.Action = str()
	e.ResourceType = str()
	e.ResourceID = str()
	if v, ok := field(); ok {
		if len(v) == 0 || v[0] != 1 {
			r.Err = errors.New("details: unknown jsonb binary version")
		} else {
			e.Details = v[1:]
		}
	}
	if v, ok := field(); ok {
		// inet: family, bits, is_cidr, length, address
		var a netip.Addr
		if len(v) == 8 && v[0] == 2 {
			a = netip.AddrFrom4([4]byte(v[4:8]))
		} else if len(v) == 20 && v[0] == 3 {
			a = netip.AddrFrom16([16]byte(v[4:20]))
		}
		switch {
		case !a.IsValid():
			r.Err = errors.New("ip_address: not an IPv4 or IPv6 address")
		case int(v[1]) != a.BitLen() || v[2] != 0:
			r.Err = fmt.Errorf("ip_address: %s has a netmask /%d (modified)", a, v[1])
		default:
			e.IPAddress = a.String()
		}
	}
	e.UserAgent = str()
	e.SessionID = str()
	e.RequestID = str()
	if v, ok := field(); ok && len(v) == 1 {
		e.Success = v[0] != 0
	}
	e.ErrorMessage = str()
	e.OccurredAt = ts()
	e.ReceivedAt = ts()
	bv, bok := field()
	lv, lok := field()
	if bok && lok && len(bv) == 8 && len(lv) == 4 {
		r.Sealed = true
		r.Batch = int64(binary.BigEndian.Uint64(bv))
		r.Leaf = int(int32(binary.BigEndian.Uint32(lv)))
	}
	if v, ok := field(); ok && len(v) == 1 && v[0] != 0 {
		e.Pseudonym, e.UserID = e.UserID, ""
	}
	if v, ok := field(); ok {
		e.Personal = v
	}
	e.Tenant = str()
	return r
}

// ErasedEvents counts the rows whose sealed personal fields can no longer
// be decrypted: the subject key they name (bytes 2 to 9 of personal) was
// destroyed by an erasure.
func (s *EvidenceStore) ErasedEvents(ctx context.Context) (int64, error) {
	var n int64
	err := s.q.QueryRowContext(ctx, `SELECT count(*) FROM audit_logs a WHERE a.personal IS NOT NULL AND NOT EXISTS
		(SELECT 1 FROM audit_subject_keys k WHERE k.id = ('x' || encode(substring(a.personal FROM 2 FOR 8), 'hex'))::bit(64)::bigint)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count erased events: %w", err)
	}
	return n, nil
}
