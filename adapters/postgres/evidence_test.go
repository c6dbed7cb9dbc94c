package postgres_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/postgres"
	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/domain/evidence"
)

// trail is a sealed repository on a fresh database, with what verifying
// and checkpointing it takes.
type trail struct {
	db     *bun.DB
	sealer *postgres.Sealer
	repo   *postgres.Repository
	store  *postgres.EvidenceStore
	signer *evidence.Signer
	cp     *command.WriteCheckpointHandler
	// retired are the keys newKey replaced, which the checkpoint writer
	// trusts as AUDITQ_RETIRED_KEYS.
	retired evidence.KeyRing
}

func newTrail(t testing.TB) *trail {
	t.Helper()
	tr := &trail{db: newDB(t)}
	tr.store = postgres.NewEvidenceStore(tr.db)
	tr.newKey(t)
	return tr
}

// newKey makes the trail sign with a new key from now on (as a restart
// with a new key file does) and returns the public key it replaced.
func (tr *trail) newKey(t testing.TB) ed25519.PublicKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var old ed25519.PublicKey
	if tr.signer != nil {
		old = tr.signer.PublicKey()
		tr.retired = append(tr.retired, old)
	}
	tr.signer = evidence.NewSigner(priv)
	tr.sealer = postgres.NewSealer(tr.db, tr.signer)
	tr.repo = postgres.NewRepository(tr.db).WithSealer(tr.sealer)
	tr.cp = command.NewWriteCheckpointHandler(tr.store, nil, tr.signer, tr.sealer).WithRetiredKeys(tr.retired)
	return old
}

// write stores events with ids prefix-0.. in one batch.
func (tr *trail) write(t testing.TB, prefix string, n int) {
	t.Helper()
	evs := make([]audit.Event, n)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("%s-%d", prefix, i))
		evs[i].Details = []byte(fmt.Sprintf(`{"n": %d, "nested": {"b": [1.5, true], "a": "x"}}`, i))
	}
	if _, err := tr.repo.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// oldTime is when the events of writeOld happened: long expired.
var oldTime = audit.Normalize(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))

// writeOld stores n events old-0.. one minute apart from oldTime in one
// batch; edit, if set, changes event i first.
func (tr *trail) writeOld(t testing.TB, n int, edit func(i int, e *audit.Event)) {
	t.Helper()
	evs := make([]audit.Event, n)
	for i := range evs {
		evs[i] = event(fmt.Sprintf("old-%d", i))
		evs[i].OccurredAt = oldTime.Add(time.Duration(i) * time.Minute)
		if edit != nil {
			edit(i, &evs[i])
		}
	}
	if _, err := tr.repo.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// cleanup runs c as the service does, in chunks of 2 rows: deletions
// recorded and signed with the trail's key, a checkpoint after it. It
// returns the rows deleted.
func (tr *trail) cleanup(t testing.TB, c audit.Cleanup) int64 {
	t.Helper()
	ret := mustRetention(t, tr.db, postgres.RetentionConfig{Chunk: 2}).RecordingDeletions(postgres.NewDeletionRecorder(tr.signer))
	n, err := command.NewCheckpointingRetention(ret, tr.cp).DeleteExpired(context.Background(), c)
	if err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	return n
}

func (tr *trail) checkpoint(t testing.TB, reason string) command.CheckpointResult {
	t.Helper()
	res, err := tr.cp.Handle(context.Background(), reason)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (tr *trail) verify(t testing.TB) evidence.Report {
	t.Helper()
	return tr.verifyWith(t, query.VerifyOptions{})
}

// verifyWith verifies with opts, with the trail's public key.
func (tr *trail) verifyWith(t testing.TB, opts query.VerifyOptions) evidence.Report {
	t.Helper()
	h := query.NewVerifyTrailHandler(func(ctx context.Context, fn func(query.TrailReader) error) error {
		return tr.store.Snapshot(ctx, func(s *postgres.EvidenceStore) error { return fn(s) })
	})
	if opts.Keys == nil {
		opts.Keys = evidence.KeyRing{tr.signer.PublicKey()}
	}
	rep, err := h.Handle(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (tr *trail) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := tr.db.DB.ExecContext(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func wantClean(t *testing.T, rep evidence.Report) {
	t.Helper()
	if !rep.OK() {
		t.Fatalf("verification failed on an untouched trail: %v", rep.Failures)
	}
}

// wantCaught asserts that verification fails and that its first failure
// names subject and says reason.
func wantCaught(t *testing.T, rep evidence.Report, subject, reason string) {
	t.Helper()
	if rep.OK() {
		t.Fatalf("tampering not detected (%d events, %d batches)", rep.Events, rep.Batches)
	}
	first := rep.Failures[0]
	if !strings.Contains(first.Subject, subject) || !strings.Contains(first.Reason, reason) {
		t.Fatalf("first failure %q, want subject %q and reason %q; all: %v", first, subject, reason, rep.Failures)
	}
}

// sealedTrail is a trail of 4 batches (one through the staging path, with
// duplicates) and a checkpoint.
func sealedTrail(t *testing.T) *trail {
	tr := newTrail(t)
	tr.write(t, "a", 5)
	tr.write(t, "b", 3)
	ctx := context.Background()
	// A redelivery plus new events: the staging path, duplicates leave holes.
	evs := []audit.Event{event("a-1"), event("c-0"), event("b-2"), event("c-1"), event("c-1")}
	if res, err := tr.repo.Write(ctx, evs); err != nil || res.Inserted != 2 {
		t.Fatalf("staged write: %+v, %v", res, err)
	}
	if res, err := tr.repo.Write(ctx, []audit.Event{event("a-0")}); err != nil || res.Inserted != 0 {
		t.Fatalf("all-duplicate write: %+v, %v", res, err) // seals nothing
	}
	tr.write(t, "d", 4)
	tr.checkpoint(t, command.CheckpointPeriodic)
	return tr
}

func TestSealedTrailVerifies(t *testing.T) {
	tr := sealedTrail(t)
	rep := tr.verify(t)
	wantClean(t, rep)
	if rep.Events != 14 || rep.Batches != 4 || rep.Leaves != 17 || rep.Checkpoints != 1 || rep.Uncovered != 0 {
		t.Fatalf("report %+v, want 14 events in 4 batches of 17 leaves, 1 checkpoint covering all", rep)
	}
	// The database stores details its own way (jsonb); an equal value
	// written back differently is no tampering.
	tr.exec(t, `UPDATE audit_logs SET details = '{"nested":{"a":"x","b":[1.50,true]},"n":0}' WHERE id = 'a-0'`)
	wantClean(t, tr.verify(t))
}

func TestVerifyCatchesTampering(t *testing.T) {
	cases := []struct {
		name            string
		tamper          func(t *testing.T, tr *trail)
		subject, reason string
	}{
		{"update a field", func(t *testing.T, tr *trail) {
			tr.exec(t, `UPDATE audit_logs SET action = 'user.logout' WHERE id = 'b-1'`)
		}, `event "b-1"`, "does not match its sealed hash"},
		{"update details", func(t *testing.T, tr *trail) {
			tr.exec(t, `UPDATE audit_logs SET details = jsonb_set(details, '{n}', '7') WHERE id = 'a-3'`)
		}, `event "a-3"`, "does not match its sealed hash"},
		{"update the time by a microsecond", func(t *testing.T, tr *trail) {
			tr.exec(t, `UPDATE audit_logs SET occurred_at = occurred_at + interval '1 microsecond' WHERE id = 'd-0'`)
		}, `event "d-0"`, "does not match its sealed hash"},
		{"delete a row", func(t *testing.T, tr *trail) {
			tr.exec(t, `DELETE FROM audit_logs WHERE id = 'b-0'`)
		}, "batch 2 leaf 0", "is missing"},
		{"insert a forged row", func(t *testing.T, tr *trail) {
			tr.exec(t, `INSERT INTO audit_logs (id, action, resource_type, resource_id, occurred_at, received_at)
				VALUES ('forged', 'user.login', 'user', '1', now(), now())`)
		}, `event "forged"`, "not sealed"},
		{"insert a forged row into a hole of a batch", func(t *testing.T, tr *trail) {
			tr.exec(t, `INSERT INTO audit_logs (id, action, resource_type, resource_id, occurred_at, received_at, seal_batch, seal_leaf)
				SELECT 'forged', 'user.login', 'user', '1', now(), now(), id, 0 FROM audit_batches WHERE seq = 3`)
		}, `event "forged"`, "stored no event"},
		{"insert a copy claiming another row's place", func(t *testing.T, tr *trail) {
			tr.exec(t, `INSERT INTO audit_logs SELECT 'copy', user_id, action, resource_type, resource_id, details, ip_address, user_agent,
				session_id, request_id, success, error_message, occurred_at, received_at, seal_batch, seal_leaf FROM audit_logs WHERE id = 'a-2'`)
		}, `event "copy"`, "does not match its sealed hash"},
		{"reorder: swap two events' places", func(t *testing.T, tr *trail) {
			tr.exec(t, `UPDATE audit_logs a SET seal_leaf = CASE a.id WHEN 'a-1' THEN 2 ELSE 1 END WHERE a.id IN ('a-1','a-2')`)
		}, `event "a-2"`, "does not match its sealed hash"},
		{"reorder: swap two events' ids", func(t *testing.T, tr *trail) {
			tr.exec(t, `UPDATE audit_logs SET id = CASE id WHEN 'a-0' THEN 'tmp' ELSE id END WHERE id = 'a-0'`)
			tr.exec(t, `UPDATE audit_logs SET id = 'a-0' WHERE id = 'd-3'`)
			tr.exec(t, `UPDATE audit_logs SET id = 'd-3' WHERE id = 'tmp'`)
		}, `event "d-3"`, "batch 1 leaf 0: the row does not match"},
		{"reorder: swap two batches", func(t *testing.T, tr *trail) {
			tr.exec(t, `UPDATE audit_batches SET seq = CASE seq WHEN 1 THEN -2 ELSE -1 END WHERE seq IN (1, 2)`)
			tr.exec(t, `UPDATE audit_batches SET seq = -seq WHERE seq < 0`)
		}, "batch 1", "chain is broken"},
		{"reorder: swap two leaves of a batch", func(t *testing.T, tr *trail) {
			tr.exec(t, `UPDATE audit_batches SET leaves = substring(leaves from 33 for 32) || substring(leaves from 1 for 32) || substring(leaves from 65) WHERE seq = 1`)
		}, "batch 1", "Merkle root"},
		{"append a forged batch and its row, chain and head updated", func(t *testing.T, tr *trail) {
			forgeBatch(t, tr)
		}, "batch 5", "not written by auditq"},
		{"remove a deletion-free batch record", func(t *testing.T, tr *trail) {
			tr.exec(t, `DELETE FROM audit_batches WHERE seq = 2`)
		}, "batch 2", "missing or reordered"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := sealedTrail(t)
			wantClean(t, tr.verify(t))
			c.tamper(t, tr)
			wantCaught(t, tr.verify(t), c.subject, c.reason)
		})
	}
}

// forgeBatch appends a batch of one forged event the way a writer would,
// chain and head included, but signed with a key of its own.
func forgeBatch(t *testing.T, tr *trail) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	sealer := postgres.NewSealer(tr.db, evidence.NewSigner(priv))
	forger := postgres.NewRepository(tr.db).WithSealer(sealer)
	if _, err := forger.Write(ctx, []audit.Event{event("forged")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.Chain(ctx); err != nil {
		t.Fatal(err)
	}
}

// rewrite changes an event and recomputes every hash the database holds:
// the leaf, the batch's root and hash, every later batch and the head.
func rewrite(t *testing.T, tr *trail, id, action string) {
	ctx := context.Background()
	tr.exec(t, `UPDATE audit_logs SET action = $1 WHERE id = $2`, action, id)
	ev, batchID, leaf, _, err := tr.store.SealedEvent(ctx, audit.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	var batches []evidence.Batch
	if err := tr.store.Batches(ctx, func(b evidence.Batch) error { batches = append(batches, b); return nil }); err != nil {
		t.Fatal(err)
	}
	newLeaf, _, err := new(evidence.EventHasher).Leaf(ev)
	if err != nil {
		t.Fatal(err)
	}
	prev := evidence.ZeroHash
	for _, b := range batches {
		if b.ID == batchID {
			b.Leaves[leaf] = newLeaf
		}
		b.Root, b.Prev = evidence.MerkleRoot(b.Leaves), prev
		b.Hash = b.ComputeHash()
		var flat []byte
		for _, l := range b.Leaves {
			flat = append(flat, l[:]...)
		}
		tr.exec(t, `UPDATE audit_batches SET leaves = $1, root = $2, prev_hash = $3, hash = $4 WHERE seq = $5`, flat, b.Root[:], b.Prev[:], b.Hash[:], b.Seq)
		prev = b.Hash
	}
	tr.exec(t, `UPDATE audit_chain_heads SET hash = $1 WHERE chain = 'batches'`, prev[:])
}

func TestVerifyCatchesARewriteWithRecomputedHashes(t *testing.T) {
	tr := sealedTrail(t)
	rewrite(t, tr, "b-1", "user.logout")
	// Every hash in the table is consistent again; the signatures, made
	// with a key the database never held, tell: the batch's own, and the
	// checkpoint's over the chain.
	rep := tr.verify(t)
	wantCaught(t, rep, "batch 2", "not written by auditq")
	found := false
	for _, f := range rep.Failures {
		found = found || (f.Subject == "checkpoint 1" && strings.Contains(f.Reason, "the trail was rewritten at or before batch 4"))
	}
	if !found {
		t.Fatalf("the checkpoint should fail too: %v", rep.Failures)
	}
}

func TestCutTailIsCaughtAtTheNextCheckpoint(t *testing.T) {
	tr := sealedTrail(t)                                             // checkpoint 1 covers batches 1-4
	tr.write(t, "e", 2)                                              // batch 5
	tr.write(t, "f", 2)                                              // batch 6, not yet checkpointed
	if _, err := tr.sealer.Chain(context.Background()); err != nil { // what the chainer does right after
		t.Fatal(err)
	}
	wantClean(t, tr.verify(t))
	// Cut the newest batches cleanly: rows, batch records, chain head.
	tr.exec(t, `DELETE FROM audit_logs WHERE seal_batch IN (SELECT id FROM audit_batches WHERE seq > 4)`)
	tr.exec(t, `DELETE FROM audit_batches WHERE seq > 4`)
	tr.exec(t, `UPDATE audit_chain_heads h SET seq = 4, hash = b.hash, prev_hash = b.prev_hash FROM audit_batches b WHERE b.seq = 4 AND h.chain = 'batches'`)
	wantClean(t, tr.verify(t)) // consistent, and not yet signed: nothing can tell yet
	res := tr.checkpoint(t, command.CheckpointPeriodic)
	if !strings.Contains(res.Tampered, "batch 6, which this process saw in the chain, is gone") {
		t.Fatalf("the checkpoint writer did not notice the cut: %+v", res)
	}
	wantCaught(t, tr.verify(t), "checkpoint 2", "the newest batches were removed")
}

func TestUnchainedBatchesVerifyAndForgedOnesDoNot(t *testing.T) {
	tr := newTrail(t)
	tr.write(t, "a", 3) // committed, not yet linked into the chain
	rep := tr.verify(t)
	wantClean(t, rep)
	if rep.Pending != 1 || rep.Batches != 0 || rep.Events != 3 {
		t.Fatalf("report %+v, want 3 events in 1 unchained batch", rep)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	forger := postgres.NewRepository(tr.db).WithSealer(postgres.NewSealer(tr.db, evidence.NewSigner(priv)))
	if _, err := forger.Write(context.Background(), []audit.Event{event("forged")}); err != nil {
		t.Fatal(err)
	}
	wantCaught(t, tr.verify(t), "unchained batch id", "not written by auditq")
}

func TestCheckpointsChainAndCoverNoEvents(t *testing.T) {
	tr := newTrail(t)
	a := tr.checkpoint(t, command.CheckpointStart) // an empty trail is signed too
	b := tr.checkpoint(t, command.CheckpointPeriodic)
	if a.Checkpoint.Seq != 1 || b.Checkpoint.Seq != 2 || b.Checkpoint.Prev != a.Checkpoint.Hash() || b.Checkpoint.BatchSeq != 0 {
		t.Fatalf("checkpoints not chained: %+v %+v", a.Checkpoint, b.Checkpoint)
	}
	tr.write(t, "a", 3)
	c := tr.checkpoint(t, command.CheckpointShutdown)
	if c.Checkpoint.BatchSeq != 1 || c.Checkpoint.RangeFrom != 1 {
		t.Fatalf("checkpoint 3: %+v", c.Checkpoint)
	}
	wantClean(t, tr.verify(t))
	tr.exec(t, `DELETE FROM audit_checkpoints WHERE seq = 2`)
	wantCaught(t, tr.verify(t), "checkpoint 3", "expected checkpoint 2")
}

func TestRetentionIsAccountedForAndFurtherDeletionsAreNot(t *testing.T) {
	tr := newTrail(t)
	tr.writeOld(t, 10, func(i int, e *audit.Event) {
		if i%3 == 0 {
			e.Action = "security.breach" // excluded: kept
		}
	})
	tr.write(t, "new", 3)
	tr.checkpoint(t, command.CheckpointPeriodic)
	if n := tr.cleanup(t, audit.Cleanup{Cutoff: oldTime.Add(time.Hour), ExcludeActions: []string{"security.breach"}}); n != 6 {
		t.Fatalf("cleanup deleted %d rows, want 6", n)
	}
	rep := tr.verify(t)
	wantClean(t, rep)
	if rep.DeletedLeaves != 6 || rep.Deletions < 3 || rep.Checkpoints != 2 || rep.Events != 7 {
		t.Fatalf("report after cleanup: %+v", rep)
	}
	// One more deletion, of a row the cleanup kept, is not accounted for.
	tr.exec(t, `DELETE FROM audit_logs WHERE id = 'old-3'`)
	wantCaught(t, tr.verify(t), "batch 1 leaf 3", "deleted without a retention record")
}

// Key rotation: after the signing key is replaced, the trail signed by
// both keys verifies when both are trusted (the checkpoint chain runs on
// across the change); with either key missing, what it signed is named as
// not signed by a trusted key.
func TestKeyRotationVerifiesWithTheRetiredKey(t *testing.T) {
	tr := newTrail(t)
	tr.writeOld(t, 4, nil)
	tr.write(t, "a", 3)
	tr.checkpoint(t, command.CheckpointPeriodic)

	retired := tr.newKey(t)
	current := tr.signer.PublicKey()
	tr.write(t, "b", 3)
	if n := tr.cleanup(t, audit.Cleanup{Cutoff: oldTime.Add(time.Hour)}); n != 4 {
		t.Fatalf("cleanup after the rotation deleted %d rows, want 4", n)
	}

	rep := tr.verifyWith(t, query.VerifyOptions{Keys: evidence.KeyRing{current, retired}})
	wantClean(t, rep)
	if rep.Batches != 3 || rep.DeletedLeaves != 4 || rep.Checkpoints < 2 {
		t.Fatalf("report with both keys: %+v", rep)
	}
	wantCaught(t, tr.verifyWith(t, query.VerifyOptions{Keys: evidence.KeyRing{current}}),
		"batch 1", "not signed by the trusted key "+evidence.KeyID(current))
	rep = tr.verifyWith(t, query.VerifyOptions{Keys: evidence.KeyRing{retired}})
	wantCaught(t, rep, "deletion record 1", "signed by key "+evidence.KeyID(current)+", not by the trusted key "+evidence.KeyID(retired))
	for _, want := range []string{"batch 3: not written by auditq: bad signature", "checkpoint 2: bad signature: signed by key " + evidence.KeyID(current)} {
		if !strings.Contains(fmt.Sprint(rep.Failures), want) {
			t.Fatalf("failures without the new key do not say %q: %v", want, rep.Failures)
		}
	}
}

func TestRetentionRecordsCannotBeForged(t *testing.T) {
	tr := newTrail(t)
	tr.write(t, "a", 3)
	tr.checkpoint(t, command.CheckpointPeriodic)
	// Delete a row and record it with a key of the attacker's own.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	tx, err := tr.db.DB.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`DELETE FROM audit_logs WHERE id = 'a-1'`); err != nil {
		t.Fatal(err)
	}
	var batchID int64
	if err := tx.QueryRow(`SELECT id FROM audit_batches WHERE seq = 1`).Scan(&batchID); err != nil {
		t.Fatal(err)
	}
	if err := postgres.NewDeletionRecorder(evidence.NewSigner(other)).Record(context.Background(), tx,
		audit.Cleanup{Cutoff: time.Now()}, []int64{batchID}, []int32{1}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	wantCaught(t, tr.verify(t), "deletion record 1", "not a valid signed retention record")
}

func TestConcurrentInstancesKeepOneChain(t *testing.T) {
	tr := newTrail(t)
	// Two "instances": two sealed repositories, each with its batcher and
	// its chainer linking batches while both write.
	otherSealer := postgres.NewSealer(tr.db, tr.signer)
	other := postgres.NewRepository(tr.db).WithSealer(otherSealer)
	for _, s := range []*postgres.Sealer{tr.sealer, otherSealer} {
		t.Cleanup(s.StartChaining(5*time.Millisecond, slog.New(slog.DiscardHandler)))
	}
	var wg sync.WaitGroup
	for inst, repo := range []*postgres.Repository{tr.repo, other} {
		b := mustBatcher(t, repo, postgres.BatcherConfig{MaxEvents: 7, Flushers: 2})
		for w := range 8 {
			wg.Go(func() {
				for i := range 10 {
					id := fmt.Sprintf("i%d-w%d-%d", inst, w, i)
					if _, err := b.Write(context.Background(), []audit.Event{event(id), event("shared-" + fmt.Sprint(i))}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		t.Cleanup(func() { _ = b.Close() })
	}
	wg.Wait()
	tr.checkpoint(t, command.CheckpointPeriodic)
	rep := tr.verify(t)
	wantClean(t, rep)
	if rep.Events != 2*8*10+10 || rep.Pending != 0 || rep.Batches < 10 {
		t.Fatalf("%d events in %d chained and %d unchained batches, want %d events, all chained", rep.Events, rep.Batches, rep.Pending, 2*8*10+10)
	}
}

// "verify --reports": the figures reports read from the rollups (current
// hours and days or months) are checked against the rows. Each kind of
// tampering with the rollups is caught and named, while the trail itself
// (which the rollups do not affect) stays clean; re-rolling what was
// tampered with makes the check clean again.
func TestVerifyReportsCatchesRollupTampering(t *testing.T) {
	tr := newTrail(t)
	ctx := context.Background()
	day := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for i := range 60 {
		e := event(fmt.Sprintf("r-%d", i))
		e.OccurredAt = audit.Normalize(day.Add(time.Duration(i) * 37 * time.Minute)) // two days, many hours
		e.Action = []string{"user.login", "guild.create", "member.ban"}[i%3]
		e.UserID = []string{"u1", "u2", ""}[i%3]
		e.ResourceType = []string{"user", "guild"}[i%2]
		e.Success = i%4 != 0
		evs = append(evs, e)
	}
	if _, err := tr.repo.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	tr.checkpoint(t, command.CheckpointPeriodic)
	reroll := func() {
		t.Helper()
		tr.exec(t, `UPDATE audit_hours SET version = version + 1`)
		rollAll(t, tr.db)
	}
	reroll()
	check := query.VerifyOptions{Reports: true}
	rep := tr.verifyWith(t, check)
	wantClean(t, rep)
	// 60 events 37 minutes apart: 37 hours over 2 days, all in one month.
	if !rep.RollupsChecked || rep.RollupHours != 37 || rep.RollupSpans != 3 {
		t.Fatalf("rollups checked: %v, %d hours and %d spans, want 37 and 3 (2 days, 1 month)", rep.RollupsChecked, rep.RollupHours, rep.RollupSpans)
	}

	// Hour 00:00 holds r-0 (user.login by u1, failed) and r-1 (guild.create
	// by u2); hour 01:00 r-2 (member.ban, no user) and r-3 (user.login).
	cases := []struct {
		name, tamper, subject, reason string
		before                        func(t *testing.T) // a legitimate write first
	}{
		{name: "hour figure raised", tamper: `UPDATE audit_rollup_actions SET n = n + 1 WHERE hour = '2026-01-10T00:00:00Z' AND action = 'user.login'`,
			subject: `report rollup of hour 2026-01-10T00:00:00Z, action "user.login"`, reason: "rolled up as 2 events (1 failed), its rows hold 1 (1 failed)"},
		{name: "hour failures hidden", tamper: `UPDATE audit_rollup_actions SET failed = 0 WHERE hour = '2026-01-10T00:00:00Z' AND action = 'user.login'`,
			subject: `report rollup of hour 2026-01-10T00:00:00Z, action "user.login"`, reason: "rolled up as 1 events (0 failed), its rows hold 1 (1 failed)"},
		{name: "user row deleted", tamper: `DELETE FROM audit_rollup_users WHERE hour = '2026-01-10T00:00:00Z' AND user_id = 'u2'`,
			subject: `report rollup of hour 2026-01-10T00:00:00Z, user "u2"`, reason: "rolled up as 0 events, its rows hold 1"},
		{name: "resource row forged", tamper: `INSERT INTO audit_rollup_resources (hour, resource_type, n) VALUES ('2026-01-10T01:00:00Z', 'invoice', 5)`,
			subject: `report rollup of hour 2026-01-10T01:00:00Z, resource type "invoice"`, reason: "rolled up as 5 events, its rows hold 0"},
		{name: "hour figure moved to another tenant", tamper: `UPDATE audit_rollup_actions SET tenant = 'acme' WHERE hour = '2026-01-10T00:00:00Z' AND action = 'user.login'`,
			subject: `report rollup of hour 2026-01-10T00:00:00Z, action "user.login"`, reason: "rolled up as 0 events (0 failed), its rows hold 1 (1 failed)"},
		{name: "day figure changed", tamper: `UPDATE audit_span_users SET n = n - 1 WHERE user_id = 'u1' AND span_id = (SELECT id FROM audit_spans WHERE starts_at = '2026-01-11T00:00:00Z' AND ends_at = '2026-01-12T00:00:00Z')`,
			subject: `report rollup of day 2026-01-11, user "u1"`, reason: "its hours add up to"},
		{name: "month failures hidden", tamper: `UPDATE audit_span_actions SET failed = 0 WHERE action = 'member.ban' AND span_id = (SELECT id FROM audit_spans WHERE ends_at - starts_at > interval '1 day')`,
			subject: `report rollup of month 2026-01, action "member.ban"`, reason: "(0 failed), its hours add up to"},
		{name: "changed hour marked current", before: func(t *testing.T) {
			e := event("r-late")
			e.OccurredAt = audit.Normalize(day.Add(time.Hour + 30*time.Minute))
			if _, err := tr.repo.Write(ctx, []audit.Event{e}); err != nil {
				t.Fatal(err)
			}
		}, tamper: `WITH folded AS (DELETE FROM audit_hour_changes WHERE hour = '2026-01-10T01:00:00Z')
			UPDATE audit_hours SET rolled_version = version WHERE hour = '2026-01-10T01:00:00Z'`,
			subject: `report rollup of hour 2026-01-10T01:00:00Z, action "user.login"`, reason: "rolled up as 1 events (0 failed), its rows hold 2 (0 failed)"},
		{name: "hour of a current month made stale", tamper: `UPDATE audit_hours SET rolled_version = rolled_version - 1 WHERE hour = '2026-01-10T05:00:00Z'`,
			subject: "report rollup of month 2026-01", reason: "marked current, but its hour 2026-01-10T05:00:00Z is not rolled up"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				reroll()
				wantClean(t, tr.verifyWith(t, check))
			}()
			if c.before != nil {
				c.before(t)
				tr.checkpoint(t, command.CheckpointPeriodic)
			}
			tr.exec(t, c.tamper)
			wantClean(t, tr.verify(t)) // the trail itself is untouched
			wantCaught(t, tr.verifyWith(t, check), c.subject, c.reason)
		})
	}
}
