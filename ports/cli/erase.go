package cli

import (
	"context"
	"flag"
	"io"
	"strings"
	"time"

	"github.com/auditq/auditq/app/command"
	"github.com/auditq/auditq/ports/contract"
)

// users collects the values of a repeated --user flag.
type users []string

func (u *users) String() string { return strings.Join(*u, ",") }

func (u *users) Set(v string) error {
	*u = append(*u, v)
	return nil
}

// Erase implements "auditq erase --user ID [--user ID ...] [--tenant T]":
// it asks the running service to erase the users' personal data in
// tenant T (required with tenants on; audit.admin.erase: each erasure is
// recorded in that tenant's trail, then the users' keys in that tenant
// are destroyed, under one replacement of the key-encryption key for all
// of them) and prints the outcome, or with --json the answer as received.
func Erase(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	fs.SetOutput(out)
	var list users
	fs.Var(&list, "user", "a user id whose personal data to erase (required; repeat it to erase several users together)")
	var tenant *string
	fs.Func("tenant", "the tenant whose data subjects the users are (required with tenants on; \"\" for the default tenant)", func(s string) error {
		tenant = &s
		return nil
	})
	asJSON := fs.Bool("json", false, "print the JSON response as received")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = usage(fs, out,
		"Usage: auditq erase --user ID [--user ID ...] [--tenant T] [--json]    erase users' personal data (needs the tenant's mode to be encrypt)",
		"Each erasure is recorded in the tenant's trail first; the users' events of that tenant stay, verifiable, with their personal fields shown as erased.",
		"The same user id in another tenant is another person, left as it is. With tenants on, --tenant is required.",
		"Several users in one request share one replacement of the key-encryption key (at most 1000).")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	if len(list) == 0 {
		return usagef("erase: --user is required")
	}
	printOne := func(p *printer, res command.EraseResult) {
		in := ""
		if res.Tenant != "" {
			in = " in tenant " + res.Tenant
		}
		p.printf("erased%s: pseudonym %s, %d subject keys destroyed, recorded as event %s at %s\n",
			in, res.UserPseudonym, res.KeysDestroyed, res.EventID, res.RequestedAt.Format(time.RFC3339Nano))
	}
	if len(list) == 1 {
		return askAndPrint(ctx, connect, contract.SubjectAdminErase, command.EraseRequest{UserID: list[0], Tenant: tenant}, *timeout, *asJSON, out, func(res command.EraseResult) error {
			p := &printer{w: out}
			printOne(p, res)
			return p.err
		})
	}
	return askAndPrint(ctx, connect, contract.SubjectAdminErase, command.EraseRequest{UserIDs: list, Tenant: tenant}, *timeout, *asJSON, out, func(res command.EraseListResult) error {
		p := &printer{w: out}
		for _, r := range res.Erasures {
			printOne(p, r)
		}
		return p.err
	})
}
