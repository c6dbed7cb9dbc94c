package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/domain/audit"
)

// StreamStore keeps the cursors of the log streams in audit_streams and
// reads the events in commit order: the chain positions of audit_batches
// (seq), then the leaf index within a batch. A batch gets its position
// only after it committed, under the chain-head row lock, so the
// positions visible to a reader are always a gapless prefix: a cursor
// never passes a batch that commits later.
type StreamStore struct {
	db *bun.DB

	// The rows of the batches this instance committed last (committed)
	// and of those its streams read last, shared by the streams of this
	// instance, which read the same batches at about the same time.
	// reading is held by the reader that looks up and reads rows, so that
	// streams reading at the same moment (woken by the same commits) wait
	// for one read of the rows rather than each make their own.
	reading sync.Mutex
	mu      sync.Mutex
	cached  map[int64]*cachedBatch // by batch id
	order   []cachedRef            // oldest first; an entry whose batch left cached is skipped
	events  int                    // rows in cached
	entries uint64                 // batches put into cached so far, numbering them
	// readers is how many streams of this instance read every batch
	// (SetReaders): a batch that many reads went past leaves the cache
	// at once. 0: the batches leave only at the bounds.
	readers int
}

// cachedBatch is the rows of one batch in the form sealedRows reads
// them. seq is their chain position once a read set it in every row (0
// before: a batch enters from committed before it is chained). passed
// counts the reads that went past its end; entry numbers its entry into
// the cache.
type cachedBatch struct {
	rows   []audit.SealedEvent
	seq    int64
	passed int
	entry  uint64
}

// cachedRef is a batch in the cache's order of entry, by its id and entry
// number: no pointer to the rows, so that a batch that left the cache is
// garbage while its entry waits in order.
type cachedRef struct {
	id    int64
	entry uint64
}

// The cache keeps the rows of at most cachedBatches batches and, beyond
// the newest batch, at most cachedEvents rows: enough for the streams of
// an instance, which read the batches the instance committed within a
// poll interval (250 ms) of their commit (16,384 rows cover 65,000
// events/s; group commits of single events, a few dozen rows each, come
// hundreds a second), and small enough that the garbage collector's work
// on the live heap stays small (a batch of a bulk job holds up to 1,000
// rows). A batch that every stream of the instance has read leaves it
// before that (SetReaders): under the soft memory limit each megabyte
// the cache keeps live makes the collector run more often.
const (
	cachedBatches = 1024
	cachedEvents  = 16384
)

var _ audit.StreamStore = (*StreamStore)(nil)

// NewStreamStore returns a StreamStore over db, whose schema must be
// migrated.
func NewStreamStore(db *bun.DB) *StreamStore {
	return &StreamStore{db: db, cached: map[int64]*cachedBatch{}}
}

// rowsOf returns the rows of the batches ids (leaves: each one's leaf
// count, to size the slices), from the cache where it has them: pointers
// to rows shared with every other reader (nothing changes them), in a
// slice of its own that the caller may reorder. Chained batches never
// change; a row retention deletes meanwhile may still be delivered from
// the cache. A reader whose batches are all cached never waits for
// another's read from PostgreSQL.
func (s *StreamStore) rowsOf(ctx context.Context, ids []int64, seqOf map[int64]int64, leaves map[int64]int) ([]*audit.SealedEvent, error) {
	if out, missing, _ := s.lookup(ids, seqOf, leaves); len(missing) == 0 {
		return out, nil
	}
	s.reading.Lock()
	defer s.reading.Unlock()
	// The reader this one waited for may have read the same batches.
	out, missing, missingRows := s.lookup(ids, seqOf, leaves)
	if len(missing) == 0 {
		return out, nil
	}
	evs, err := s.sealedRows(ctx, missing, seqOf, missingRows)
	if err != nil {
		return nil, err
	}
	// The cache holds each batch as a part of evs, which nothing changes
	// from here on.
	slices.SortFunc(evs, func(a, b audit.SealedEvent) int {
		return cmp.Or(cmp.Compare(a.Seal.BatchID, b.Seal.BatchID), cmp.Compare(a.Seal.Leaf, b.Seal.Leaf))
	})
	byBatch := make(map[int64][]audit.SealedEvent, len(missing))
	for start := 0; start < len(evs); {
		end := start + 1
		for end < len(evs) && evs[end].Seal.BatchID == evs[start].Seal.BatchID {
			end++
		}
		byBatch[evs[start].Seal.BatchID] = evs[start:end:end]
		start = end
	}
	s.mu.Lock()
	for _, id := range missing {
		s.keep(id, &cachedBatch{rows: byBatch[id], seq: seqOf[id]})
	}
	s.mu.Unlock()
	for i := range evs {
		out = append(out, &evs[i])
	}
	return out, nil
}

// lookup returns the cached rows of the batches ids, and the ids of
// those not cached with their leaf count. The rows of a batch that came
// from committed get their chain position (seqOf) here, before any reader
// sees them.
func (s *StreamStore) lookup(ids []int64, seqOf map[int64]int64, leaves map[int64]int) (out []*audit.SealedEvent, missing []int64, missingRows int) {
	total := 0
	for _, id := range ids {
		total += leaves[id]
	}
	out = make([]*audit.SealedEvent, 0, total)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		b, ok := s.cached[id]
		if !ok {
			missing = append(missing, id)
			missingRows += leaves[id]
			continue
		}
		if b.seq == 0 {
			b.seq = seqOf[id]
			for i := range b.rows {
				b.rows[i].Seal.BatchSeq = b.seq
			}
		}
		for i := range b.rows {
			out = append(out, &b.rows[i])
		}
	}
	return out, missing, missingRows
}

// keep puts batch id into the cache unless it is there already (a batch
// never changes: both forms of it are the same rows), and evicts the
// oldest batches beyond the bounds (and order's entries beyond twice
// cachedBatches, whether their batches are still cached or not). s.mu
// must be held.
func (s *StreamStore) keep(id int64, b *cachedBatch) {
	if _, ok := s.cached[id]; ok {
		return
	}
	s.entries++
	b.entry = s.entries
	s.cached[id] = b
	s.order = append(s.order, cachedRef{id, b.entry})
	s.events += len(b.rows)
	for len(s.cached) > cachedBatches || (len(s.cached) > 1 && s.events > cachedEvents) || len(s.order) > 2*cachedBatches {
		s.drop(s.order[0])
		s.order = s.order[1:]
	}
}

// drop removes the batch of ref from the cache if ref's batch is still
// there. s.mu must be held.
func (s *StreamStore) drop(ref cachedRef) {
	if b, ok := s.cached[ref.id]; ok && b.entry == ref.entry {
		s.events -= len(b.rows)
		delete(s.cached, ref.id)
	}
}

// SetReaders tells the store that n streams of this instance read every
// batch (its streams that are not paused): a cached batch that n reads
// went past leaves the cache then, not only at its bounds. A batch read
// again after that (a stream that lost its lease and reads from its
// cursor again) is read from PostgreSQL.
func (s *StreamStore) SetReaders(n int) {
	s.mu.Lock()
	s.readers = n
	s.mu.Unlock()
}

// passedAll counts a read that went past the end of the batches ids, and
// evicts those that every reader has passed.
func (s *StreamStore) passedAll(ids []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readers == 0 {
		return
	}
	for _, id := range ids {
		b, ok := s.cached[id]
		if !ok {
			continue
		}
		if b.passed++; b.passed >= s.readers {
			s.drop(cachedRef{id, b.entry})
		}
	}
	for len(s.order) > 0 {
		if b, ok := s.cached[s.order[0].id]; ok && b.entry == s.order[0].entry {
			break
		}
		s.order = s.order[1:]
	}
}

// storedRows returns the rows that sealing batch id stores for the
// events (in their stored form, as hashed) at the indexes inserted, each
// at its index as its leaf, in the form sealedRows reads them back:
// times in UTC at microsecond precision, IP addresses as canonicalIP
// gives them, details as jsonb::text prints them, a pseudonym in
// Pseudonym with UserID empty. The rows' text sits in one string and
// their details and personal fields in one slice, copies that keep
// nothing else of the events alive while the rows are cached. False when
// an event's details have no form it can compute (they are then read
// from PostgreSQL).
func storedRows(id int64, events []audit.Event, inserted []int) ([]audit.SealedEvent, bool) {
	out := make([]audit.SealedEvent, len(inserted))
	var buf []byte // every row's details, then personal fields
	var text strings.Builder
	size := 0
	for _, i := range inserted {
		e := &events[i]
		size += len(e.ID) + len(e.UserID) + len(e.Pseudonym) + len(e.Action) + len(e.ResourceType) + len(e.ResourceID) +
			len(e.UserAgent) + len(e.SessionID) + len(e.RequestID) + len(e.ErrorMessage) + len(e.Tenant) + len(e.IPAddress)
	}
	text.Grow(size)
	type span struct{ details, personal [2]int }
	spans := make([]span, len(inserted))
	var jsonb jsonbParser // one working space for every row's details
	for n, i := range inserted {
		e := &events[i]
		if e.Details != nil {
			start := len(buf)
			var err error
			if buf, err = jsonb.appendText(buf, e.Details); err != nil {
				return nil, false
			}
			spans[n].details = [2]int{start, len(buf)}
		}
	}
	for n, i := range inserted {
		if p := events[i].Personal; p != nil {
			spans[n].personal = [2]int{len(buf), len(buf) + len(p)}
			buf = append(buf, p...)
		}
	}
	// The text of every row, field by field, then cut into its strings.
	type fields [11]string
	fieldsOf := func(e *audit.Event, ip string) fields {
		f := fields{e.ID, e.UserID, e.Action, e.ResourceType, e.ResourceID, ip, e.UserAgent, e.SessionID, e.RequestID, e.ErrorMessage, e.Tenant}
		if e.Pseudonym != "" {
			f[1] = e.Pseudonym
		}
		return f
	}
	ips := make([]string, len(inserted)) // the rows' addresses in the form PostgreSQL gives them back
	for n, i := range inserted {
		e := &events[i]
		if e.IPAddress != "" {
			if ips[n] = canonicalIP(e.IPAddress); ips[n] == "" {
				return nil, false
			}
		}
		for _, v := range fieldsOf(e, ips[n]) {
			text.WriteString(v)
		}
	}
	joined, at := text.String(), 0
	for n, i := range inserted {
		e := &events[i]
		var f fields
		for k, v := range fieldsOf(e, ips[n]) {
			f[k], at = joined[at:at+len(v)], at+len(v)
		}
		r := audit.Event{
			ID: f[0], UserID: f[1], Action: f[2], ResourceType: f[3], ResourceID: f[4], IPAddress: f[5],
			UserAgent: f[6], SessionID: f[7], RequestID: f[8], Success: e.Success, ErrorMessage: f[9], Tenant: f[10],
			OccurredAt: e.OccurredAt.UTC().Truncate(time.Microsecond), ReceivedAt: e.ReceivedAt.UTC().Truncate(time.Microsecond),
		}
		if e.Pseudonym != "" {
			r.UserID, r.Pseudonym = "", f[1]
		}
		if d := spans[n].details; e.Details != nil {
			r.Details = json.RawMessage(buf[d[0]:d[1]:d[1]])
		}
		if p := spans[n].personal; e.Personal != nil {
			r.Personal = buf[p[0]:p[1]:p[1]]
			if r.Personal == nil {
				r.Personal = []byte{} // an empty bytea reads back empty, not NULL
			}
		}
		out[n] = audit.SealedEvent{Event: r, Seal: audit.Seal{BatchID: id, Leaf: i}}
	}
	return out, true
}

// committed puts the rows of batch id, which this instance committed
// (storedRows), into the cache the streams read, so that they read only
// the batch's position from PostgreSQL. The Sealer calls it once the
// batch's transaction committed, never for one that did not.
func (s *StreamStore) committed(id int64, rows []audit.SealedEvent) {
	s.mu.Lock()
	s.keep(id, &cachedBatch{rows: rows})
	s.mu.Unlock()
}

// Claim takes stream name's lease for owner (creating its row at
// audit.StreamStart) when it is free, expired or owner's already, and
// returns the cursor; false when another owner holds it.
func (s *StreamStore) Claim(ctx context.Context, name, owner string, lease time.Duration) (audit.StreamCursor, bool, error) {
	var c audit.StreamCursor
	err := s.db.DB.QueryRowContext(ctx, `INSERT INTO audit_streams AS s (name, owner, lease_until)
		VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
		WHERE s.owner = excluded.owner OR s.owner IS NULL OR s.lease_until < now()
		RETURNING next_seq, after_leaf`, name, owner, lease.Milliseconds()).Scan(&c.NextSeq, &c.AfterLeaf)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("claim stream %s: %w", name, err)
	}
	return c, true, nil
}

// readBatches is how many batches one Read looks at most.
const readBatches = 64

// Read returns up to max events after c in commit order (whole batches,
// except that one batch larger than what is left of max is cut), and the
// cursor after them. Leaves of batches it passed whose rows are gone
// (retention deleted them before delivery) are counted in Skipped.
func (s *StreamStore) Read(ctx context.Context, c audit.StreamCursor, max int) (audit.StreamRead, error) {
	out := audit.StreamRead{Next: c}
	type batch struct {
		id, seq int64
		leaves  int
	}
	rows, err := s.db.DB.QueryContext(ctx, `SELECT id, seq, leaf_count FROM audit_batches
		WHERE seq >= $1 ORDER BY seq LIMIT $2`, c.NextSeq, readBatches)
	if err != nil {
		return out, fmt.Errorf("read stream batches: %w", err)
	}
	var batches []batch
	sum, seen := 0, 0
	for rows.Next() {
		var b batch
		if err := rows.Scan(&b.id, &b.seq, &b.leaves); err != nil {
			_ = rows.Close()
			return out, fmt.Errorf("read stream batches: %w", err)
		}
		seen++
		if len(batches) > 0 && (sum+b.leaves > max || b.seq != batches[len(batches)-1].seq+1) {
			out.More = true // a chained batch follows the ones taken
			break
		}
		batches = append(batches, b)
		sum += b.leaves
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return out, fmt.Errorf("read stream batches: %w", err)
	}
	if len(batches) == 0 || batches[0].seq != c.NextSeq {
		return audit.StreamRead{Next: c}, nil // nothing committed after c yet
	}
	out.More = out.More || seen == readBatches
	ids := make([]int64, len(batches))
	seqOf := make(map[int64]int64, len(batches))
	leaves := make(map[int64]int, len(batches))
	for i, b := range batches {
		ids[i], seqOf[b.id], leaves[b.id] = b.id, b.seq, b.leaves
	}
	evs, err := s.rowsOf(ctx, ids, seqOf, leaves)
	if err != nil {
		return out, err
	}
	bySeal := func(a, b *audit.SealedEvent) int {
		return cmp.Or(cmp.Compare(a.Seal.BatchSeq, b.Seal.BatchSeq), cmp.Compare(a.Seal.Leaf, b.Seal.Leaf))
	}
	if !slices.IsSortedFunc(evs, bySeal) { // usually sorted: batch ids mostly follow the chain order
		slices.SortFunc(evs, bySeal)
	}
	found := make(map[int64]int, len(batches)) // rows found per batch id
	for _, e := range evs {
		found[e.Seal.BatchID]++
	}
	kept := evs[:0]
	for _, e := range evs {
		if e.Seal.BatchSeq == c.NextSeq && e.Seal.Leaf <= c.AfterLeaf {
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) > max { // one batch larger than max: deliver part of it
		kept, out.More = kept[:max], true
		last := kept[max-1].Seal
		out.Events, out.Next = kept, audit.StreamCursor{NextSeq: last.BatchSeq, AfterLeaf: last.Leaf}
		if last.BatchSeq == c.NextSeq {
			return out, nil
		}
		// The batches before the cut one are passed whole.
		batches = batches[:last.BatchSeq-c.NextSeq]
	} else {
		out.Events = kept
		out.Next = audit.StreamCursor{NextSeq: batches[len(batches)-1].seq + 1, AfterLeaf: -1}
	}
	var short []int64
	for _, b := range batches {
		if found[b.id] < b.leaves {
			short = append(short, b.id)
		}
	}
	if out.Skipped, err = s.missing(ctx, short, found); err != nil {
		return out, err
	}
	passed := make([]int64, 0, len(batches))
	for _, b := range batches {
		passed = append(passed, b.id)
	}
	s.passedAll(passed)
	return out, nil
}

// sealedRows reads the rows of the batches ids, about rows of them, in
// their stored form (Personal.Reveal turns them into what reads show). It
// scans with pgx directly, without database/sql's conversions, and the
// text of each row into one string that its fields share (two
// allocations a row, details apart): the streams read back every
// committed row.
func (s *StreamStore) sealedRows(ctx context.Context, ids []int64, seqOf map[int64]int64, rows int) ([]audit.SealedEvent, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("read stream events: %w", err)
	}
	defer func() { _ = conn.Close() }()
	out := make([]audit.SealedEvent, 0, rows)
	err = conn.Raw(func(dc any) error {
		rows, err := dc.(*stdlib.Conn).Conn().Query(ctx, `SELECT id, coalesce(user_id, ''), action, resource_type, resource_id,
			details::text, coalesce(host(ip_address), ''), coalesce(user_agent, ''), coalesce(session_id, ''),
			coalesce(request_id, ''), success, coalesce(error_message, ''), occurred_at, received_at, seal_batch, seal_leaf, tenant,
			coalesce(pseudonymous, false), personal
			FROM audit_logs WHERE seal_batch = ANY($1)`, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		// The text columns, in the driver's memory until the next row, and
		// the others, scanned into the same variables row after row (a new
		// set of destinations per row would cost an allocation or two).
		var (
			text         [rowTexts]pgtype.DriverBytes
			details      pgtype.DriverBytes
			pseudonymous bool
			row          audit.SealedEvent
		)
		dest := []any{&text[0], &text[1], &text[2], &text[3], &text[4], &details, &text[5], &text[6],
			&text[7], &text[8], &row.Success, &text[9], &row.OccurredAt, &row.ReceivedAt, &row.Seal.BatchID, &row.Seal.Leaf, &text[10],
			&pseudonymous, &row.Personal}
		var scratch []byte // the row's text, before it becomes its string
		var ends [rowTexts]int
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			scratch = scratch[:0]
			for i, t := range text {
				scratch = append(scratch, t...)
				ends[i] = len(scratch)
			}
			all := string(scratch)
			var f [rowTexts]string
			for i, start := 0, 0; i < rowTexts; i++ {
				f[i], start = all[start:ends[i]], ends[i]
			}
			e := row
			e.ID, e.UserID, e.Action, e.ResourceType, e.ResourceID = f[0], f[1], f[2], f[3], f[4]
			e.UserAgent, e.SessionID, e.RequestID, e.ErrorMessage, e.Tenant = f[6], f[7], f[8], f[9], f[10]
			e.IPAddress = canonicalIP(f[5])
			e.Event = storedForm(e.Event, pseudonymous)
			if len(details) > 0 {
				e.Details = append([]byte(nil), details...) // its own bytes, kept as the event's
			}
			e.OccurredAt, e.ReceivedAt = e.OccurredAt.UTC(), e.ReceivedAt.UTC()
			e.Seal.BatchSeq = seqOf[e.Seal.BatchID]
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read stream events: %w", err)
	}
	return out, nil
}

// rowTexts is how many text columns sealedRows reads into a row's string.
const rowTexts = 11

// canonicalIP returns ip (PostgreSQL's host() of an inet) in the form
// netip.Addr.String gives, ip itself when it is that already (no
// allocation); "" for "" or what does not parse.
func canonicalIP(ip string) string {
	a, err := netip.ParseAddr(ip)
	if ip == "" || err != nil {
		return ""
	}
	var buf [64]byte
	if c := a.AppendTo(buf[:0]); string(c) != ip {
		return a.String()
	}
	return ip
}

// missing counts the sealed leaves of the batches ids that have no row:
// a leaf of a duplicate event is all zeros and had no row to begin with.
func (s *StreamStore) missing(ctx context.Context, ids []int64, found map[int64]int) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	rows, err := s.db.DB.QueryContext(ctx, `SELECT id, leaves FROM audit_batches WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, fmt.Errorf("read stream batch leaves: %w", err)
	}
	defer func() { _ = rows.Close() }()
	n := 0
	var zero [32]byte
	for rows.Next() {
		var id int64
		var leaves []byte
		if err := rows.Scan(&id, &leaves); err != nil {
			return 0, fmt.Errorf("read stream batch leaves: %w", err)
		}
		sealed := 0
		for i := 0; i+32 <= len(leaves); i += 32 {
			if [32]byte(leaves[i:i+32]) != zero {
				sealed++
			}
		}
		n += max(sealed-found[id], 0)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read stream batch leaves: %w", err)
	}
	return n, nil
}

// Advance stores cursor to after a confirmed delivery, marks the stream
// active and renews the lease; audit.ErrLeaseLost when owner lost it.
func (s *StreamStore) Advance(ctx context.Context, name, owner string, to audit.StreamCursor, delivered, skipped int, lease time.Duration) error {
	res, err := s.execAsync(ctx, `UPDATE audit_streams SET next_seq = $3, after_leaf = $4,
		delivered = delivered + $5, skipped = skipped + $6, state = 'active', last_error = NULL,
		delivered_at = CASE WHEN $5 > 0 THEN now() ELSE delivered_at END,
		lease_until = now() + $7 * interval '1 millisecond'
		WHERE name = $1 AND owner = $2`, name, owner, to.NextSeq, to.AfterLeaf, delivered, skipped, lease.Milliseconds())
	return leaseResult(res, err, "advance stream "+name)
}

// Fail records a failed delivery attempt with its reason, marks the
// stream retrying and renews the lease; audit.ErrLeaseLost when owner
// lost it.
func (s *StreamStore) Fail(ctx context.Context, name, owner, reason string, lease time.Duration) error {
	res, err := s.execAsync(ctx, `UPDATE audit_streams SET state = 'retrying', last_error = $3,
		last_error_at = now(), failed = failed + 1, lease_until = now() + $4 * interval '1 millisecond'
		WHERE name = $1 AND owner = $2`, name, owner, reason, lease.Milliseconds())
	return leaseResult(res, err, "record stream failure of "+name)
}

// execAsync runs one statement in a transaction that commits without
// waiting for its WAL flush (synchronous_commit off), so the cursor
// updates never queue behind ingest's flushes, and returns the rows it
// changed. A crash may lose the last of them: the cursor then stands a
// little behind, and the stream sends those events again; it never
// stands ahead of what was delivered. The transaction goes in one round
// trip (a pipeline of BEGIN, SET LOCAL, the statement and COMMIT): each
// stream runs it after every delivery.
func (s *StreamStore) execAsync(ctx context.Context, query string, args ...any) (int64, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	var changed int64
	err = conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit = off")
		b.Queue(query, args...)
		b.Queue("COMMIT")
		res := c.SendBatch(ctx, b)
		var tag pgconn.CommandTag
		var err error
		for i := 0; i < 4 && err == nil; i++ {
			if tag, err = res.Exec(); i == 2 {
				changed = tag.RowsAffected()
			}
		}
		if cerr := res.Close(); err == nil {
			err = cerr
		}
		if err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("the commit did not happen (%s)", tag)
		}
		if err != nil && !c.IsClosed() {
			// A failed statement leaves the transaction open and aborted.
			_, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
		return err
	})
	return changed, err
}

func leaseResult(changed int64, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if changed == 0 {
		return fmt.Errorf("%s: %w", what, audit.ErrLeaseLost)
	}
	return nil
}

// States returns every stream in audit_streams, by name, with its lag:
// the leaves of the batches not yet delivered, chained or not (the part of
// a partly delivered batch already sent left out), and the sealing time of
// the oldest of them.
func (s *StreamStore) States(ctx context.Context) ([]audit.StreamState, error) {
	rows, err := s.db.DB.QueryContext(ctx, `SELECT name, next_seq, after_leaf, state, coalesce(last_error, ''),
		last_error_at, delivered_at, delivered, failed, skipped, coalesce(owner, ''), lease_until
		FROM audit_streams ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	var out []audit.StreamState
	for rows.Next() {
		var st audit.StreamState
		var errAt, delAt, lease sql.NullTime
		if err := rows.Scan(&st.Name, &st.Cursor.NextSeq, &st.Cursor.AfterLeaf, &st.State, &st.LastError, &errAt, &delAt,
			&st.Delivered, &st.Failed, &st.Skipped, &st.Owner, &lease); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("list streams: %w", err)
		}
		st.LastErrorAt, st.DeliveredAt, st.LeaseUntil = errAt.Time.UTC(), delAt.Time.UTC(), lease.Time.UTC()
		out = append(out, st)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	for i := range out {
		if err := s.lag(ctx, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lag fills st's lag from audit_batches.
func (s *StreamStore) lag(ctx context.Context, st *audit.StreamState) error {
	var n int64
	var since sql.NullTime
	err := s.db.DB.QueryRowContext(ctx, `SELECT coalesce(sum(leaf_count), 0), min(sealed_at) FROM (
		SELECT leaf_count, sealed_at FROM audit_batches WHERE seq >= $1
		UNION ALL SELECT leaf_count, sealed_at FROM audit_batches WHERE seq IS NULL) b`, st.Cursor.NextSeq).Scan(&n, &since)
	if err != nil {
		return fmt.Errorf("lag of stream %s: %w", st.Name, err)
	}
	if n > 0 {
		n = max(n-int64(st.Cursor.AfterLeaf+1), 0)
	}
	st.LagEvents, st.LagSince = n, since.Time.UTC()
	return nil
}
