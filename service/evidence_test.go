package service_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/uptrace/bun"

	"github.com/auditq/auditq/adapters/keyfile"
	"github.com/auditq/auditq/adapters/natsjs"
	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/ports/contract"
	"github.com/auditq/auditq/service"
	"github.com/auditq/auditq/service/servicetest"
)

// runVerify runs "auditq verify args..." as the CLI does and returns its
// output and error.
func runVerify(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return servicetest.Client(ctx, t, env, append([]string{"verify"}, args...)...)
}

func checkpointCount(t *testing.T, db *bun.DB, where string) int {
	t.Helper()
	n, err := db.NewSelect().Table("audit_checkpoints").Where(where).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestTamperEvidenceEndToEnd(t *testing.T) {
	// An external NATS server, so that the checkpoints kept in JetStream
	// outlive the service.
	srv := natstest.Start(t)
	env := servicetest.Env(t)
	env["AUDITQ_NATS_URL"] = srv.ClientURL()
	env["AUDITQ_CHECKPOINT_INTERVAL"] = "1s"
	svc := servicetest.Start(t, env)
	nc, js := natstest.Connect(t, srv.ClientURL())
	db := servicetest.OpenDB(t, env)
	ctx := context.Background()

	var msgs []*nats.Msg
	for i := range 20 {
		msgs = append(msgs, servicetest.EventMsg("audit.log", "", servicetest.EventJSON(fmt.Sprintf("te-%d", i), "user.login")))
	}
	msgs = append(msgs, servicetest.EventMsg("audit.bulk", "bulk-te", `{"events":[`+servicetest.EventJSON("tb-0", "doc.read")+`,`+servicetest.EventJSON("tb-1", "doc.read")+`]}`))
	servicetest.PublishAll(t, js, msgs)
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		n := servicetest.CountRows(t, db, "id LIKE 't%'")
		return n == 22, fmt.Sprintf("%d of 22 rows", n)
	})
	// Periodic checkpoints arrive, also with nothing new to sign, and each
	// is published to AUDIT_CHECKPOINTS.
	cps := natsjs.NewCheckpoints(js, contract.SubjectCheckpoints)
	servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
		periodic := checkpointCount(t, db, "reason = 'periodic' AND batch_seq = (SELECT seq FROM audit_chain_heads WHERE chain = 'batches')")
		total := checkpointCount(t, db, "true")
		last, err := cps.LastPublished(ctx)
		return periodic >= 2 && err == nil && last == int64(total), fmt.Sprintf("%d periodic checkpoints covering every batch, %d stored, newest published %d (%v)", periodic, total, last, err)
	})

	// One event, checked through audit.event.proof without the table.
	out, err := runVerify(t, env, "--event", "te-3")
	if err != nil || !strings.Contains(out, `OK: event "te-3" is part of the signed trail`) {
		t.Fatalf("verify --event: %v\n%s", err, out)
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_logs SET success = false WHERE id = 'te-4'`); err != nil {
		t.Fatal(err)
	}
	if out, err := runVerify(t, env, "--event", "te-4"); err == nil || !strings.Contains(err.Error(), "the event was modified") {
		t.Fatalf("verify --event of a modified event: %v\n%s", err, out)
	}
	if out, err := runVerify(t, env, "--event", "te-3", "--reports"); err == nil || !strings.Contains(err.Error(), "apply to the whole table") {
		t.Fatalf("verify --event with --reports: %v\n%s", err, out)
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_logs SET success = true WHERE id = 'te-4'`); err != nil {
		t.Fatal(err)
	}
	// audit.pubkey serves the key the checkpoints are signed with.
	reply, err := nc.Request(contract.SubjectPubKey, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var pk query.PublicKey
	if err := json.Unmarshal(reply.Data, &pk); err != nil || pk.Algorithm != "Ed25519" || pk.KeyID != evidence.KeyID(pk.PublicKey) {
		t.Fatalf("audit.pubkey: %s (%v)", reply.Data, err)
	}

	// Shutdown writes a last checkpoint, stored and published.
	_ = svc.Close()
	var last struct {
		Seq    int64
		Reason string
	}
	if err := db.NewSelect().Table("audit_checkpoints").Column("seq", "reason").Order("seq DESC").Limit(1).Scan(ctx, &last.Seq, &last.Reason); err != nil {
		t.Fatal(err)
	}
	if pub, err := cps.LastPublished(ctx); last.Reason != "shutdown" || err != nil || pub != last.Seq {
		t.Fatalf("last checkpoint %+v, last published %d (%v): want the shutdown checkpoint, published", last, pub, err)
	}
	for _, args := range [][]string{nil, {"--checkpoints-from", "nats"}, {"--reports"}} {
		out, err := runVerify(t, env, args...)
		if err != nil || !strings.Contains(out, "OK: no tampering found") || !strings.Contains(out, "verified 2") {
			t.Fatalf("verify %v of an untouched trail: %v\n%s", args, err, out)
		}
		if checked := strings.Contains(out, ", report rollups of "); checked != (len(args) > 0 && args[0] == "--reports") {
			t.Fatalf("verify %v: report rollups checked is %v:\n%s", args, checked, out)
		}
	}

	// Someone with full write access cuts the newest batches cleanly (rows,
	// batch records, chain head) and deletes the checkpoints that signed
	// them, which they cannot re-sign. The database alone is consistent
	// again; the checkpoints kept in JetStream are not.
	cutTail(t, db, 2)
	if out, err := runVerify(t, env); err != nil {
		t.Fatalf("the cut database is expected to be self-consistent: %v\n%s", err, out)
	}
	out, err = runVerify(t, env, "--checkpoints-from", "nats")
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(err.Error(), "(AUDIT_CHECKPOINTS): missing from the database") {
		t.Fatalf("verify --checkpoints-from nats of a cut database: %v\n%s", err, out)
	}
	if !strings.Contains(out, "the newest batches were removed") {
		t.Fatalf("the failures should say the newest batches were removed:\n%s", out)
	}
}

// cutTail deletes the newest n batches with their rows, rewinds the chain
// head, and deletes the checkpoints that covered them: a consistent cut
// without the key.
func cutTail(t *testing.T, db *bun.DB, n int) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`DELETE FROM audit_logs WHERE seal_batch IN (SELECT id FROM audit_batches WHERE seq > (SELECT max(seq) FROM audit_batches) - $1)`,
		`DELETE FROM audit_batches WHERE seq > (SELECT max(seq) FROM audit_batches) - $1`,
		`UPDATE audit_chain_heads h SET seq = b.seq, hash = b.hash, prev_hash = b.prev_hash
			FROM audit_batches b WHERE h.chain = 'batches' AND b.seq = (SELECT max(seq) FROM audit_batches) AND $1 > 0`,
		`DELETE FROM audit_checkpoints WHERE batch_seq > (SELECT max(seq) FROM audit_batches) AND $1 > 0`,
	} {
		if _, err := db.DB.ExecContext(ctx, q, n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// Key rotation as an operator does it: stop, move the key file away, start
// (a new key is created and signs from then on). "auditq verify" then
// names what the old key signed until that key is trusted again, through
// AUDITQ_RETIRED_KEYS or a second --pubkey.
func TestKeyRotationThroughTheCLI(t *testing.T) {
	env := servicetest.Env(t)
	db := servicetest.OpenDB(t, env)
	ingest := func(svc *service.Service, prefix string) {
		t.Helper()
		_, js := natstest.Connect(t, svc.NATSURL())
		var msgs []*nats.Msg
		for i := range 5 {
			msgs = append(msgs, servicetest.EventMsg("audit.log", "", servicetest.EventJSON(fmt.Sprintf("%s-%d", prefix, i), "user.login")))
		}
		servicetest.PublishAll(t, js, msgs)
		servicetest.Eventually(t, 20*time.Second, func() (bool, string) {
			n := servicetest.CountRows(t, db, "id LIKE ?", prefix+"-%")
			return n == 5, fmt.Sprintf("%d of 5 %s events stored", n, prefix)
		})
		_ = svc.Close() // the shutdown checkpoint signs them
	}
	ingest(servicetest.Start(t, env), "before")
	keyFile := filepath.Join(env["AUDITQ_DATA_DIR"], "signing-key.pem")
	priv, err := keyfile.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	retired := keyfile.EncodePublicKey(priv.Public().(ed25519.PublicKey))
	retiredID := evidence.KeyID(priv.Public().(ed25519.PublicKey))
	if err := os.Rename(keyFile, keyFile+".retired"); err != nil {
		t.Fatal(err)
	}
	// A new key beside the trail the old key signed: the start refuses it
	// (and writes no key file) until AUDITQ_RETIRED_KEYS lists the old key.
	if _, err := servicetest.TryStart(t, env); err == nil || !strings.Contains(err.Error(), "signed by key "+retiredID) ||
		!strings.Contains(err.Error(), keyFile) || !strings.Contains(err.Error(), "AUDITQ_RETIRED_KEYS") {
		t.Fatalf("serve with a new key beside the old trail: %v", err)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused key was written: %v", err)
	}
	withRetired := maps.Clone(env)
	withRetired["AUDITQ_RETIRED_KEYS"] = retired
	ingest(servicetest.Start(t, withRetired), "after")
	priv, err = keyfile.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	current := keyfile.EncodePublicKey(priv.Public().(ed25519.PublicKey))

	out, err := runVerify(t, env)
	if err == nil || !strings.Contains(out, "not signed by the trusted key") {
		t.Fatalf("verify with the new key only: %v\n%s", err, out)
	}
	if out, err := runVerify(t, withRetired); err != nil || !strings.Contains(out, "OK: no tampering found") {
		t.Fatalf("verify with AUDITQ_RETIRED_KEYS: %v\n%s", err, out)
	}
	if out, err := runVerify(t, env, "--pubkey", current, "--pubkey", retired); err != nil || !strings.Contains(out, "OK: no tampering found") {
		t.Fatalf("verify with both keys as --pubkey: %v\n%s", err, out)
	}

	// A client without the key file trusts the keys audit.pubkey reports:
	// the proof of an event that the old key's checkpoint covers checks
	// once the service lists the retired key, and not before.
	client := maps.Clone(env)
	client["AUDITQ_SIGNING_KEY_FILE"] = filepath.Join(t.TempDir(), "absent.pem")
	svc := servicetest.Start(t, env)
	client["AUDITQ_NATS_URL"] = svc.NATSURL()
	if out, err := runVerify(t, client, "--event", "before-0"); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("verify --event of an event the retired key covers, service unaware of that key: %v\n%s", err, out)
	}
	_ = svc.Close()
	svc = servicetest.Start(t, withRetired)
	client["AUDITQ_NATS_URL"] = svc.NATSURL()
	nc, _ := natstest.Connect(t, svc.NATSURL())
	reply, err := nc.Request(contract.SubjectPubKey, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var pk query.PublicKey
	if err := json.Unmarshal(reply.Data, &pk); err != nil || len(pk.Retired) != 1 || pk.Retired[0].KeyID != retiredID ||
		evidence.KeyID(pk.Retired[0].PublicKey) != retiredID || keyfile.EncodePublicKey(pk.PublicKey) != current {
		t.Fatalf("audit.pubkey with AUDITQ_RETIRED_KEYS: %s (%v)", reply.Data, err)
	}
	out, err = runVerify(t, client, "--event", "before-0")
	if err != nil || !strings.Contains(out, `OK: event "before-0"`) || !strings.Contains(out, "signed by key "+retiredID) ||
		!strings.Contains(out, "retired "+retiredID) {
		t.Fatalf("verify --event with the keys the service reports: %v\n%s", err, out)
	}
	_ = svc.Close()

	withRetired["AUDITQ_RETIRED_KEYS"] = "not-a-key"
	if out, err := runVerify(t, withRetired); err == nil || !strings.Contains(err.Error(), "AUDITQ_RETIRED_KEYS") {
		t.Fatalf("verify with a malformed retired key: %v\n%s", err, out)
	}
	if _, err := servicetest.TryStart(t, withRetired); err == nil || !strings.Contains(err.Error(), "AUDITQ_RETIRED_KEYS") {
		t.Fatalf("serve with a malformed retired key started (%v)", err)
	}
}
