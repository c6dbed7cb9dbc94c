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
	"github.com/nats-io/nats.go/jetstream"
)

// Subjects the cleanup command talks on.
const (
	subjectCleanup        = contract.SubjectCleanup
	subjectCleanupResults = contract.SubjectCleanupResults
	subjectCleanupPoison  = contract.PoisonPrefix + "cleanup"
)

// Cleanup implements "auditq cleanup": it publishes one audit.cleanup job
// with a fresh Nats-Msg-Id, waits for its result on audit.results.cleanup
// (or its rejection on audit.poison.cleanup) and prints it. It returns an
// error when the job is rejected or no answer comes within -timeout.
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
	id := "cleanup-" + randomID()
	// Subscribe before publishing, so the answer cannot be missed.
	answers := make(chan *nats.Msg, 64)
	for _, subj := range []string{subjectCleanupResults, subjectCleanupPoison} {
		sub, err := nc.ChanSubscribe(subj, answers)
		if err != nil {
			return fmt.Errorf("subscribe to %s: %w", subj, err)
		}
		defer sub.Unsubscribe() //nolint:errcheck // the connection closes anyway
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = js.PublishMsg(pctx, msg(subjectCleanup, id, body))
	cancel()
	if err != nil {
		return fmt.Errorf("publish to %s: %w", subjectCleanup, err)
	}
	if _, err := fmt.Fprintf(out, "published %s job %s: %s\n", subjectCleanup, id, body); err != nil {
		return err
	}

	wait := time.NewTimer(*timeout)
	defer wait.Stop()
	for {
		select {
		case m := <-answers:
			switch {
			case m.Subject == subjectCleanupResults && m.Header.Get("job_id") == id:
				return printCleanupResult(out, m.Data)
			case m.Subject == subjectCleanupPoison && m.Header.Get(nats.MsgIdHdr) == id:
				return fmt.Errorf("cleanup %s rejected: %s", id, m.Header.Get("reason_poisoned"))
			}
		case <-wait.C:
			return fmt.Errorf("no result for cleanup %s within %s; it may still be running (see audit.results.cleanup)", id, *timeout)
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
