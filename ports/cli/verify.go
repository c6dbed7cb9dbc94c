package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/ports/contract"
)

// Subjects of the tamper-evidence endpoints.
const (
	subjectEventProof = contract.SubjectEventProof
	subjectPubKey     = contract.SubjectPubKey
)

// VerifyDeps is what "auditq verify" needs; main wires it.
type VerifyDeps struct {
	// Trail verifies the whole stored trail.
	Trail func(ctx context.Context, opts query.VerifyOptions) (evidence.Report, error)
	// External opens the checkpoints kept in JetStream (AUDIT_CHECKPOINTS);
	// close releases the connection.
	External func(ctx context.Context) (src query.CheckpointSource, close func(), err error)
	// TrustedKeys returns the public key of this installation's signing
	// key (AUDITQ_SIGNING_KEY_FILE) followed by those it replaced
	// (AUDITQ_RETIRED_KEYS), or an error when they cannot be read.
	TrustedKeys func() (evidence.KeyRing, error)
	// Connect reaches the running service for --event.
	Connect Connector
}

// ErrVerifyFailed is wrapped by the error Verify returns when the trail,
// or the event, fails verification (exit code 1).
var ErrVerifyFailed = errors.New("verification failed")

// ErrPending is wrapped by the error Verify returns for an event that is
// sealed, its proof holding as far as it goes, but that no signed
// checkpoint covers yet (exit code 3): not a failure, it verifies once
// the next checkpoint is written ("auditq checkpoint" writes one now).
var ErrPending = errors.New("not yet covered by a signed checkpoint")

// Verify implements "auditq verify": it checks the whole table (every
// row's hash, every batch's Merkle root, the batch chain, the deletion
// records, the checkpoints' signatures and chain), optionally against the
// checkpoints kept in JetStream and the report rollups against the rows,
// or one event through its proof. It prints progress and a summary to out
// and returns an error wrapping ErrVerifyFailed that names the first
// failure, or, for an event not yet covered by a checkpoint, ErrPending.
func Verify(ctx context.Context, deps VerifyDeps, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(out)
	from := fs.String("checkpoints-from", "db", "db: check against the database's checkpoints; nats: also against those kept in the JetStream stream AUDIT_CHECKPOINTS")
	eventID := fs.String("event", "", "check one event through its proof (audit.event.proof), without reading the table")
	var tenant *string
	fs.Func("tenant", "--event: the event's tenant, \"\" the default tenant's (for readers bound to no tenant, docs/tenants.md)", func(s string) error {
		tenant = &s
		return nil
	})
	var pubkeys evidence.KeyRing
	fs.Func("pubkey", "a trusted Ed25519 public key (base64, hex or PEM); repeat it for the keys of earlier rotations; default: AUDITQ_SIGNING_KEY_FILE's and AUDITQ_RETIRED_KEYS", func(v string) error {
		k, err := evidence.ParsePublicKey(v)
		if err == nil {
			pubkeys = append(pubkeys, k)
		}
		return err
	})
	reports := fs.Bool("reports", false, "also check that the report rollups agree with the rows (one more scan of the table)")
	workers := fs.Int("workers", 0, "goroutines hashing rows (default: one per CPU)")
	timeout := fs.Duration("timeout", 30*time.Second, "--event: how long to wait for the answer")
	fs.Usage = usage(fs, out,
		"Usage: auditq verify [--checkpoints-from db|nats] [--reports] [--pubkey KEY]",
		"       auditq verify --event EVENT_ID [--tenant T] [--pubkey KEY]",
		"Exit codes: 0 verified; 1 tampering found, or verification failed; 2 usage error;",
		`3 (--event) pending: sealed but not yet covered by a signed checkpoint ("auditq checkpoint" writes one now)`)
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	if *from != "db" && *from != "nats" {
		return usagef("verify: --checkpoints-from must be db or nats, got %q", *from)
	}
	if *eventID != "" && (*reports || *from != "db") {
		return usagef("verify: --event checks one event through its proof; --reports and --checkpoints-from apply to the whole table")
	}
	if *eventID == "" && tenant != nil {
		return usagef("verify: --tenant names the tenant of --event; the whole table is verified over every tenant")
	}
	keys, keyErr := trustedKeys(pubkeys, deps.TrustedKeys)
	if *eventID != "" {
		return verifyEvent(ctx, deps, query.EventProofRequest{ID: *eventID, Tenant: tenant}, keys, keyErr, *timeout, out)
	}
	if keyErr != nil {
		return keyErr
	}
	p := &printer{w: out}
	opts := query.VerifyOptions{Keys: keys, Reports: *reports, Workers: *workers, Progress: func(vp query.VerifyProgress) {
		switch vp.Phase {
		case "records":
			p.println("verify: reading batches, deletion records and checkpoints...")
		case "reports":
			p.println("verify: checking the report rollups against the rows...")
		case "rows":
			p.printf("verify: %d rows checked (%.0f rows/s)\n", vp.Rows, float64(vp.Rows)/vp.Elapsed.Seconds())
		}
	}}
	if *from == "nats" {
		src, closeSrc, err := deps.External(ctx)
		if err != nil {
			return err
		}
		defer closeSrc()
		opts.External = src
	}
	start := time.Now()
	rep, err := deps.Trail(ctx, opts)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	p.printf("verified %d events in %d batches (%d events sealed, %d deleted by %d signed retention records), %d checkpoints",
		rep.Events, rep.Batches, rep.Leaves, rep.DeletedLeaves, rep.Deletions, rep.Checkpoints)
	if rep.External > 0 || *from == "nats" {
		p.printf(" (%d from AUDIT_CHECKPOINTS)", rep.External)
	}
	if rep.Erased > 0 {
		p.printf(", %d events erased (personal data, their keys destroyed)", rep.Erased)
	}
	if rep.RollupsChecked {
		p.printf(", report rollups of %d hours and %d days or months", rep.RollupHours, rep.RollupSpans)
	}
	p.printf(" in %s\n", time.Since(start).Round(time.Millisecond))
	if rep.Uncovered > 0 {
		p.printf("note: the newest %d batches are not yet covered by a signed checkpoint\n", rep.Uncovered)
	}
	if rep.OK() {
		p.println("OK: no tampering found")
		return p.err
	}
	p.printf("FAILED: %d problems, in trail order:\n", rep.FailureCount)
	for i, f := range rep.Failures {
		if i == 20 {
			p.printf("  ... and %d more\n", rep.FailureCount-20)
			break
		}
		p.printf("  %s\n", f)
	}
	// The failed verification is the error that matters, whether or not
	// its output could be written.
	return fmt.Errorf("%w: %s", ErrVerifyFailed, rep.Failures[0])
}

// trustedKeys returns the keys given with --pubkey, else this
// installation's.
func trustedKeys(given evidence.KeyRing, installed func() (evidence.KeyRing, error)) (evidence.KeyRing, error) {
	if len(given) > 0 {
		return given, nil
	}
	if installed == nil {
		return nil, errors.New("verify: no trusted public key: give --pubkey")
	}
	keys, err := installed()
	if err != nil {
		return nil, fmt.Errorf("verify: no trusted public key (%v): give --pubkey, or run where AUDITQ_SIGNING_KEY_FILE is readable", err)
	}
	return keys, nil
}

// verifyEvent asks the service for the event's proof and checks it.
func verifyEvent(ctx context.Context, deps VerifyDeps, req query.EventProofRequest, keys evidence.KeyRing, keyErr error, timeout time.Duration, out io.Writer) error {
	w := &printer{w: out}
	if keyErr != nil {
		// No key of our own: take the service's, and say so.
		data, err := request(ctx, deps.Connect, subjectPubKey, struct{}{}, timeout)
		if err != nil {
			return fmt.Errorf("verify: %v; and asking the service for its key failed: %w", keyErr, err)
		}
		var pk query.PublicKey
		if err := json.Unmarshal(data, &pk); err != nil || len(pk.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("verify: %s answered no usable key: %v", subjectPubKey, err)
		}
		ids := evidence.KeyID(pk.PublicKey)
		for _, r := range pk.Retired {
			if len(r.PublicKey) != ed25519.PublicKeySize {
				return fmt.Errorf("verify: %s answered a retired key of %d bytes", subjectPubKey, len(r.PublicKey))
			}
			ids += ", retired " + evidence.KeyID(r.PublicKey)
		}
		keys = pk.Keys()
		w.printf("warning: trusting the keys the service reports (%s); give --pubkey to check against keys you trust\n", ids)
	}
	id := req.ID
	data, err := request(ctx, deps.Connect, subjectEventProof, req, timeout)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var res query.EventProofResult
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("verify: %s answered an unreadable proof: %w", subjectEventProof, err)
	}
	p := res.EventProof
	if err := p.Verify(keys); err != nil {
		if errors.Is(err, evidence.ErrNotCheckpointed) {
			return pending(w, id, p, res.NextCheckpointDue)
		}
		return fmt.Errorf("%w: %w", ErrVerifyFailed, err)
	}
	c := p.Checkpoint
	w.printf("OK: event %q is part of the signed trail\n", id)
	w.printf("  event hash  %s  (leaf %d of %d of batch %d, sealed %s)\n", p.LeafHash, p.LeafIndex, p.Batch.LeafCount, p.Batch.Seq, evidence.FormatTime(p.Batch.SealedAt))
	w.printf("  batch hash  %s  (batch %d of %d in checkpoint %d's range %d..%d)\n", p.Batch.Hash, p.BatchIndex, p.RangeSize, c.Seq, c.RangeFrom, c.BatchSeq)
	w.printf("  checkpoint  %d, %s, %s, signed by key %s\n", c.Seq, evidence.FormatTime(c.Time), c.Reason, c.KeyID)
	return w.err
}

// pending reports an event whose proof holds up to its batch, which no
// signed checkpoint covers yet, and returns an error wrapping ErrPending.
func pending(w *printer, id string, p evidence.EventProof, due *time.Time) error {
	where := fmt.Sprintf("batch %d", p.Batch.Seq)
	if p.Batch.Seq == 0 {
		where = fmt.Sprintf("batch id %d, being linked into the chain", p.Batch.ID)
	}
	w.printf("PENDING: event %q is sealed (leaf %d of %d of %s, sealed %s, batch signature valid), but no signed checkpoint covers it yet\n",
		id, p.LeafIndex, p.Batch.LeafCount, where, evidence.FormatTime(p.Batch.SealedAt))
	next := "the next periodic checkpoint (AUDITQ_CHECKPOINT_INTERVAL)"
	if due != nil {
		if wait := time.Until(*due); wait > 0 {
			next = fmt.Sprintf("the next checkpoint, due by %s (in %s)", due.UTC().Format(time.RFC3339), wait.Round(time.Second))
		} else {
			next = fmt.Sprintf("the next checkpoint, overdue since %s (are checkpoints failing? see the service log)", due.UTC().Format(time.RFC3339))
		}
	}
	w.printf("it will verify after %s; \"auditq checkpoint\" writes one now\n", next)
	if w.err != nil {
		return w.err
	}
	return fmt.Errorf("verify: event %q: %w", id, ErrPending)
}
