package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/auditq/auditq/ports/contract"
)

// Schedule is one installed JetStream message schedule, as "auditq schedule
// show" prints it.
type Schedule struct {
	Subject   string    // e.g. audit.schedule.cleanup
	Pattern   string    // cron, @every or @daily-style
	TimeZone  string    // IANA zone of a cron pattern
	Target    string    // subject each firing is written to
	Payload   string    // body of each fired message
	Installed time.Time // when the schedule message was stored
	Next      time.Time // next firing; zero when unknown
}

// ScheduleLister returns the installed schedules.
type ScheduleLister func(ctx context.Context) ([]Schedule, error)

// RequestSchedules returns a ScheduleLister asking the running service
// (audit.admin.schedules, an operator's request) on a connection of its
// own: no JetStream permission on stream AUDIT is needed.
func RequestSchedules(connect Connector) ScheduleLister {
	return func(ctx context.Context) ([]Schedule, error) {
		data, err := request(ctx, connect, contract.SubjectAdminSchedules, struct{}{}, 30*time.Second)
		if err != nil {
			return nil, err
		}
		var list contract.ScheduleList
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("decode the answer of %s: %w", contract.SubjectAdminSchedules, err)
		}
		out := make([]Schedule, len(list.Schedules))
		for i, v := range list.Schedules {
			out[i] = Schedule{Subject: v.Subject, Pattern: v.Pattern, TimeZone: v.TimeZone, Target: v.Target, Payload: v.Payload, Installed: v.Installed}
			if v.Next != nil {
				out[i].Next = *v.Next
			}
		}
		return out, nil
	}
}

// ScheduleCmd implements "auditq schedule show": it prints every installed
// schedule with its next firing. It returns the lister's error, or one for
// an unknown subcommand.
func ScheduleCmd(ctx context.Context, list ScheduleLister, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("schedule", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = usage(fs, out, "Usage: auditq schedule show    print the installed JetStream schedules and their next firing")
	if help, err := parseFlags(fs, args, true); help || err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "show" {
		fs.Usage()
		return errors.New(`expected "auditq schedule show"`)
	}
	schedules, err := list(ctx)
	if err != nil {
		return err
	}
	if len(schedules) == 0 {
		p := &printer{w: out}
		p.println("no schedules installed (stream AUDIT, subjects audit.schedule.>)")
		return p.err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	t := &printer{w: tw}
	t.println("SCHEDULE\tPATTERN\tTIME ZONE\tTARGET\tNEXT FIRING (UTC)\tINSTALLED (UTC)\tPAYLOAD")
	for _, s := range schedules {
		next := "unknown"
		if !s.Next.IsZero() {
			next = s.Next.UTC().Format(time.RFC3339)
		}
		t.printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Subject, s.Pattern, s.TimeZone, s.Target, next,
			s.Installed.UTC().Format(time.RFC3339), s.Payload)
	}
	t.flush(tw)
	return t.err
}
