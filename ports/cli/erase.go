package cli

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/ports/contract"
)

// Erase implements "auditq erase --user ID [--tenant T]": it asks the
// running service to erase the user's personal data in tenant T (required
// with tenants on; audit.admin.erase: the erasure is recorded in that
// tenant's trail, then the user's keys in that tenant are destroyed) and
// prints the outcome, or with --json the answer as received.
func Erase(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	fs.SetOutput(out)
	user := fs.String("user", "", "the user id whose personal data to erase (required)")
	var tenant *string
	fs.Func("tenant", "the tenant whose data subject the user is (required with tenants on; \"\" for the default tenant)", func(s string) error {
		tenant = &s
		return nil
	})
	asJSON := fs.Bool("json", false, "print the JSON response as received")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = usage(fs, out,
		"Usage: auditq erase --user ID [--tenant T] [--json]    erase a user's personal data (needs the tenant's mode to be encrypt)",
		"The erasure is recorded in the tenant's trail first; the user's events of that tenant stay, verifiable, with their personal fields shown as erased.",
		"The same user id in another tenant is another person, left as it is. With tenants on, --tenant is required.")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	if *user == "" {
		return usagef("erase: --user is required")
	}
	return askAndPrint(ctx, connect, contract.SubjectAdminErase, command.EraseRequest{UserID: *user, Tenant: tenant}, *timeout, *asJSON, out, func(res command.EraseResult) error {
		p := &printer{w: out}
		in := ""
		if res.Tenant != "" {
			in = " in tenant " + res.Tenant
		}
		p.printf("erased%s: pseudonym %s, %d subject keys destroyed, recorded as event %s at %s\n",
			in, res.UserPseudonym, res.KeysDestroyed, res.EventID, res.RequestedAt.Format(time.RFC3339Nano))
		return p.err
	})
}
