package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditq/auditq/ports/contract"
)

// Export implements "auditq export": every event matching the filters of
// "auditq query", as NDJSON or CSV, written to out as it arrives
// (audit.export, through contract.ReceiveExport). When the export stops
// early the error says how many events were written and the --resume
// cursor that continues it; a request the service refused is a
// *ServiceError naming the flag.
func Export(ctx context.Context, connect Connector, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(out)
	var req contract.ExportRequest
	filters := addFilterFlags(fs, &req.Filter)
	fs.StringVar(&req.Format, "format", contract.ExportNDJSON, "ndjson (one event per line, as audit.event.get) or csv (a header row, one column per field)")
	fs.BoolVar(&req.CSVRaw, "csv-raw", false, "csv: write every value as stored; by default a value starting with = + - @ tab CR or ' gets a ' before it, so that spreadsheets never run it as a formula")
	fs.StringVar(&req.Cursor, "resume", "", "continue an interrupted export from the cursor it printed (append to the same file: >>)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for each part of the export")
	fs.Usage = usage(fs, out,
		"Usage: auditq export [--format ndjson|csv] [the filters of auditq query] [--resume CURSOR] > FILE",
		"  e.g. auditq export --format csv --from 2026-11-01 --to 2026-12-01 > november.csv")
	if help, err := parseFlags(fs, args, false); help || err != nil {
		return err
	}
	if err := filters.parse(); err != nil {
		return err
	}
	switch req.Format {
	case contract.ExportNDJSON, contract.ExportCSV:
	default:
		return usagef("--format must be ndjson or csv, got %q", req.Format)
	}
	if req.CSVRaw && req.Format != contract.ExportCSV {
		return usagef("--csv-raw applies to --format csv only")
	}
	nc, err := connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	opts := contract.ExportOptions{Timeout: *timeout, Header: nats.Header{}}
	if u, err := user.Current(); err == nil && u.Username != "" {
		opts.Header.Set("Auditq-Requester", "cli:"+u.Username) // recorded, labelled unverified
	}
	_, err = contract.ReceiveExport(ctx, nc, req, out, opts)
	var xe *contract.ExportError
	if !errors.As(err, &xe) {
		return err
	}
	if xe.Code != "" && xe.Events == 0 && xe.Code != "503" && xe.Code != "504" {
		se := &ServiceError{Subject: contract.SubjectExport, Code: xe.Code, Message: xe.Message}
		if rule, ok := strings.CutPrefix(se.Message, "cursor: "); ok { // the rule speaks of cursors too
			se.Message = "--resume: " + rule
			return se
		}
		names := map[string]string{"format": "--format", "csvRaw": "--csv-raw"}
		for k, v := range filterFlagNames {
			names[k] = v
		}
		return flagErrors(se, names)
	}
	if errors.Is(xe.Err, nats.ErrNoResponders) {
		return xe
	}
	return fmt.Errorf("%w\nresume with: auditq export %s --resume %s", xe, shellWords(withoutResume(args)), xe.Cursor)
}

// withoutResume returns args without any --resume flag and its value.
func withoutResume(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--resume" || a == "-resume":
			i++
		case strings.HasPrefix(a, "--resume=") || strings.HasPrefix(a, "-resume="):
		default:
			out = append(out, a)
		}
	}
	return out
}

// shellWords joins args for a POSIX shell, quoting those that need it.
func shellWords(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		safe := func(r rune) bool {
			return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+", r)
		}
		if a == "" || strings.IndexFunc(a, func(r rune) bool { return !safe(r) }) >= 0 {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
