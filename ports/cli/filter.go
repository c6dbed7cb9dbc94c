package cli

import (
	"flag"
	"time"

	"github.com/auditq/auditq/ports/contract"
)

// filterFlags are the filter flags of "auditq query" and "auditq export".
type filterFlags struct {
	f             *contract.Filter
	success, from string
	to            string
}

// filterFlagNames maps the request fields of a filter to the flags that
// set them, for flagErrors.
var filterFlagNames = map[string]string{
	"userId": "--user", "action": "--action", "resourceType": "--resource-type", "resourceId": "--resource-id",
	"success": "--success", "sessionId": "--session", "requestId": "--request", "from": "--from", "to": "--to",
	"tenant": "--tenant",
}

// addFilterFlags defines the filter flags on fs, filling f; parse checks
// and converts the values that need it once fs is parsed.
func addFilterFlags(fs *flag.FlagSet, f *contract.Filter) *filterFlags {
	ff := &filterFlags{f: f}
	fs.StringVar(&f.UserID, "user", "", "events of this user id")
	fs.StringVar(&f.Action, "action", "", "this action, or a prefix ending in *, e.g. 'guild.*'")
	fs.StringVar(&f.ResourceType, "resource-type", "", "events on this resource type")
	fs.StringVar(&f.ResourceID, "resource-id", "", "events on this resource id")
	fs.StringVar(&ff.success, "success", "", "true: only successes; false: only failures")
	fs.StringVar(&f.SessionID, "session", "", "events of this session id")
	fs.StringVar(&f.RequestID, "request", "", "events of this request id")
	fs.StringVar(&ff.from, "from", "", "events at or after this time: RFC 3339, or a date (its start, UTC)")
	fs.StringVar(&ff.to, "to", "", "events before this time: RFC 3339, or a date (its start, UTC)")
	fs.Func("tenant", "one tenant's events, \"\" the default tenant's (for readers bound to no tenant, docs/tenants.md)", func(s string) error {
		f.Tenant = &s
		return nil
	})
	return ff
}

// parse sets success, from and to; the error names the flag and wraps
// ErrUsage.
func (ff *filterFlags) parse() error {
	switch ff.success {
	case "":
	case "true", "false":
		v := ff.success == "true"
		ff.f.Success = &v
	default:
		return usagef("--success must be true or false, got %q", ff.success)
	}
	var err error
	if ff.f.From, err = timeFlag("--from", ff.from, time.UTC); err != nil {
		return err
	}
	ff.f.To, err = timeFlag("--to", ff.to, time.UTC)
	return err
}
