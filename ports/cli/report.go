package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/domain/audit"
	"github.com/auditq/auditq/ports/contract"
)

// Request subjects of the auditq micro service.
const (
	subjectReport    = contract.SubjectReport
	subjectReportGet = contract.SubjectReportGet
	subjectQuery     = contract.SubjectQuery
	subjectEventGet  = contract.SubjectEventGet
)

// ServiceError is an error answer of the auditq request service: its code
// (400, 404, 409, 500, 501, 503, 504) and message.
type ServiceError struct {
	Subject, Code, Message string
}

// Error says which subject answered which code and message.
func (e *ServiceError) Error() string {
	return fmt.Sprintf("%s answered %s: %s", e.Subject, e.Code, e.Message)
}

// Is makes a 400 answer, a request refused as given, an ErrUsage.
func (e *ServiceError) Is(target error) bool { return target == ErrUsage && e.Code == "400" }

// Report implements "auditq report": it asks the running service for a
// report (audit.report), or for a stored one with --id (audit.report.get),
// and prints it as tables or, with --json, as the JSON received. A service
// error is returned as a *ServiceError.
func Report(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(out)
	typ := fs.String("type", "", "daily, weekly (ISO, Monday first), monthly or custom")
	date := fs.String("date", "", "a day of the period, YYYY-MM-DD; default: the last complete period")
	tz := fs.String("tz", "", "IANA time zone of the period, e.g. Europe/Berlin; default UTC")
	start := fs.String("start", "", "custom: start (inclusive), RFC 3339 or a date (its start in --tz)")
	end := fs.String("end", "", "custom: end (exclusive), RFC 3339 or a date (its start in --tz)")
	id := fs.Int64("id", 0, "print the stored report with this id instead of generating one")
	var tenant *string
	fs.Func("tenant", "count one tenant's events, \"\" the default tenant's (for readers bound to no tenant, docs/tenants.md)", func(s string) error {
		tenant = &s
		return nil
	})
	asJSON := fs.Bool("json", false, "print the JSON response as received")
	job := fs.Bool("job", false, "run it as a report job (audit.admin.report.generate, an operator's request): the job records who started it, and its report is published to audit.results.report")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the answer")
	fs.Usage = usage(fs, out,
		"Usage: auditq report --type daily|weekly|monthly [--date 2026-11-24] [--tz Europe/Berlin] [--job] [--json]",
		"       auditq report --type custom --start 2026-11-01 --end 2026-11-15T12:00:00Z [--tz Europe/Berlin] [--json]",
		"       auditq report --id 42 [--json]")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	req, err := reportRequest(*typ, *date, *start, *end, *tz)
	if err != nil {
		return err
	}
	req.Tenant = tenant
	subject, body := subjectReport, any(req)
	if *id != 0 {
		subject, body = subjectReportGet, map[string]int64{"id": *id}
	} else if *typ == "" {
		return usagef("--type is required (daily, weekly, monthly or custom), or --id")
	}
	var data []byte
	if *job && *id == 0 {
		data, err = reportJob(ctx, connect, req, *timeout, out)
	} else {
		data, err = request(ctx, connect, subject, body, *timeout)
	}
	if err != nil {
		return flagErrors(err, reportFlags)
	}
	if *asJSON {
		_, err := fmt.Fprintf(out, "%s\n", data)
		return err
	}
	var rep audit.StoredReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", subject, err)
	}
	return printReport(out, rep)
}

// reportJob starts a report job for req through
// audit.admin.report.generate and returns the report it published on
// audit.results.report (subscribed to before the job starts), or an error
// when the request is refused or no report comes within timeout.
func reportJob(ctx context.Context, connect Connector, req audit.ReportRequest, timeout time.Duration, out io.Writer) ([]byte, error) {
	nc, err := connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	reports := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(contract.SubjectReportResults, reports)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", contract.SubjectReportResults, err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // the connection closes anyway
	if err := nc.Flush(); err != nil {
		return nil, err
	}
	data, err := requestOn(ctx, nc, contract.SubjectAdminReportGenerate, req, timeout)
	if err != nil {
		return nil, err
	}
	var job contract.JobStarted
	if err := json.Unmarshal(data, &job); err != nil || job.ID == "" {
		return nil, fmt.Errorf("unreadable answer of %s: %q", contract.SubjectAdminReportGenerate, data)
	}
	if _, err := fmt.Fprintf(out, "started %s job %s\n", job.Subject, job.ID); err != nil {
		return nil, err
	}
	wait := time.NewTimer(timeout)
	defer wait.Stop()
	for {
		select {
		case m := <-reports:
			if m.Header.Get("job_id") == job.ID {
				return m.Data, nil
			}
		case <-wait.C:
			return nil, fmt.Errorf("no report for job %s within %s; it may still be running (see audit.results.report)", job.ID, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// reportFlags names the flags of the date and time fields of an
// audit.report request.
var reportFlags = map[string]string{"date": "--date", "startDate": "--start", "endDate": "--end", "timeZone": "--tz", "tenant": "--tenant"}

// reportRequest builds the audit.report request from the flags: --start
// and --end as RFC 3339 times or dates (a date is its first instant in
// --tz).
func reportRequest(typ, date, start, end, tz string) (audit.ReportRequest, error) {
	req := audit.ReportRequest{ReportType: typ, Date: date, TimeZone: tz}
	if start == "" && end == "" {
		return req, nil
	}
	loc, err := zoneFlag("--tz", tz)
	if err != nil {
		return req, err
	}
	if req.StartDate, err = timeFlag("--start", start, loc); err != nil {
		return req, err
	}
	req.EndDate, err = timeFlag("--end", end, loc)
	return req, err
}

func printReport(out io.Writer, r audit.StoredReport) error {
	s := r.Summary
	p := &printer{w: out}
	p.printf("%s report, %s to %s (%s)\n", r.ReportType,
		r.Period.Start.Format(time.RFC3339Nano), r.Period.End.Format(time.RFC3339Nano), r.Period.TimeZone)
	p.printf("report %d, generated %s (%s)\n\n", r.ID, r.GeneratedAt.Format(time.RFC3339), r.Trigger)
	p.printf("events %d, successful %d, failed %d, success rate %.2f%%\n", s.Total, s.Successful, s.Failed, s.SuccessRate)
	if p.err != nil {
		return p.err
	}

	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	t := &printer{w: tw}
	section := func(title string, header string, rows [][]any) {
		t.printf("\n%s\n", title)
		if len(rows) == 0 {
			t.println("  (none)")
			return
		}
		t.printf("  %s\n", header)
		for _, row := range rows {
			cells := make([]string, len(row))
			for i, c := range row {
				cells[i] = cell(fmt.Sprint(c))
			}
			t.printf("  %s\n", strings.Join(cells, "\t"))
		}
	}
	var rows [][]any
	for _, a := range s.ActionBreakdown {
		rows = append(rows, []any{a.Action, a.Count})
	}
	section("Actions", "ACTION\tCOUNT", rows)
	rows = nil
	for _, u := range r.TopUsers {
		rows = append(rows, []any{u.UserID, u.Count})
	}
	section("Top users (system events left out)", "USER\tCOUNT", rows)
	rows = nil
	for _, x := range r.TopResources {
		rows = append(rows, []any{x.ResourceType, x.Count})
	}
	section("Top resource types", "RESOURCE TYPE\tCOUNT", rows)
	rows = nil
	for _, f := range r.FailureAnalysis {
		rows = append(rows, []any{f.Action, f.Failed, f.Total, fmt.Sprintf("%.2f%%", f.FailureRate)})
	}
	section("Failures", "ACTION\tFAILED\tTOTAL\tFAILURE RATE", rows)
	t.flush(tw)
	return t.err
}

// request sends one request to the auditq service with plain NATS
// request-reply and returns the answer's payload. An error answer
// (Nats-Service-Error-Code) becomes a *ServiceError.
func request(ctx context.Context, connect Connector, subject string, body any, timeout time.Duration) ([]byte, error) {
	nc, err := connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	return requestOn(ctx, nc, subject, body, timeout)
}

// requestOn is request on the open connection nc.
func requestOn(ctx context.Context, nc *nats.Conn, subject string, body any, timeout time.Duration) ([]byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subject)
	m.Data = data
	if u, err := user.Current(); err == nil && u.Username != "" {
		// Recorded with the read, labelled unverified: anyone can claim a name.
		m.Header.Set("Auditq-Requester", "cli:"+u.Username)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := nc.RequestMsgWithContext(rctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("nobody answers on %s: is \"auditq serve\" running and reachable?", subject)
	case err != nil && refused(nc, subject):
		// The server refused the request (the user's permissions): it
		// said so on the connection, and the request waited in vain.
		return nil, fmt.Errorf("request %s: refused by the NATS server: %w", subject, nc.LastError())
	case err != nil:
		return nil, fmt.Errorf("request %s: %w", subject, err)
	}
	if code := reply.Header.Get("Nats-Service-Error-Code"); code != "" {
		return nil, &ServiceError{Subject: subject, Code: code, Message: reply.Header.Get("Nats-Service-Error")}
	}
	return reply.Data, nil
}

// refused reports whether the last error the server sent nc is a
// permissions violation for publishing to subject.
func refused(nc *nats.Conn, subject string) bool {
	last := nc.LastError()
	return errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), `Publish to "`+subject+`"`)
}

// askAndPrint is a client command's one request: it asks subject with
// body, then writes the answer as received when asJSON, else decodes it
// into a T and prints it with show. It returns the request's error (a
// *ServiceError for a service error), a decode error naming the subject,
// or show's.
func askAndPrint[T any](ctx context.Context, connect Connector, subject string, body any, timeout time.Duration, asJSON bool, out io.Writer, show func(T) error) error {
	data, err := request(ctx, connect, subject, body, timeout)
	if err != nil {
		return err
	}
	if asJSON {
		_, err := fmt.Fprintf(out, "%s\n", data)
		return err
	}
	var res T
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", subject, err)
	}
	return show(res)
}

// cell keeps one table cell on one line and reasonably short.
func cell(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 48 {
		return string(r[:47]) + "…"
	}
	return s
}
