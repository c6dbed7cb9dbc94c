package postgres_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/domain/audit"
)

// personalRepos returns a repository per personal data mode (off without
// a KEK, encrypt), each on a database of its own.
func personalRepos(b *testing.B) map[string]*postgres.Repository {
	out := map[string]*postgres.Repository{"off": postgres.NewRepository(newDB(b))}
	db := newDB(b)
	out["encrypt"] = postgres.NewRepository(db).WithPersonal(openPersonal(b, db, postgres.PersonalEncrypt, newKEK(b)))
	return out
}

// personalBatch is 1,000 events of 100 users (a group-commit flush).
func personalBatch(prefix string) []audit.Event {
	evs := make([]audit.Event, 1000)
	for i := range evs {
		evs[i] = personalEvent(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("user-%d", i%100))
	}
	return evs
}

// BenchmarkWritePersonal measures a flush of 1,000 events with personal
// data off and encrypted (finding the subject keys, sealing the fields).
func BenchmarkWritePersonal(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"off", "encrypt"} {
		b.Run(mode, func(b *testing.B) {
			repo := personalRepos(b)[mode]
			i := 0
			for b.Loop() {
				i++
				if _, err := repo.Write(ctx, personalBatch(fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkSearchPersonal measures a search page of 100 events of one
// user with personal data off and encrypted (the read path decrypts each).
func BenchmarkSearchPersonal(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"off", "encrypt"} {
		b.Run(mode, func(b *testing.B) {
			repo := personalRepos(b)[mode]
			for i := range 20 {
				if _, err := repo.Write(ctx, personalBatch(fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
			}
			f := audit.SearchFilter{UserID: "user-7", Limit: 100}
			for b.Loop() {
				got, err := repo.Search(ctx, f)
				if err != nil || len(got) != 100 {
					b.Fatalf("search: %v, %d events", err, len(got))
				}
			}
		})
	}
}

// BenchmarkErasure measures one erasure among n data subjects: destroying
// one subject's key and rewrapping the n-1 others and the pseudonym key
// under a new key-encryption key, in one transaction, then replacing the
// key file. Ingest of encrypted events waits for it.
func BenchmarkErasure(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("subjects=%d", n), func(b *testing.B) {
			db := newDB(b)
			p := openPersonal(b, db, postgres.PersonalEncrypt, newKEK(b))
			repo := postgres.NewRepository(db).WithPersonal(p)
			for start := 0; start < n; start += 1000 {
				evs := make([]audit.Event, 1000)
				for i := range evs {
					evs[i] = personalEvent(fmt.Sprintf("e-%d", start+i), fmt.Sprintf("user-%d", start+i))
				}
				if _, err := repo.Write(ctx, evs); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				e, err := beginErasure(ctx, p, audit.Erasure{EventID: fmt.Sprintf("erase-%d", i), Pseudonym: p.Pseudonym(fmt.Sprintf("user-%d", i)),
					RequestedAt: event("x").OccurredAt})
				if err != nil {
					b.Fatal(err)
				}
				if e, err = p.DestroyKeys(ctx, e); err != nil || e.KeysErased != 1 {
					b.Fatalf("erase user-%d: %v %+v", i, err, e)
				}
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/erasure")
		})
	}
}

// BenchmarkErasureBatch measures one erasure request of 1 and of 100
// users among the subjects of AUDITQ_BENCH_ERASE_SUBJECTS (default
// 100,000): the pending erasures recorded, their erasure events written
// in one write, and one key destruction that serves them all (one
// replacement of the key-encryption key, one rewrap of the other keys).
func BenchmarkErasureBatch(b *testing.B) {
	ctx := context.Background()
	n := 100_000
	if v := os.Getenv("AUDITQ_BENCH_ERASE_SUBJECTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	db := newDB(b)
	p := openPersonal(b, db, postgres.PersonalEncrypt, newKEK(b))
	repo := postgres.NewRepository(db).WithPersonal(p)
	for start := 0; start < n; start += 1000 {
		evs := make([]audit.Event, min(1000, n-start))
		for i := range evs {
			evs[i] = personalEvent(fmt.Sprintf("e-%d", start+i), fmt.Sprintf("user-%d", start+i))
		}
		if _, err := repo.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	next := 0
	for _, users := range []int{1, 100} {
		b.Run(fmt.Sprintf("subjects=%d/users=%d", n, users), func(b *testing.B) {
			for b.Loop() {
				list := make([]audit.Erasure, users)
				evs := make([]audit.Event, users)
				for i := range list {
					e, err := beginErasure(ctx, p, audit.Erasure{EventID: fmt.Sprintf("erase-%d", next), Pseudonym: p.Pseudonym(fmt.Sprintf("user-%d", next)),
						RequestedAt: event("x").OccurredAt})
					if err != nil {
						b.Fatal(err)
					}
					next++
					list[i] = e
					evs[i] = audit.Event{ID: e.EventID, Action: audit.ActionErase, ResourceType: audit.ErasureResourceType, ResourceID: e.Pseudonym,
						Success: true, OccurredAt: e.RequestedAt, ReceivedAt: e.RequestedAt}
				}
				if _, err := repo.Write(ctx, evs); err != nil {
					b.Fatal(err)
				}
				for _, e := range list {
					if done, err := p.DestroyKeys(ctx, e); err != nil || done.KeysErased != 1 {
						b.Fatalf("erase %s: %v %+v", e.EventID, err, done)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/request")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*users), "ms/erasure")
		})
	}
}

// BenchmarkExportPersonal measures an export of 10,000 events (10 pages
// of 1,000, as audit.export reads them) with personal data off and
// encrypted (reading the subject keys, opening and decoding the sealed
// fields of each event): ns/event and allocations per event.
func BenchmarkExportPersonal(b *testing.B) {
	ctx := context.Background()
	const events = 10_000
	for _, mode := range []string{"off", "encrypt"} {
		b.Run(mode, func(b *testing.B) {
			repo := personalRepos(b)[mode]
			for i := range events / 1000 {
				if _, err := repo.Write(ctx, personalBatch(fmt.Sprint(i))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				f := audit.SearchFilter{Limit: 1000}
				n := 0
				for {
					page, err := repo.ExportPage(ctx, f)
					if err != nil {
						b.Fatal(err)
					}
					if len(page) == 0 {
						break
					}
					if mode == "encrypt" && page[0].IPAddress == "" {
						b.Fatalf("event %s not decrypted", page[0].ID)
					}
					n += len(page)
					last := page[len(page)-1]
					f.After = &audit.Position{OccurredAt: last.OccurredAt, ID: last.ID}
				}
				if n != events {
					b.Fatalf("exported %d events, want %d", n, events)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
		})
	}
}

// BenchmarkEraseRequest measures one erasure request (audit.admin.erase
// with userIds, auditq erase with --user repeated) of 100 and of 1,000
// users among 1,000 other data subjects, through the handler the service
// runs: the pending erasures recorded, their erasure events written, the
// keys destroyed under one replacement of the key-encryption key.
func BenchmarkEraseRequest(b *testing.B) {
	ctx := context.Background()
	for _, users := range []int{100, 1000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			db := newDB(b)
			p := openPersonal(b, db, postgres.PersonalEncrypt, newKEK(b))
			repo := postgres.NewRepository(db).WithPersonal(p)
			others := make([]audit.Event, 1000)
			for i := range others {
				others[i] = personalEvent(fmt.Sprintf("o-%d", i), fmt.Sprintf("other-%d", i))
			}
			if _, err := repo.Write(ctx, others); err != nil {
				b.Fatal(err)
			}
			h := command.NewEraseHandler(p, repo, command.EraseConfig{})
			who := map[string]any{"user": "bench"}
			round := 0
			for b.Loop() {
				b.StopTimer()
				round++
				req := command.EraseRequest{UserIDs: make([]string, users)}
				evs := make([]audit.Event, users)
				for i := range evs {
					req.UserIDs[i] = fmt.Sprintf("user-%d-%d", round, i)
					evs[i] = personalEvent(fmt.Sprintf("e-%d-%d", round, i), req.UserIDs[i])
				}
				if _, err := repo.Write(ctx, evs); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := h.HandleList(ctx, req, who)
				if err != nil || len(res.Erasures) != users || res.Erasures[users-1].KeysDestroyed != 1 {
					b.Fatalf("erase %d users: %v", users, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/request")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*users), "us/user")
		})
	}
}

// BenchmarkProtectBatch measures Personal.protect of a batch of 1,000
// events of `auditq bench` (1,000 users) whose keys exist, the steady
// state of a bulk flood, in a transaction as a write has it: the shared
// erasure lock, finding the subject keys and sealing every event. It
// reports the time per event.
func BenchmarkProtectBatch(b *testing.B) {
	ctx := context.Background()
	db := newDB(b)
	p := openPersonal(b, db, postgres.PersonalEncrypt, newKEK(b))
	evs := make([]audit.Event, 1000)
	for i := range evs {
		evs[i] = postgres.BenchEvent(b, i)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	protect := func() {
		err := conn.Raw(func(dc any) error {
			tx, err := dc.(*stdlib.Conn).Conn().Begin(ctx)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(ctx) }()
			out, err := p.Protect(ctx, tx, evs)
			if err == nil && (out[0].Personal == nil || out[999].Personal == nil) {
				err = fmt.Errorf("not sealed: %+v", out[0])
			}
			if err != nil {
				return err
			}
			return tx.Commit(ctx)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	protect() // creates the keys
	b.ReportAllocs()
	for b.Loop() {
		protect()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

// BenchmarkWriteCPUPersonal measures the CPU this process spends per
// event (user and system time of the whole process: protecting, hashing,
// encoding the COPY, the garbage collector) on writes of 1,000 events of
// `auditq bench` (1,000 users), tamper evidence on, with personal data
// off and encrypted: the service's side of a bulk flood, without NATS.
// "details=none" lists no personal details keys (as `auditq bench`),
// "details=email" lists one the events do not hold. Each iteration
// writes one batch in each mode, in alternating order. PostgreSQL's CPU
// is not counted, and the time between batches is the database's: only
// the CPU figures compare.
func BenchmarkWriteCPUPersonal(b *testing.B) {
	for _, keys := range [][]string{nil, {"email"}} {
		b.Run("details="+cmp.Or(strings.Join(keys, ","), "none"), func(b *testing.B) {
			benchWriteCPU(b, keys)
		})
	}
}

func benchWriteCPU(b *testing.B, detailKeys []string) {
	ctx := context.Background()
	repos := map[string]*postgres.Repository{}
	for _, mode := range []string{"off", "encrypt"} {
		tr := newTrail(b)
		repos[mode] = tr.repo
		if mode == "encrypt" {
			cfg := personalConfig(b, postgres.PersonalEncrypt, newKEK(b))
			cfg.DetailKeys = detailKeys
			p, err := postgres.OpenPersonal(ctx, tr.db, cfg)
			if err != nil {
				b.Fatal(err)
			}
			repos[mode] = tr.repo.WithPersonal(p)
		}
		stop := tr.sealer.StartChaining(time.Second, slog.New(slog.DiscardHandler))
		b.Cleanup(stop)
	}
	base := make([]audit.Event, 1000)
	for i := range base {
		base[i] = postgres.BenchEvent(b, i)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	used := map[string]time.Duration{}
	batch := 0
	write := func(mode string) {
		evs := slices.Clone(base)
		for i := range evs {
			evs[i].ID = fmt.Sprintf("b%d-%d", batch, i)
		}
		batch++
		start := cpu()
		if _, err := repos[mode].Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
		used[mode] += cpu() - start
	}
	write("off") // the first batch of encrypt creates the keys: not measured
	write("encrypt")
	clear(used)
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			write("off")
			write("encrypt")
		} else {
			write("encrypt")
			write("off")
		}
		n++
	}
	off := float64(used["off"].Microseconds()) / float64(n*len(base))
	enc := float64(used["encrypt"].Microseconds()) / float64(n*len(base))
	b.ReportMetric(off, "off-cpu-us/event")
	b.ReportMetric(enc, "encrypt-cpu-us/event")
	b.ReportMetric(enc-off, "extra-cpu-us/event")
}

// BenchmarkStoredFormPersonal writes batches of 1,000 events of `auditq
// bench` with personal data off and encrypted, alternating, each mode on
// a database of its own with tamper evidence on, and reports what the
// stored rows cost PostgreSQL: the CPU of the database's backends per
// event (read from /proc: PostgreSQL on this host), heap and
// audit_logs_user_idx bytes per row, and the average stored size of the
// columns that differ.
func BenchmarkStoredFormPersonal(b *testing.B) {
	ctx := context.Background()
	type mode struct {
		name string
		tr   *trail
		repo *postgres.Repository
		cpu  time.Duration
	}
	var modes []*mode
	for _, name := range []string{"off", "encrypt"} {
		m := &mode{name: name, tr: newTrail(b)}
		m.repo = m.tr.repo
		if name == "encrypt" {
			cfg := personalConfig(b, postgres.PersonalEncrypt, newKEK(b))
			cfg.DetailKeys = nil
			p, err := postgres.OpenPersonal(ctx, m.tr.db, cfg)
			if err != nil {
				b.Fatal(err)
			}
			m.repo = m.repo.WithPersonal(p)
		}
		stop := m.tr.sealer.StartChaining(time.Second, slog.New(slog.DiscardHandler))
		b.Cleanup(stop)
		modes = append(modes, m)
	}
	backendCPU := func(m *mode) time.Duration {
		rows, err := m.tr.db.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = rows.Close() }()
		var sum time.Duration
		for rows.Next() {
			var pid int
			if err := rows.Scan(&pid); err != nil {
				b.Fatal(err)
			}
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				continue // ended
			}
			f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			sum += time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
		}
		return sum
	}
	base := make([]audit.Event, 1000)
	for i := range base {
		base[i] = postgres.BenchEvent(b, i)
	}
	batch := 0
	write := func(m *mode, measured bool) {
		evs := slices.Clone(base)
		for i := range evs {
			evs[i].ID = fmt.Sprintf("b%d-%d", batch, i)
		}
		batch++
		start := backendCPU(m)
		if _, err := m.repo.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
		if measured {
			m.cpu += backendCPU(m) - start
		}
	}
	for _, m := range modes { // the first batch opens the connections and creates the keys
		write(m, false)
	}
	n := 0
	for b.Loop() {
		for j := range modes {
			write(modes[(j+n)%2], true)
		}
		n++
	}
	b.StopTimer()
	for _, m := range modes {
		b.ReportMetric(float64(m.cpu.Microseconds())/float64(n*len(base)), m.name+"-pg-cpu-us/event")
		var heap, userIdx, row, userID, session, personal float64
		if err := m.tr.db.QueryRowContext(ctx, `SELECT pg_relation_size('audit_logs')::float8 / count(*), pg_relation_size('audit_logs_user_idx')::float8 / count(*),
			avg(pg_column_size(a.*)), avg(pg_column_size(user_id)), avg(pg_column_size(session_id)), coalesce(avg(pg_column_size(personal)), 0)
			FROM audit_logs a`).Scan(&heap, &userIdx, &row, &userID, &session, &personal); err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			unit string
			v    float64
		}{{"heap-B/row", heap}, {"user-idx-B/row", userIdx}, {"row-B", row}, {"user_id-B", userID}, {"session_id-B", session}, {"personal-B", personal}} {
			b.ReportMetric(v.v, m.name+"-"+v.unit)
		}
	}
}
