package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/adapters/natsjs/natstest"
	"github.com/auditq/auditq/ports/contract"
)

// noConnect is the Connector of a command line that must fail before it
// connects.
func noConnect(t *testing.T) Connector {
	return func() (*nats.Conn, error) {
		t.Helper()
		t.Error("connected, although the command line is wrong")
		return nil, errors.New("no connection in this test")
	}
}

// answering serves subject on a fresh NATS server, recording each request
// body and answering reply, and returns the Connector of the commands.
func answering(t *testing.T, subject, reply string) (Connector, *[]map[string]any) {
	t.Helper()
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.ClientURL())
	var got []map[string]any
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var body map[string]any
		if err := json.Unmarshal(m.Data, &body); err != nil {
			t.Errorf("request body %q: %v", m.Data, err)
		}
		got = append(got, body)
		_ = m.Respond([]byte(reply))
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() (*nats.Conn, error) { return nats.Connect(srv.ClientURL()) }, &got
}

func TestTimeFlag(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	havana, err := time.LoadLocation("America/Havana")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		value string
		loc   *time.Location
		want  string // "" with err: an error naming --start
		err   bool
	}{
		{"", nil, "", false},
		{"2026-11-24", nil, "2026-11-24T00:00:00Z", false},
		{"2026-11-24", berlin, "2026-11-24T00:00:00+01:00", false},
		{"2026-03-29", berlin, "2026-03-29T00:00:00+01:00", false}, // the day of the change to summer time
		{"2026-07-01", berlin, "2026-07-01T00:00:00+02:00", false},
		{"2026-03-08", havana, "2026-03-08T01:00:00-04:00", false}, // midnight skipped: the day starts at 01:00
		{"2026-11-24T09:30:00Z", berlin, "2026-11-24T09:30:00Z", false},
		{"2026-11-24T09:30:00.123456+05:30", nil, "2026-11-24T09:30:00.123456+05:30", false},
		{"2026-11-24T09:30:00", nil, "", true}, // no zone
		{"24.11.2026", nil, "", true},
		{"2026-02-30", nil, "", true},
		{"yesterday", nil, "", true},
	}
	for _, c := range cases {
		got, err := timeFlag("--start", c.value, c.loc)
		if c.err {
			if err == nil || !errors.Is(err, ErrUsage) || !strings.HasPrefix(err.Error(), "--start: ") || !strings.Contains(err.Error(), c.value) {
				t.Errorf("%q: got %q, %v; want an error naming --start and the value", c.value, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q in %v: got %q, %v; want %q", c.value, c.loc, got, err, c.want)
		}
	}
}

// Each command's time flags take a date or an RFC 3339 time, and a bad
// value is refused before connecting, naming the flag as typed.
func TestCommandTimeFlags(t *testing.T) {
	ctx := context.Background()
	type command func(context.Context, Connector, []string, *bytes.Buffer) error
	report := func(ctx context.Context, c Connector, args []string, out *bytes.Buffer) error {
		return Report(ctx, c, args, out)
	}
	query := func(ctx context.Context, c Connector, args []string, out *bytes.Buffer) error {
		return Query(ctx, c, args, out)
	}
	cases := []struct {
		name    string
		cmd     command
		subject string
		args    []string
		want    map[string]any // fields of the request sent; nil: an error naming flag
		flag    string
	}{
		{"report dates", report, contract.SubjectReport, []string{"--type", "custom", "--start", "2026-11-01", "--end", "2026-11-15"},
			map[string]any{"startDate": "2026-11-01T00:00:00Z", "endDate": "2026-11-15T00:00:00Z"}, ""},
		{"report dates in --tz", report, contract.SubjectReport, []string{"--type", "custom", "--tz", "Europe/Berlin", "--start", "2026-11-01", "--end", "2026-11-15T12:00:00Z"},
			map[string]any{"startDate": "2026-11-01T00:00:00+01:00", "endDate": "2026-11-15T12:00:00Z", "timeZone": "Europe/Berlin"}, ""},
		{"report RFC 3339", report, contract.SubjectReport, []string{"--type", "custom", "--start", "2026-11-01T06:00:00+01:00", "--end", "2026-11-02T00:00:00Z"},
			map[string]any{"startDate": "2026-11-01T06:00:00+01:00", "endDate": "2026-11-02T00:00:00Z"}, ""},
		{"report daily, no times", report, contract.SubjectReport, []string{"--type", "daily", "--date", "2026-11-01", "--tz", "Mars/Olympus"},
			map[string]any{"date": "2026-11-01", "timeZone": "Mars/Olympus"}, ""}, // the zone is the service's to judge
		{"report bad --start", report, "", []string{"--type", "custom", "--start", "1.11.2026", "--end", "2026-11-15"}, nil, "--start"},
		{"report bad --end", report, "", []string{"--type", "custom", "--start", "2026-11-01", "--end", "soon"}, nil, "--end"},
		{"report bad --tz", report, "", []string{"--type", "custom", "--tz", "Mars/Olympus", "--start", "2026-11-01", "--end", "2026-11-02"}, nil, "--tz"},
		{"query dates", query, contract.SubjectQuery, []string{"--from", "2026-11-01", "--to", "2026-11-02"},
			map[string]any{"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, ""},
		{"query RFC 3339", query, contract.SubjectQuery, []string{"--from", "2026-11-01T10:00:00.5Z"},
			map[string]any{"from": "2026-11-01T10:00:00.5Z"}, ""},
		{"query bad --from", query, "", []string{"--from", "2026-11-01 10:00"}, nil, "--from"},
		{"query bad --to", query, "", []string{"--to", "tomorrow"}, nil, "--to"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if c.want == nil {
				err := c.cmd(ctx, noConnect(t), c.args, &out)
				if err == nil || !strings.HasPrefix(err.Error(), c.flag+": ") || !errors.Is(err, ErrUsage) || ExitCode(err) != ExitUsage {
					t.Fatalf("got %v, want an error naming %s", err, c.flag)
				}
				return
			}
			connect, got := answering(t, c.subject, `{}`)
			if err := c.cmd(ctx, connect, append(c.args, "--json"), &out); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if len(*got) != 1 {
				t.Fatalf("%d requests", len(*got))
			}
			for k, v := range c.want {
				if (*got)[0][k] != v {
					t.Errorf("%s = %v, want %v (request %v)", k, (*got)[0][k], v, (*got)[0])
				}
			}
		})
	}
}

func TestCleanupTimeFlags(t *testing.T) {
	cases := []struct {
		before, want string
	}{
		{"2025-01-01", "2025-01-01T00:00:00Z"},
		{"2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"2025-01-01T06:00:00+02:00", "2025-01-01T06:00:00+02:00"},
	}
	for _, c := range cases {
		body, err := cleanupRequest("", c.before, "", false)
		var req map[string]any
		if err != nil || json.Unmarshal(body, &req) != nil || req["beforeDate"] != c.want {
			t.Errorf("--before %s: %s, %v; want beforeDate %s", c.before, body, err, c.want)
		}
	}
	var out bytes.Buffer
	err := Cleanup(context.Background(), noConnect(t), []string{"--before", "01/01/2025"}, &out)
	if err == nil || !strings.HasPrefix(err.Error(), "--before: ") || ExitCode(err) != ExitUsage {
		t.Fatalf("--before 01/01/2025: %v", err)
	}
}

// A 400 answer about a time field names the flag instead.
func TestServiceErrorsNameTheTimeFlags(t *testing.T) {
	se := &ServiceError{Subject: contract.SubjectReport, Code: "400", Message: "endDate: must be after startDate"}
	err := flagErrors(se, reportFlags)
	if err == nil || err.Error() != "audit.report answered 400: --end: must be after --start" || !errors.Is(err, ErrUsage) {
		t.Fatalf("got %v", err)
	}
	var got *ServiceError
	if !errors.As(err, &got) {
		t.Fatalf("%T is not a *ServiceError", err)
	}
	for _, kept := range []*ServiceError{
		{Subject: contract.SubjectReport, Code: "400", Message: "reportType: must be one of daily, weekly"},
		{Subject: contract.SubjectReport, Code: "500", Message: "startDate: internal"},
	} {
		if err := flagErrors(kept, map[string]string{"startDate": "--start"}); err != kept {
			t.Errorf("%v renamed to %v", kept, err)
		}
	}
	if got := replaceWord("from: must be before to, fromage and to_do stay", "to", "--to"); got != "from: must be before --to, fromage and to_do stay" {
		t.Errorf("replaceWord: %q", got)
	}
}
