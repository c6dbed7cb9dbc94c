package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/auditq/auditq/domain/audit"
)

// ErrUsage is wrapped by the errors of a command line that cannot work:
// an unknown flag, a bad flag value, a missing argument (exit code 2).
var ErrUsage = errors.New("usage")

// usageError is a command-line mistake; its message is the mistake.
type usageError struct{ err error }

func (e usageError) Error() string            { return e.err.Error() }
func (e usageError) Unwrap() []error          { return []error{e.err, ErrUsage} }
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// parseFlags parses args into fs. help is true when -h or --help was asked
// for: the usage is printed and the command should return err (nil).
// Positional arguments are an error unless allowArgs. Errors wrap ErrUsage.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs bool) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, usageError{err}
	}
	if !allowArgs && fs.NArg() > 0 {
		return false, usagef("unexpected argument %q", fs.Arg(0))
	}
	return false, nil
}

// timeFlag reads the value of the time flag name, as the user typed it
// ("--start"): an RFC 3339 time, or a date YYYY-MM-DD meaning the first
// instant of that day in loc (nil: UTC). It returns the time in RFC 3339
// for the request, "" for "", or an error naming the flag that wraps
// ErrUsage.
func timeFlag(name, value string, loc *time.Location) (string, error) {
	if value == "" {
		return "", nil
	}
	if loc == nil {
		loc = time.UTC
	}
	if t, err := time.Parse(time.RFC3339Nano, value); err == nil {
		return t.Format(time.RFC3339Nano), nil
	}
	if d, err := time.Parse(time.DateOnly, value); err == nil {
		return audit.StartOfDate(d.Year(), d.Month(), d.Day(), loc).Format(time.RFC3339Nano), nil
	}
	zone := "UTC"
	if loc != time.UTC {
		zone = loc.String()
	}
	return "", usagef("%s: want an RFC 3339 time such as 2026-11-24T09:30:00Z or a date such as 2026-11-24 (its start, %s), got %q",
		name, zone, value)
}

// zoneFlag reads the IANA time zone of flag name ("" and "UTC": UTC).
func zoneFlag(name, value string) (*time.Location, error) {
	if value == "" || value == "UTC" {
		return time.UTC, nil
	}
	if value != "Local" && !strings.ContainsAny(value, "\x00\\") {
		if loc, err := time.LoadLocation(value); err == nil {
			return loc, nil
		}
	}
	return nil, usagef("%s: want an IANA time zone name such as Europe/Berlin, got %q", name, value)
}

// flagErrors renames the request fields a *ServiceError of code 400 names
// to the flags that set them (fields maps "startDate" to "--start"), so
// that the error speaks of what the user typed. Other errors are returned
// as they are.
func flagErrors(err error, fields map[string]string) error {
	var se *ServiceError
	if !errors.As(err, &se) || se.Code != "400" {
		return err
	}
	field, rule, ok := strings.Cut(se.Message, ": ")
	flagName, known := fields[field]
	if !ok || !known {
		return err
	}
	for f, n := range fields { // the rule may name other fields ("must be after startDate")
		rule = replaceWord(rule, f, n)
	}
	renamed := *se
	renamed.Message = flagName + ": " + rule
	return &renamed
}

// replaceWord replaces whole-word occurrences of old in s by new.
func replaceWord(s, old, new string) string {
	isWord := func(b byte) bool {
		return b == '_' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
	}
	var out strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			out.WriteString(s)
			return out.String()
		}
		end := i + len(old)
		if (i == 0 || !isWord(s[i-1])) && (end == len(s) || !isWord(s[end])) {
			out.WriteString(s[:i] + new)
		} else {
			out.WriteString(s[:end])
		}
		s = s[end:]
	}
}
