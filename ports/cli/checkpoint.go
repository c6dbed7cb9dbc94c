package cli

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/auditq/auditq/domain/evidence"
	"github.com/auditq/auditq/ports"
	"github.com/auditq/auditq/ports/contract"
)

// Checkpoint implements "auditq checkpoint": it asks the running service
// to write a signed tamper-evidence checkpoint now (audit.checkpoint.write)
// and prints it, or with --json the answer as received. Events stored
// before it can then be proven with "auditq verify --event" at once.
func Checkpoint(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	fs.SetOutput(out)
	asJSON := fs.Bool("json", false, "print the JSON response as received")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = usage(fs, out, "Usage: auditq checkpoint [--json]    write a signed checkpoint now, covering every event stored so far")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	return askAndPrint(ctx, connect, contract.SubjectCheckpointWrite, struct{}{}, *timeout, *asJSON, out, func(res ports.CheckpointWritten) error {
		p := &printer{w: out}
		printCheckpoint(p, res.Checkpoint)
		if !res.Published {
			p.println("note: stored, but not yet published to the stream AUDIT_CHECKPOINTS (the next checkpoint publishes it; see the service log)")
		}
		return p.err
	})
}

func printCheckpoint(p *printer, c evidence.Checkpoint) {
	p.printf("checkpoint %d written (%s) at %s, signed by key %s\n", c.Seq, c.Reason, evidence.FormatTime(c.Time), c.KeyID)
	p.printf("  batches    %d, head %s", c.BatchSeq, c.BatchHash)
	switch {
	case c.RangeFrom > c.BatchSeq:
		p.printf(" (none new since the previous checkpoint)")
	case c.Seq > 1:
		p.printf(" (new since checkpoint %d: %d..%d)", c.Seq-1, c.RangeFrom, c.BatchSeq)
	}
	p.printf("\n  deletions  %d, head %s\n", c.DeletionSeq, c.DeletionHash)
}
