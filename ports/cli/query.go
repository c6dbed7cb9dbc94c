package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/auditq/auditq/app/query"
	"github.com/auditq/auditq/ports/contract"
)

// Query implements "auditq query": it searches the audit trail
// (audit.query), or prints one event with --id (audit.event.get), as a
// table or, with --json, as the JSON received. A service error is returned
// as a *ServiceError.
func Query(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(out)
	var req struct {
		contract.Filter
		Limit  *int   `json:"limit,omitempty"`
		Cursor string `json:"cursor,omitempty"`
	}
	filters := addFilterFlags(fs, &req.Filter)
	limit := fs.Int("limit", 0, "events per page, 1 to 1000 (default 100)")
	fs.StringVar(&req.Cursor, "cursor", "", "continue after the page that printed this cursor")
	id := fs.String("id", "", "print the event with this id instead of searching")
	asJSON := fs.Bool("json", false, "print the JSON response as received")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = usage(fs, out,
		"Usage: auditq query [--action 'guild.*'] [--user u1] [--resource-type T --resource-id ID] [--success false]",
		"                    [--from 2026-11-01] [--to 2026-11-24T12:00:00Z] [--limit 50] [--cursor C] [--json]",
		"       auditq query --id EVENT_ID [--tenant T] [--json]")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	if err := filters.parse(); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "limit" {
			req.Limit = limit
		}
	})

	subject, body := subjectQuery, any(req)
	if *id != "" {
		subject, body = subjectEventGet, query.GetEventRequest{ID: *id, Tenant: req.Tenant}
	}
	data, err := request(ctx, connect, subject, body, *timeout)
	if err != nil {
		return flagErrors(err, filterFlagNames)
	}
	if *asJSON {
		_, err := fmt.Fprintf(out, "%s\n", data)
		return err
	}
	var page contract.SearchPage
	if *id != "" {
		var ev contract.EventView
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("decode the answer of %s: %w", subject, err)
		}
		return printEvent(out, ev)
	}
	if err := json.Unmarshal(data, &page); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", subject, err)
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	t := &printer{w: tw}
	t.println("TIME\tUSER\tACTION\tRESOURCE\tOK\tID")
	for _, e := range page.Events {
		t.printf("%s\t%s\t%s\t%s\t%s\t%s\n", e.Timestamp.Format(time.RFC3339Nano), cell(userOf(e)),
			cell(e.Action), cell(e.ResourceType+"/"+e.ResourceID), yesNo(e.Success), cell(e.ID))
	}
	t.flush(tw)
	if t.err != nil {
		return t.err
	}
	p := &printer{w: out}
	p.printf("%d events", len(page.Events))
	if page.NextCursor != nil {
		p.printf("; more with --cursor %s", *page.NextCursor)
	}
	p.println()
	return p.err
}

// userOf is how a listing names the event's user.
func userOf(e contract.EventView) string {
	if e.UserID == nil {
		return "(system)"
	}
	return *e.UserID
}

func printEvent(out io.Writer, e contract.EventView) error {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	t := &printer{w: tw}
	for _, row := range [][2]string{
		{"id", e.ID}, {"timestamp", e.Timestamp.Format(time.RFC3339Nano)}, {"received", e.ReceivedAt.Format(time.RFC3339Nano)},
		{"user", userOf(e)}, {"action", e.Action}, {"resource", e.ResourceType + "/" + e.ResourceID},
		{"success", yesNo(e.Success)}, {"error", e.ErrorMessage}, {"ip address", e.IPAddress},
		{"user agent", e.UserAgent}, {"session", e.SessionID}, {"request", e.RequestID}, {"details", string(e.Details)},
	} {
		if row[1] != "" {
			t.printf("%s\t%s\n", row[0], strings.ReplaceAll(row[1], "\n", "\n\t"))
		}
	}
	t.flush(tw)
	return t.err
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
