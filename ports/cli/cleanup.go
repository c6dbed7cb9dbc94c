package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/auditq/auditq/ports/contract"
	"github.com/nats-io/nats.go"
)

// Cleanup implements "auditq cleanup": it asks the service to start one
// cleanup job (audit.admin.cleanup, so that the job records who started
// it), waits for its result on audit.results.cleanup and prints it. The
// service checks the job as the job will before storing it, so a job it
// would reject is refused on the request. It returns an error when the
// job is refused or no result comes within -timeout.
func Cleanup(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(out)
	days := fs.String("retention-days", "", "delete events older than this many `days` (counted from now)")
	before := fs.String("before", "", "delete events before this time: RFC 3339 (2025-01-01T00:00:00Z) or a date (2025-01-01: its start, UTC)")
	exclude := fs.String("exclude", "", "comma-separated actions to keep, e.g. security.breach,admin.access")
	dryRun := fs.Bool("dry-run", false, "count what would be deleted; delete nothing")
	timeout := fs.Duration("timeout", 35*time.Minute, "how long to wait for the result")
	fs.Usage = usage(fs, out, "Usage: auditq cleanup (--retention-days N | --before DATE) [--exclude a,b] [--dry-run] [--timeout 35m]")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	body, err := cleanupRequest(*days, *before, *exclude, *dryRun)
	if err != nil {
		return err
	}

	nc, err := connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	// Subscribe before starting the job, so the answer cannot be missed.
	answers := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(contract.SubjectCleanupResults, answers)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", contract.SubjectCleanupResults, err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // the connection closes anyway
	if err := nc.Flush(); err != nil {
		return err
	}
	data, err := requestOn(ctx, nc, contract.SubjectAdminCleanup, json.RawMessage(body), 30*time.Second)
	if err != nil {
		return err
	}
	var job contract.JobStarted
	if err := json.Unmarshal(data, &job); err != nil || job.ID == "" {
		return fmt.Errorf("unreadable answer of %s: %q", contract.SubjectAdminCleanup, data)
	}
	if _, err := fmt.Fprintf(out, "started %s job %s: %s\n", job.Subject, job.ID, body); err != nil {
		return err
	}

	wait := time.NewTimer(*timeout)
	defer wait.Stop()
	for {
		select {
		case m := <-answers:
			if m.Header.Get("job_id") == job.ID {
				return printCleanupResult(out, m.Data)
			}
		case <-wait.C:
			return fmt.Errorf("no result for cleanup %s within %s; it may still be running (see audit.results.cleanup, and auditq poison list for a rejection)", job.ID, *timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// cleanupRequest builds the job body from the flags, checking that exactly
// one of days and before is given.
func cleanupRequest(days, before, exclude string, dryRun bool) ([]byte, error) {
	req := map[string]any{}
	switch {
	case days != "" && before != "":
		return nil, usagef("give either --retention-days or --before, not both")
	case days != "":
		n, err := strconv.Atoi(days)
		if err != nil {
			return nil, usagef("--retention-days: a whole number of days, got %q", days)
		}
		req["retentionDays"] = n
	case before != "":
		t, err := timeFlag("--before", before, time.UTC)
		if err != nil {
			return nil, err
		}
		req["beforeDate"] = t
	default:
		return nil, usagef("give --retention-days N or --before DATE")
	}
	actions := []string{}
	for _, a := range strings.Split(exclude, ",") {
		if a = strings.TrimSpace(a); a != "" {
			actions = append(actions, a)
		}
	}
	req["excludeActions"] = actions
	if dryRun {
		req["dryRun"] = true
	}
	return json.Marshal(req)
}

func printCleanupResult(out io.Writer, data []byte) error {
	var r struct {
		ID             string    `json:"id"`
		Cutoff         time.Time `json:"cutoff"`
		ExcludeActions []string  `json:"excludeActions"`
		DeletedCount   int64     `json:"deletedCount"`
		DryRun         bool      `json:"dryRun"`
		DurationMs     int64     `json:"durationMs"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("unreadable result %q: %w", data, err)
	}
	verb := "deleted"
	if r.DryRun {
		verb = "dry run: would delete"
	}
	kept := ""
	if len(r.ExcludeActions) > 0 {
		kept = ", keeping " + strings.Join(r.ExcludeActions, ", ")
	}
	p := &printer{w: out}
	p.printf("%s %d events before %s%s (%d ms)\n", verb, r.DeletedCount, r.Cutoff.UTC().Format(time.RFC3339), kept, r.DurationMs)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, data, "", "  "); err == nil {
		p.println(pretty.String())
	}
	return p.err
}
