package cli

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/ports/contract"
)

// Erase implements "auditq erase --user ID": it asks the running service
// to erase the user's personal data (audit.admin.erase: the erasure is
// recorded in the trail, then the user's keys are destroyed) and prints
// the outcome, or with --json the answer as received.
func Erase(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	fs.SetOutput(out)
	user := fs.String("user", "", "the user id whose personal data to erase (required)")
	asJSON := fs.Bool("json", false, "print the JSON response as received")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = usage(fs, out,
		"Usage: auditq erase --user ID [--json]    erase a user's personal data (needs AUDITQ_PERSONAL_DATA=encrypt)",
		"The erasure is recorded in the trail first; the user's events stay, verifiable, with their personal fields shown as erased.")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	if *user == "" {
		return usagef("erase: --user is required")
	}
	return askAndPrint(ctx, connect, contract.SubjectAdminErase, command.EraseRequest{UserID: *user}, *timeout, *asJSON, out, func(res command.EraseResult) error {
		p := &printer{w: out}
		p.printf("erased: pseudonym %s, %d subject keys destroyed, recorded as event %s at %s\n",
			res.UserPseudonym, res.KeysDestroyed, res.EventID, res.RequestedAt.Format(time.RFC3339Nano))
		return p.err
	})
}
