package postgres_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/migrations"
)

// BenchmarkWriteAtScale floods the service's write path (group-commit
// batcher, tamper evidence, the chainer and the roller running, the
// service's 8 connections, 2,048 writers at once as AUDITQ_CONCURRENCY's
// default lets in) with AUDITQ_BENCH_SCALE_EVENTS singles (default 20,000)
// and reports what PostgreSQL spent per event: the CPU of the database's
// own backends (and, for comparison, every PostgreSQL process's, other
// databases' and background work included), the WAL of the database's
// relations (read with pg_walinspect, which it creates there) and, in the
// log (-v), each relation's WAL, full-page images and blocks read and hit.
// The table is a new database's, with AUDITQ_BENCH_SCALE_ROWS rows COPYed
// in first (default 0), or that of the database AUDITQ_BENCH_SCALE_URL,
// which is kept (prefilled with AUDITQ_BENCH_SCALE_ROWS rows when its
// table is empty, so that later runs reuse it). Event ids are a common
// prefix and a counter (ids=counter, as `auditq bench` sends them), 32
// random hex digits (ids=random, as the Go client made them before) or 32
// hex digits starting with the time in milliseconds (ids=time, as it makes
// them now); users, resources and times as `auditq bench` sends them.
//
//	AUDITQ_BENCH_SCALE_ROWS=0 go test -v -run '^$' -bench WriteAtScale -benchtime 2x ./adapters/postgres/
//	AUDITQ_BENCH_SCALE_URL=postgres://postgres@127.0.0.1:5432/big AUDITQ_BENCH_SCALE_ROWS=3000000 go test -v -run '^$' -bench WriteAtScale -benchtime 2x -timeout 1h ./adapters/postgres/
func BenchmarkWriteAtScale(b *testing.B) {
	if os.Getenv("AUDITQ_BENCH_SCALE_URL") == "" && os.Getenv("AUDITQ_BENCH_SCALE_ROWS") == "" {
		b.Skip("set AUDITQ_BENCH_SCALE_ROWS (e.g. 0 or 3000000) or AUDITQ_BENCH_SCALE_URL to run")
	}
	ctx := context.Background()
	url := os.Getenv("AUDITQ_BENCH_SCALE_URL")
	if url == "" {
		url = pgtest.NewDatabase(b)
	}
	events := 20000
	if n, err := strconv.Atoi(os.Getenv("AUDITQ_BENCH_SCALE_EVENTS")); err == nil && n > 0 {
		events = n
	}
	db, err := postgres.Open(ctx, url, 3)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if err := migrations.Up(ctx, db); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err != nil {
		b.Fatal(err)
	}
	var empty bool
	if err := db.QueryRowContext(ctx, "SELECT NOT EXISTS (SELECT 1 FROM audit_logs)").Scan(&empty); err != nil {
		b.Fatal(err)
	}
	if rows, _ := strconv.Atoi(os.Getenv("AUDITQ_BENCH_SCALE_ROWS")); rows > 0 && empty {
		prefillScale(b, url, rows)
	}
	// Stale hours would be rolled during the floods.
	if _, err := mustRoller(b, db, postgres.RollerConfig{}).RollAll(ctx); err != nil {
		b.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	signer := evidence.NewSigner(priv)
	readIO(b, db, nil)
	for _, ids := range []string{"counter", "random", "time"} {
		b.Run("ids="+ids, func(b *testing.B) {
			var sum scaleCost
			for b.Loop() {
				sum = sum.add(floodScale(b, db, url, signer, ids, events))
			}
			sum.report(b, b.N*events)
		})
	}
}

// floodScale writes events singles through a service-like write path on
// a pool of its own and returns what PostgreSQL spent on them.
func floodScale(b *testing.B, admin *bun.DB, url string, signer *evidence.Signer, ids string, events int) scaleCost {
	b.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, url, 8)
	if err != nil {
		b.Fatal(err)
	}
	// Every connection open first, so that their backends' CPU is counted
	// from here.
	var conns []bun.Conn
	for range 8 {
		c, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	// A temporary replication slot keeps the server from recycling the
	// flood's WAL before it is read; it is dropped once it is.
	slot, err := admin.DB.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = slot.Close() }()
	if _, err := slot.ExecContext(ctx, `SELECT pg_create_physical_replication_slot('auditq_scale_' || pg_backend_pid(), true, true)`); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_, _ = slot.ExecContext(ctx, `SELECT pg_drop_replication_slot('auditq_scale_' || pg_backend_pid())`)
	}()
	before := snapshotScale(b, admin)
	wal := newWALReader(b, admin, before.lsn)
	sealer := postgres.NewSealer(db, signer)
	batcher, err := postgres.NewBatcher(postgres.NewRepository(db).WithSealer(sealer), postgres.BatcherConfig{})
	if err != nil {
		b.Fatal(err)
	}
	roller, err := postgres.NewRoller(db, postgres.RollerConfig{Lag: postgres.DefaultRollupLag})
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	stopRolling := roller.Start(time.Minute, quiet)
	stopChaining := sealer.StartChaining(time.Second, quiet)
	prefix := fmt.Sprintf("scale-%d-", time.Now().UnixNano())
	now := audit.Normalize(time.Now())
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 2048 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= events {
					return
				}
				id := prefix + strconv.Itoa(i)
				if ids != "counter" {
					var u [16]byte
					_, _ = rand.Read(u[:])
					if ids == "time" { // as the Go client makes them: the time in ms first
						ms := uint64(time.Now().UnixMilli())
						for k := range 6 {
							u[k] = byte(ms >> (40 - 8*k))
						}
					}
					id = hex.EncodeToString(u[:])
				}
				if _, err := batcher.Write(ctx, []audit.Event{scaleEvent(id, i, now)}); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	_ = batcher.Close()
	stopChaining()
	stopRolling()
	after := snapshotScale(b, admin)
	wal.readTo(ctx, after.lsn)
	if wal.err != nil {
		b.Fatal(wal.err)
	}
	// Closing the pool ends its backends, which flushes their statistics.
	_ = db.Close()
	time.Sleep(time.Second)
	return diffScale(b, admin, before, after, wal.cost)
}

func scaleEvent(id string, i int, at time.Time) audit.Event {
	return audit.Event{
		ID: id, UserID: "user-" + strconv.Itoa(i%1000), Action: scaleActions[i%len(scaleActions)],
		ResourceType: scaleResourceTypes[i%len(scaleResourceTypes)], ResourceID: "res-" + strconv.Itoa(i%5000),
		Details:   json.RawMessage(`{"field":"settings.name","old":"alpha","new":"beta","reason":"benchmark"}`),
		IPAddress: "203.0.113." + strconv.Itoa(i%250), UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
		SessionID: "sess-" + strconv.Itoa(i%20000), RequestID: "req-" + strconv.Itoa(i), Success: i%17 != 0,
		OccurredAt: at, ReceivedAt: at,
	}
}

var (
	scaleActions       = []string{"user.login", "user.logout", "guild.update", "guild.create", "settings.change", "role.assign", "message.delete", "admin.access"}
	scaleResourceTypes = []string{"user", "guild", "settings", "role", "message"}
)

// prefillScale COPYs rows synthetic events, spread evenly over the last
// year in time order, into the database at url, as `auditq bench
// -prefill` does but with random ids (so that random ids written later
// land all over the primary key), then VACUUMs and ANALYZEs the table.
func prefillScale(b *testing.B, url string, rows int) {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	now := time.Now().UTC()
	span := int64(365 * 24 * time.Hour)
	ip := netip.MustParseAddr("198.51.100.7")
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == rows {
			return nil, nil
		}
		i++
		at := now.Add(-time.Duration(span - span/int64(rows)*int64(i)))
		var user any = "user-" + strconv.Itoa(i%1000)
		if i%50 == 0 {
			user = nil
		}
		var id [16]byte
		_, _ = rand.Read(id[:])
		return []any{hex.EncodeToString(id[:]), user, scaleActions[i%len(scaleActions)], scaleResourceTypes[i%len(scaleResourceTypes)],
			"res-" + strconv.Itoa(i%5000), `{"field":"settings.name","old":"alpha","new":"beta"}`, ip, "Mozilla/5.0", "sess",
			"req-" + strconv.Itoa(i), i%17 != 0, nil, at, at}, nil
	})
	cols := []string{"id", "user_id", "action", "resource_type", "resource_id", "details", "ip_address",
		"user_agent", "session_id", "request_id", "success", "error_message", "occurred_at", "received_at"}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"audit_logs"}, cols, src); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, markRowHoursSQL); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) audit_logs"); err != nil {
		b.Fatal(err)
	}
}

// scaleSnapshot is the state before or after a flood: the database's
// backends' CPU, the WAL position and the server's buffer counters.
type scaleSnapshot struct {
	cpu    map[int]time.Duration // by backend pid
	server time.Duration         // every live PostgreSQL process's, all databases and background work

	lsn     string
	backend int64 // pg_stat_bgwriter.buffers_backend, whole server
	ckpt    int64 // checkpoints, whole server
}

func snapshotScale(b *testing.B, admin *bun.DB) scaleSnapshot {
	b.Helper()
	ctx := context.Background()
	s := scaleSnapshot{cpu: map[int]time.Duration{}}
	rows, err := admin.DB.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		s.cpu[pid] = procTime(pid)
	}
	_ = rows.Close()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if comm, err := os.ReadFile(filepath.Join(d, "comm")); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			pid, _ := strconv.Atoi(filepath.Base(d))
			s.server += procTime(pid)
			if raw, err := os.ReadFile(filepath.Join(d, "stat")); err == nil {
				// The postmaster's waited-for children: the exited processes.
				f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
				if pcomm, err := os.ReadFile(filepath.Join("/proc", f[1], "comm")); err != nil || strings.TrimSpace(string(pcomm)) != "postgres" {
					cut, _ := strconv.ParseInt(f[13], 10, 64)
					cst, _ := strconv.ParseInt(f[14], 10, 64)
					s.server += time.Duration(cut+cst) * 10 * time.Millisecond
				}
			}
		}
	}
	if err := admin.DB.QueryRowContext(ctx, `SELECT pg_current_wal_flush_lsn()::text, buffers_backend, checkpoints_timed + checkpoints_req
		FROM pg_stat_bgwriter`).Scan(&s.lsn, &s.backend, &s.ckpt); err != nil {
		b.Fatal(err)
	}
	return s
}

// procTime is a process's user and system CPU time from /proc (zero
// when it is gone).
func procTime(pid int) time.Duration {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// scaleCost is what PostgreSQL spent on a flood, by relation where it can
// be told apart.
type scaleCost struct {
	cpu, server        time.Duration
	wal, fpi, fpiCount int64
	backend, ckpt      int64
	rel                map[string]*relCost
}

type relCost struct {
	wal, fpi, fpiCount, records int64
	read, hit                   int64
}

func (c scaleCost) add(o scaleCost) scaleCost {
	c.cpu += o.cpu
	c.server += o.server
	c.wal += o.wal
	c.fpi += o.fpi
	c.fpiCount += o.fpiCount
	c.backend += o.backend
	c.ckpt += o.ckpt
	if c.rel == nil {
		c.rel = map[string]*relCost{}
	}
	for name, r := range o.rel {
		t := c.rel[name]
		if t == nil {
			t = &relCost{}
			c.rel[name] = t
		}
		t.wal += r.wal
		t.fpi += r.fpi
		t.fpiCount += r.fpiCount
		t.records += r.records
		t.read += r.read
		t.hit += r.hit
	}
	return c
}

var blockRef = regexp.MustCompile(`rel \d+/(\d+)/(\d+)`)

// walReader reads the WAL from a position on, keeping this database's
// records only, each counted for the relation of its first block (records
// without a block, commits among them, cannot be told apart by database).
type walReader struct {
	admin *bun.DB
	pos   string
	db    string            // the database's oid
	names map[string]string // relation names by relfilenode
	cost  scaleCost
	err   error
}

func newWALReader(b *testing.B, admin *bun.DB, from string) *walReader {
	b.Helper()
	ctx := context.Background()
	w := &walReader{admin: admin, pos: from, names: map[string]string{}, cost: scaleCost{rel: map[string]*relCost{}}}
	if err := admin.DB.QueryRowContext(ctx, `SELECT oid::text FROM pg_database WHERE datname = current_database()`).Scan(&w.db); err != nil {
		b.Fatal(err)
	}
	w.loadNames(ctx)
	return w
}

func (w *walReader) loadNames(ctx context.Context) {
	rows, err := w.admin.DB.QueryContext(ctx, `SELECT relfilenode::text, relname FROM pg_class WHERE relfilenode <> 0`)
	if err != nil {
		w.err = err
		return
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var node, name string
		if err := rows.Scan(&node, &name); err != nil {
			w.err = err
			return
		}
		w.names[node] = name
	}
}

func (w *walReader) readTo(ctx context.Context, to string) {
	if w.err != nil {
		return
	}
	var ahead bool
	if err := w.admin.DB.QueryRowContext(ctx, `SELECT $1::pg_lsn > $2::pg_lsn`, to, w.pos).Scan(&ahead); err != nil || !ahead {
		w.err = err
		return
	}
	rows, err := w.admin.DB.QueryContext(ctx, `SELECT coalesce(block_ref, ''), record_length, fpi_length
		FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)`, w.pos, to)
	if err != nil {
		w.err = err
		return
	}
	defer func() { _ = rows.Close() }()
	c := &w.cost
	for rows.Next() {
		var ref string
		var length, fpi int64
		if err := rows.Scan(&ref, &length, &fpi); err != nil {
			w.err = err
			return
		}
		m := blockRef.FindStringSubmatch(ref)
		if m == nil || m[1] != w.db {
			continue
		}
		name := w.names[m[2]]
		if name == "" {
			name = "relfilenode " + m[2] // temporary or rewritten since
		}
		r := c.rel[name]
		if r == nil {
			r = &relCost{}
			c.rel[name] = r
		}
		images := int64(strings.Count(ref, "FPW"))
		r.wal += length
		r.fpi += fpi
		r.fpiCount += images
		r.records++
		c.wal += length
		c.fpi += fpi
		c.fpiCount += images
	}
	if w.err = rows.Err(); w.err == nil {
		w.pos = to
	}
}

// diffScale adds to wal's cost the CPU of the database's backends
// between the snapshots, the server's counters and the block reads and
// hits the flood's backends flushed when they ended.
func diffScale(b *testing.B, admin *bun.DB, before, after scaleSnapshot, c scaleCost) scaleCost {
	b.Helper()
	c.backend, c.ckpt, c.server = after.backend-before.backend, after.ckpt-before.ckpt, after.server-before.server
	for pid, t := range after.cpu {
		c.cpu += t - before.cpu[pid]
	}
	rel := func(name string) *relCost {
		r := c.rel[name]
		if r == nil {
			r = &relCost{}
			c.rel[name] = r
		}
		return r
	}
	readIO(b, admin, rel)
	return c
}

// readIO adds to rel (if set) each relation's block reads and hits
// since the last call: the counters are cumulative.
func readIO(b *testing.B, admin *bun.DB, rel func(string) *relCost) {
	b.Helper()
	rows, err := admin.DB.QueryContext(context.Background(), `SELECT relname,
		coalesce(heap_blks_read, 0) + coalesce(toast_blks_read, 0), coalesce(heap_blks_hit, 0) + coalesce(toast_blks_hit, 0)
		FROM pg_statio_user_tables
		UNION ALL SELECT indexrelname, idx_blks_read, idx_blks_hit FROM pg_statio_user_indexes`)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var name string
		var read, hit int64
		if err := rows.Scan(&name, &read, &hit); err != nil {
			b.Fatal(err)
		}
		prev := lastIO[name]
		lastIO[name] = [2]int64{read, hit}
		if rel != nil && (read-prev[0] > 0 || hit-prev[1] > 0) {
			r := rel(name)
			r.read += read - prev[0]
			r.hit += hit - prev[1]
		}
	}
}

// lastIO holds the block counters as the last readIO found them.
var lastIO = map[string][2]int64{}

func (c scaleCost) report(b *testing.B, events int) {
	n := float64(events)
	b.ReportMetric(float64(c.cpu.Microseconds())/n, "pg-cpu-µs/event")
	b.ReportMetric(float64(c.server.Microseconds())/n, "pg-server-cpu-µs/event")
	b.ReportMetric(float64(c.wal)/n, "wal-B/event")
	b.ReportMetric(float64(c.fpi)/n, "fpi-B/event")
	var lines []string
	for name, r := range c.rel {
		lines = append(lines, fmt.Sprintf("%-34s wal %7.1f B (fpi %7.1f B, %5d images)  records %5.2f  blocks read %6.3f hit %7.2f  per event",
			name, float64(r.wal)/n, float64(r.fpi)/n, r.fpiCount, float64(r.records)/n, float64(r.read)/n, float64(r.hit)/n))
	}
	sort.Strings(lines)
	b.Logf("%d events; server-wide meanwhile: %d checkpoints, %d buffers written by backends (all databases); full-page images %d\n%s",
		events, c.ckpt, c.backend, c.fpiCount, strings.Join(lines, "\n"))
}
