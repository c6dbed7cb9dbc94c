package streams

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/auditq/auditq/adapters/keyfile"
	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/adapters/postgres/pgtest"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/migrations"
	"github.com/auditq/auditq/ports/streams/format"
)

// cpuTime returns the CPU time (user and system) this process used so
// far: on a loaded machine a steadier measure than the wall clock.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStreamPersonal measures what a stream spends per event to
// read 10,000 committed events (10 reads of 1,000, no cache) and encode
// them in the native format, with personal data off and encrypted (one
// read of the subject keys per read, the AES-GCM opening and the leaf
// data of each event): wall ns/event, and cpu-ns/event, the CPU time of
// the process (the reader and encoder; PostgreSQL's is apart), side by
// side.
func BenchmarkStreamPersonal(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []postgres.PersonalMode{postgres.PersonalOff, postgres.PersonalEncrypt} {
		b.Run(string(mode), func(b *testing.B) {
			db, err := postgres.Open(ctx, pgtest.NewDatabase(b), 4)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = db.Close() })
			if err := migrations.Up(ctx, db); err != nil {
				b.Fatal(err)
			}
			var p *postgres.Personal
			if mode == postgres.PersonalEncrypt {
				key := make([]byte, 32)
				_, _ = rand.Read(key)
				path := filepath.Join(b.TempDir(), "kek")
				if err := os.WriteFile(path, []byte(hex.EncodeToString(key)), 0o600); err != nil {
					b.Fatal(err)
				}
				pk, err := keyfile.LoadOrCreateKEK(filepath.Join(b.TempDir(), "kek.pseudonym"))
				if err != nil {
					b.Fatal(err)
				}
				if p, err = postgres.OpenPersonal(ctx, db, postgres.PersonalConfig{Mode: mode, KEK: keyfile.NewFile(path), PseudonymKEK: pk,
					DetailKeys: []string{"email"}}); err != nil {
					b.Fatal(err)
				}
			}
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			sealer := postgres.NewSealer(db, evidence.NewSigner(priv))
			repo := postgres.NewRepository(db).WithSealer(sealer).WithPersonal(p)
			at := audit.Normalize(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
			const events = 10_000
			for start := 0; start < events; start += 1000 {
				evs := make([]audit.Event, 1000)
				for i := range evs {
					n := start + i
					evs[i] = audit.Event{ID: fmt.Sprintf("e-%d", n), UserID: fmt.Sprintf("user-%d", n%5000), Action: "user.login",
						ResourceType: "user", ResourceID: "42", Details: json.RawMessage(`{"email":"x@example.org","k":"v"}`),
						IPAddress: "203.0.113.7", UserAgent: "Mozilla/5.0", SessionID: fmt.Sprintf("s-%d", n), Success: true,
						OccurredAt: at, ReceivedAt: at.Add(time.Second)}
				}
				if _, err := repo.Write(ctx, evs); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := sealer.Chain(ctx); err != nil {
				b.Fatal(err)
			}
			enc, _ := format.New(format.Native, format.Options{})
			s := &stream{encode: enc, encKey: format.Native}
			var reading, encoding time.Duration
			cpu0 := cpuTime(b)
			for b.Loop() {
				store, encoded := postgres.NewStreamStore(db), newEncodings(p)
				cur, n := audit.StreamStart, 0
				for n < events {
					t0 := time.Now()
					rd, err := store.Read(ctx, cur, 1000)
					t1 := time.Now()
					reading += t1.Sub(t0)
					if err != nil || len(rd.Events) == 0 {
						b.Fatalf("read after %d: %v", n, err)
					}
					items, err := encoded.encode(ctx, s, rd.Events)
					if err != nil {
						b.Fatal(err)
					}
					encoding += time.Since(t1)
					n, cur = n+len(items), rd.Next
				}
			}
			cpu := cpuTime(b) - cpu0
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
			b.ReportMetric(float64(reading.Nanoseconds())/float64(b.N*events), "read-ns/event")
			b.ReportMetric(float64(encoding.Nanoseconds())/float64(b.N*events), "encode-ns/event")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*events), "cpu-ns/event")
		})
	}
}
